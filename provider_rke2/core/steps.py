"""The boot steps, one small function per concern, in the order they must run.

yip never stops a stage when a command fails, so every step is written to be
safe when any step before it failed, and to be run again on every boot.
"""

from __future__ import annotations

import posixpath
from shlex import quote

from provider_rke2.core.paths import WATCHER_UNIT, Paths, unit_links, unit_name
from provider_rke2.core.proxy import env_file_text
from provider_rke2.core.record import replace
from provider_rke2.core.root import STYLUS_ENVIRONMENT
from provider_rke2.core.yip import Directory, File, Step

TYPE_CHECKING = False  # typing costs milliseconds of every boot: annotations only
if TYPE_CHECKING:
    from typing import Dict, List, Optional, Sequence, Tuple

    from provider_rke2.core.proxy import EnvPairs

STAGE = "boot.before"
READ_ONLY = 0o400
PRIVATE_FILE = 0o600
PUBLIC_FILE = 0o644
PRIVATE_DIR = 0o700
PUBLIC_DIR = 0o755
# How long a boot waits, at most, while image archives are still being extracted,
# unless providerConfig.local_images_wait_seconds says otherwise.
DEFAULT_IMAGES_SETTLE_SECONDS = 120

# Comments only active lines whose third field (the type) is swap; already
# commented lines do not match, so running it every boot changes nothing more.
_COMMENT_SWAP = (
    "sed -i -E 's/^([[:space:]]*[^#[:space:]][^[:space:]]*[[:space:]]+[^[:space:]]+"
    "[[:space:]]+swap([[:space:]]|$))/#\\1/' {fstab}"
)

# What RKE2 imports from agent/images (rancher/rke2#6856): image archives, plain or compressed
# every way it reads, and .txt lists of images to pull.
IMAGE_PATTERNS = (
    "*.tar", "*.tar.lz4", "*.tar.bz2", "*.tbz", "*.tar.gz", "*.tgz", "*.tar.zst", "*.tzst", "*.txt",
)  # fmt: skip

# Copies each archive only when its size or modification time differs from the copy in place
# (rsync's quick check: a stat per file, never a read of gigabytes at every boot), keeping the
# source's time (cp -p): RKE2's conditional import (agent/images/.cache.json) re-imports an
# archive only when its size or time changed, so an unchanged archive is never touched. Via a
# temporary name RKE2 ignores, so RKE2 never imports a half-copied archive.
_COPY_CHANGED = (
    'dst=$1; shift; for f; do t="$dst/${f##*/}";'
    ' [ -f "$t" ] && [ ! -L "$t" ]'
    ' && [ "$(stat -L -c %s:%Y -- "$f")" = "$(stat -c %s:%Y -- "$t")" ] && continue;'
    ' rm -f -- "$t.part"; cp -p -- "$f" "$t.part" && mv -f -- "$t.part" "$t"; done'
)


def swap_off(edit_fstab: bool = True, fstab: str = "/etc/fstab") -> Step:
    """Swap off now; in appliance mode also for good. An agent-mode host's /etc/fstab is the
    host's own configuration, outside the root: there swap is only turned off for this boot."""
    if not edit_fstab:
        return Step(
            name="Turn swap off for this boot (the kubelet refuses to start with swap on)",
            commands=("swapoff -a",),
        )
    return Step(
        name="Turn swap off (the kubelet refuses to start with swap on)",
        commands=(
            f"if [ -f {quote(fstab)} ]; then {_COMMENT_SWAP.format(fstab=quote(fstab))}; fi",
            "swapoff -a",
        ),
    )


def rke2_config(paths: Paths, user_config: str, provider_config: str, merged_config: str) -> Step:
    return Step(
        name="Write the RKE2 configuration",
        directories=(
            Directory(paths.config_dir, PUBLIC_DIR),
            Directory(paths.drop_in_dir, PRIVATE_DIR),
        ),
        files=(
            File(paths.user_drop_in, user_config, READ_ONLY),
            File(paths.provider_drop_in, provider_config, READ_ONLY),
            File(paths.config_file, merged_config, READ_ONLY),
        ),
    )


def registries(paths: Paths, text: str) -> Step:
    return Step(
        name="Write RKE2's private registry configuration (mirrors, credentials, TLS files)",
        files=(File(paths.registries_file, text, PRIVATE_FILE),),
    )


def stale_registries(paths: Paths, header: str) -> Step:
    """Remove the registries file a former cluster.registries had the provider write (its first
    line says so), never one an administrator wrote, nor through a link."""
    path = quote(paths.registries_file)
    return Step(
        name="Remove the private registry configuration cluster.registries no longer asks for",
        commands=(
            # Its first line, whole (the x keeps the line end), and no more of the file.
            f"if [ -f {path} ] && [ ! -L {path} ]"
            f' && [ "$(head -c {len(header) + 1} {path}; echo x)" = {quote(header + chr(10) + "x")} ];'
            f" then rm -f {path}; fi",
        ),
    )


def script_paths(paths: Paths, env_file: str) -> Step:
    """The paths the node scripts act on, beside them, for an operator who runs them by hand."""
    return Step(
        name="Record the paths the node scripts act on (this node's data dir included)",
        files=(File(paths.scripts_env, env_file, PUBLIC_FILE),),
    )


def proxy_env(paths: Paths, unit: str, pairs: EnvPairs) -> Optional[Step]:
    if not pairs:
        return None
    return Step(
        name=f"Write the proxy environment of {unit}",
        files=(File(paths.env_file(unit), env_file_text(pairs), READ_ONLY),),
    )


# The listing of the archives (links followed: names, sizes, times), taken a second apart:
# while it changes, content is still being extracted there. Bounded by the clock, not by a
# count of rounds: over a hundred thousand archives one listing takes seconds, and `timeout`
# ends a listing (its process group: find and its ls) when the time is up.
_SETTLE = (
    'prev=; while left=$((end - $(date +%s))); [ "$left" -gt 0 ]; do'
    ' now=$(timeout "$left" find -L "$src" -type f \\( {names} \\) -exec ls -lnL {{}} + 2>/dev/null | cksum);'
    ' [ "$now" = "$prev" ] && break; prev=$now; sleep 1; done'
)


def wait_for_images(source: str, seconds: int) -> Step:
    """Wait, bounded, while image archives are still being extracted into `source`.

    With `seconds` set (providerConfig.local_images_wait_seconds) the directory may also
    appear within that time; without, an absent directory means there is nothing to wait for.
    One deadline for both.
    """
    bound = seconds or DEFAULT_IMAGES_SETTLE_SECONDS
    appear = 'while [ ! -d "$src" ] && [ "$(date +%s)" -lt "$end" ]; do sleep 1; done; ' if seconds else ""
    return Step(
        name=(
            f"Wait up to {bound} s while local image archives are still being extracted into {source}"
            " (providerConfig.local_images_wait_seconds)"
        ),
        commands=(
            f"src={quote(source)}; end=$(($(date +%s) + {bound})); {appear}"
            f'[ -d "$src" ] || exit 0; {_SETTLE.format(names=_names())}',
        ),
    )


def import_images(source: str, target: str) -> Step:
    return Step(
        name=f"Copy local image archives from {source} to {target}",
        only_if=f"[ -d {quote(source)} ]",
        commands=(
            f"mkdir -p {quote(target)}",
            # -L: a linked images directory or archive counts as what it points to;
            # find reports a loop and goes on, -type f keeps only regular files.
            f"find -L {quote(source)} -type f \\( {_names()} \\) "
            f"-exec sh -c {quote(_COPY_CHANGED)} sh {quote(target)} {{}} +",
        ),
    )


def _names() -> str:
    return " -o ".join(f"-name {quote(pattern)}" for pattern in IMAGE_PATTERNS)


def unit_drop_ins(paths: Paths, unit: str, executable: str, proxied: bool) -> Tuple[File, ...]:
    """Runtime drop-ins for the unit: in agent mode, where RKE2 lives under the root; with
    a proxy, NO_PROXY completed with the node's own subnets each time the unit starts."""
    found = []
    if paths.agent_mode:
        role = "server" if unit.startswith("rke2-server") else "agent"
        content = "\n".join(
            [
                f"# Written by provider-rke2: RKE2 lives under STYLUS_ROOT={paths.root}.",
                "[Service]",
                f"EnvironmentFile=-{STYLUS_ENVIRONMENT}",
                f"EnvironmentFile=-{paths.env_file(unit)}",
                "ExecStart=",
                f"ExecStart={paths.binary} {role} --config {paths.config_file}",
                "",
            ]
        )
        found.append(File(Paths.unit_drop_in(unit), content, PUBLIC_FILE))
    if proxied:
        # The boot stage runs before the network is up; ExecStartPre runs after
        # network-online.target (RKE2's units wait for it), and systemd reads an
        # EnvironmentFile only when it starts the next command, so ExecStart sees it.
        content = "\n".join(
            [
                "# Written by provider-rke2: NO_PROXY also gets this node's own subnets, read from",
                "# the kernel's routing table when the unit starts (README: Proxy).",
                "[Service]",
                f"ExecStartPre=-{_systemd_executable(executable)} no-proxy --unit {unit_name(unit)}"
                f" --stylus-root {paths.root}",
                f"EnvironmentFile=-{paths.no_proxy_env(unit)}",
                "",
            ]
        )
        found.append(File(Paths.no_proxy_drop_in(unit), content, PUBLIC_FILE))
    return tuple(found)


def _systemd_executable(path: str) -> str:
    """A command's executable path as systemd reads it literally: specifiers (`%`) apply there,
    variables do not (`$` stays as it is), and quotes keep a path with spaces one word."""
    literal = path.replace("%", "%%")
    if all(c.isalnum() or c in "/._+-@$" for c in literal):
        return literal
    return '"' + literal.replace("\\", "\\\\").replace('"', '\\"') + '"'


def start_service(
    unit: str, paths: Paths, fingerprint: str, watcher: str, drop_ins: Tuple[File, ...] = ()
) -> Step:
    """Start the unit, restart it only when it runs and its configuration changed, never while
    it is still starting; then watch for readiness.

    A persistent enable would let systemd start RKE2 on the next boot with the
    previous config, before this stage rewrote it: enable for this boot only.
    --no-block: boot.before runs inside the boot service; waiting here for a
    Type=notify unit would hold the whole boot until RKE2 is up.

    The rule, by the unit's state: inactive, failed or stopping: start it. Active: restart it
    only when the fingerprint of its configuration differs from the stamp written after its
    last successful (re)start (re-applying an unchanged document leaves RKE2 alone).
    Activating or reloading: RKE2 is still starting, a first server perhaps bootstrapping
    etcd, which a restart can wedge (rancher/rke2#9785): never restart it then; the changed
    fingerprint is left pending and the readiness watcher restarts RKE2 once it is ready.
    """
    unit_q, stamp, want = quote(unit), quote(paths.started_stamp), quote(fingerprint)
    pending, state_dir = quote(paths.restart_pending), quote(paths.state_dir)
    same = f'[ -f {stamp} ] && [ ! -L {stamp} ] && [ "$(cat {stamp})" = {want} ]'
    decide = (
        f'case "$(systemctl is-active {unit_q})" in\n'
        f"active)\n"
        f"  if {same}; then action=unchanged\n"
        f"  elif systemctl restart --no-block {unit_q}; then action=restarted\n"
        "  else action=failed; fi ;;\n"
        "activating|reloading)\n"
        f"  if {same}; then action=unchanged; else action=deferred; fi ;;\n"
        f"*) if systemctl start --no-block {unit_q}; then action=started; else action=failed; fi ;;\n"
        "esac\n"
        'case "$action" in\n'
        # What runs is what was asked for: nothing stays pending (a change made and undone
        # while RKE2 was starting included).
        f"unchanged) rm -f {pending} ;;\n"
        f"started|restarted) rm -f {pending}; {_record(stamp, want, state_dir)} ;;\n"
        f"deferred) {_record(pending, want, state_dir)} ;;\n"
        "esac\n"
        # Its own transient unit: yip waits for every process holding a command's output
        # (CombinedOutput), so a background watcher would hold the boot service; one
        # watcher at a time, by its fixed name (a running one applies a pending restart too).
        f"systemctl is-active --quiet {WATCHER_UNIT} ||"
        f" systemd-run --no-block --collect --unit {WATCHER_UNIT}"
        f" --description 'provider-rke2: wait for RKE2 to be ready' {watcher} --after \"$action\""
    )
    return Step(
        name=f"Start {unit} (enabled for this boot only; restarted when it runs with a changed"
        " configuration, never while it starts)",
        files=drop_ins,
        commands=(
            "rm -f " + " ".join(unit_links((unit_q,))),
            f"systemctl enable --runtime {unit_q}",
            "systemctl daemon-reload",
            decide,
        ),
    )


def _record(path: str, value: str, state_dir: str) -> str:
    """`value` written to `path` as a fresh file (mktemp: O_EXCL, never through a link)
    renamed over it; never into a directory planted where it goes. Both arguments quoted."""
    return (
        f"[ -d {path} ] || (umask 077 && mkdir -p {state_dir} && tmp=$(mktemp {state_dir}/.state.XXXXXX)"
        f' && printf \'%s\\n\' {value} > "$tmp" && mv -f "$tmp" {path})'
    )


def present(*steps: Optional[Step]) -> List[Step]:
    return [step for step in steps if step is not None]


def private_first(steps: Sequence[Step]) -> List[Step]:
    """Steps where no private file (one that holds a secret) is readable by another user at
    any moment, under the way yip writes a file: it creates a new file with mode 0666 minus
    the umask (readable by all), writes the content, and only then sets `permissions`;
    a process that opens the file in between keeps reading it.

    Before the first step that writes one, a step replaces each private file outside a
    private directory with a fresh file only root can open, holding the old content (mktemp,
    renamed over the path: never through a link, and a new inode, so no descriptor anyone
    held on the old file reads the new content); yip then truncates and fills that file.
    The steps that write them run only if every one of them is such a file, so that a failed
    replacement leaves the old files rather than exposing the new ones.
    """
    declared: Dict[str, int] = {d.path: d.permissions for s in steps for d in s.directories}

    def exposed(entry: File) -> bool:
        parent = declared.get(posixpath.dirname(entry.path), PUBLIC_DIR)
        return not entry.permissions & 0o077 and bool(parent & 0o077)

    guarded = [f.path for s in steps for f in s.files if exposed(f)]
    writes = [any(exposed(f) for f in s.files) for s in steps]
    if not guarded:
        return list(steps)
    paths = " ".join(quote(p) for p in guarded)
    parents = " ".join(quote(p) for p in sorted({posixpath.dirname(p) for p in guarded}))
    guard = Step(
        name="Lay fresh private files where secrets go (yip creates a file readable by all, then chmods it)",
        commands=(
            # The old content is kept (a new inode holding it), should the write be skipped.
            f"umask 022; mkdir -p {parents} || exit 1; umask 077; set -- {paths}; for f; do"
            ' t=$(mktemp "${f%/*}/.provider-rke2.XXXXXX") || exit 1;'
            ' { [ ! -f "$f" ] || [ -L "$f" ] || cat "$f" > "$t"; } && mv -f "$t" "$f" && continue;'
            ' rm -f "$t"; exit 1; done',
        ),
    )
    # find prints each path that is not a regular file only root can read (and complains
    # about a missing one): any output at all means a file is not safe to fill.
    safe = f'[ -z "$(find {paths} -prune \\( ! -type f -o ! -user 0 -o -perm /077 \\) -print 2>&1)" ]'
    first = writes.index(True)
    guarded_steps = [replace(s, only_if=_both(s.only_if, safe)) if w else s for s, w in zip(steps, writes)]
    return [*guarded_steps[:first], guard, *guarded_steps[first:]]


def _both(first: str, second: str) -> str:
    return f"{first} && {second}" if first else second
