"""The operators' verbs (`render`, `validate`, `paths`, `mode`, `events`, `status`,
`wait-ready`, `upgrade`, `no-proxy`): their argument parser, and a table verb -> handler.

Each handler gets the parsed options, the node and the streams, and returns the exit
status; errors it does not handle itself are reported by cli.command_mode. The verbs are
names.COMMANDS: the launcher's list is generated from that at build time.
"""

from __future__ import annotations

import argparse
import os
from typing import TYPE_CHECKING, Any, Callable, Dict, List, Optional, TextIO

from provider_rke2.core.paths import ROLES
from provider_rke2.core.record import record

if TYPE_CHECKING:
    from provider_rke2.core.root import Root
    from provider_rke2.machine import Machine

ROOT_HELP = "STYLUS_ROOT to use (default: /etc/spectro/environment, then $STYLUS_ROOT, then /)"


@record
class Streams:
    """A verb's standard streams."""

    stdin: TextIO
    stdout: TextIO
    stderr: TextIO


Handler = Callable[[argparse.Namespace, "Machine", Streams], int]


@record
class Verb:
    """An operators' verb: what declares its arguments (given the subparsers and its name),
    and what runs it."""

    arguments: Callable[[Any, str], None]
    run: Handler


# --- the parser ------------------------------------------------------------------------


def build_parser() -> argparse.ArgumentParser:
    from provider_rke2 import __version__
    from provider_rke2.names import BOOT, COMMANDS, INFO, INSTALL, RESET

    parser = argparse.ArgumentParser(
        prog="agent-provider-rke2",
        description="Kairos cluster provider for RKE2. Run with an event name as the only"
        " argument, it answers the Kairos agent: one JSON event on stdin, one JSON response on stdout.",
        epilog=f"agent events (the event name alone, the JSON event on stdin): {BOOT} (write the node's"
        f" YIP document), {RESET} (uninstall RKE2), {INFO} and {INSTALL} (at image build). Any other"
        " event name is answered as not this provider's.",
    )
    parser.add_argument("--version", action="version", version=f"agent-provider-rke2 {__version__}")
    verbs = parser.add_subparsers(dest="command", metavar="{" + ",".join(COMMANDS) + "}")
    for name, verb in VERBS.items():
        verb.arguments(verbs, name)
    return parser


def _with_root(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
    parser.add_argument("--stylus-root", metavar="PATH", type=_root_flag, help=ROOT_HELP)
    return parser


def _render_args(verbs: Any, name: str) -> None:
    render = verbs.add_parser(
        name,
        help="print what agent.boot would write for a cloud-config",
        description="Print, byte for byte, what agent.boot would write for the cloud-config in FILE"
        " (stdin with '-' or no FILE). Warnings and problems go to stderr. Exit 0 rendered,"
        " 1 the config has problems, 2 usage or unreadable file.",
    )
    render.add_argument(
        "file", nargs="?", default="-", metavar="FILE|-", help="the cloud-config (default: stdin)"
    )
    render.add_argument(
        "--fresh",
        action="store_true",
        help="render as for a node with no state yet (no fingerprint key, recorded data dir or drop-ins)",
    )
    render.add_argument(
        "--json",
        action="store_true",
        help="one JSON object: where the document goes, its mode, the root, the warnings and the document;"
        " with problems, validate's JSON report",
    )
    _with_root(render)


def _validate_args(verbs: Any, name: str) -> None:
    validate = verbs.add_parser(
        name,
        help="report every problem of a cloud-config, at its line; of several, as one cluster",
        description="Check the cluster section of the cloud-config in FILE (stdin with '-'): the section's"
        " schema, the RKE2 config against RKE2's options, and the render. Prints the file with each problem"
        " marked at its line (E1, W1, ...) and listed below, or a JSON report with --json. Given several"
        " files, or a directory (its *.yaml and *.yml), each is checked, then all of them as the nodes of"
        " one cluster: one init node, one token, the same networks on every server, a host every joining"
        " node's servers are known by, one name per node. Exit 0 no errors (warnings allowed), 1 errors,"
        " 2 usage or unreadable file.",
    )
    validate.add_argument(
        "file",
        metavar="FILE|DIR|-",
        nargs="+",
        help="the cloud-config ('-': stdin), or several, or a directory",
    )
    validate.add_argument("--json", action="store_true", help="a JSON report (the same as --format json)")
    validate.add_argument(
        "--format", choices=("annotate", "json"), default="annotate", help="annotate (the default) or json"
    )
    _with_root(validate)


def _plan_args(verbs: Any, name: str) -> None:
    plan = verbs.add_parser(
        name,
        help="what a new cloud-config would change on this node, before it boots with it",
        description="Render the cloud-config in FILE as agent.boot would on this node and compare it with"
        " what the node has now: each file the boot writes (added, changed key by key, removed; secrets"
        " never shown), whether RKE2 would start, restart or stay, whether the role or the data dir"
        " changes, and what a reset would then remove. Changes nothing. Exit 0 shown, 1 the config has"
        " problems (as render shows them), 2 usage or unreadable file.",
    )
    plan.add_argument(
        "file", nargs="?", default="-", metavar="FILE|-", help="the new cloud-config (default: stdin)"
    )
    plan.add_argument("--json", action="store_true", help="one JSON object, for the fleet manager")
    _with_root(plan)


def _paths_args(verbs: Any, name: str) -> None:
    paths = verbs.add_parser(
        name,
        help="print every RKE2 path for the resolved root",
        description="Print every RKE2 path for the resolved root; with --env, the node scripts' paths"
        " (this node's data dir included) as the rke2-paths.env file that every boot lays beside them.",
    )
    paths.add_argument("--env", action="store_true", help="the node scripts' paths, as rke2-paths.env")
    paths.add_argument("--json", action="store_true", help="a JSON object (docs/operating.md: paths --json)")
    _with_root(paths)


def _mode_args(verbs: Any, name: str) -> None:
    text = "appliance or agent mode, with the evidence"
    mode = verbs.add_parser(name, help=text, description=text)
    mode.add_argument("--json", action="store_true", help="a JSON object (docs/operating.md: mode --json)")
    _with_root(mode)


def _events_args(verbs: Any, name: str) -> None:
    from provider_rke2.core.timespec import INSTANT_FORMS
    from provider_rke2.machine.eventlog import TYPES

    events = verbs.add_parser(
        name,
        help="the event log, as a table or JSON lines",
        description="Print the event log (<root>/var/log/provider-rke2/events.jsonl), oldest first.",
    )
    events.add_argument(
        "--type",
        dest="kind",
        choices=TYPES,
        metavar="TYPE",
        help=f"only events of this type: {', '.join(TYPES)}",
    )
    events.add_argument(
        "--since", metavar="TIME", type=_since, help=f"only events at or after TIME: {INSTANT_FORMS}"
    )
    events.add_argument("--json", action="store_true", help="raw JSON lines instead of a table")
    events.add_argument("--follow", action="store_true", help="keep printing new events until interrupted")
    _with_root(events)


def _status_args(verbs: Any, name: str) -> None:
    status = verbs.add_parser(
        name, help="mode, role, data dir, RKE2 units, the last upgrade, the last event of each type"
    )
    status.add_argument(
        "--json", action="store_true", help="a JSON object (docs/operating.md: status --json)"
    )
    _with_root(status)


def _wait_ready_args(verbs: Any, name: str) -> None:
    # Run by the readiness watcher's transient unit at every boot; by people to check a node.
    from provider_rke2.machine.readiness import KUBELET_HEALTHZ, SUPERVISOR_PING

    ready = verbs.add_parser(
        name,
        help="wait until RKE2 answers on this node, and print the outcome",
        description="Wait until RKE2 answers on this node (the kubelet's healthz; on servers the supervisor's"
        " ping over the cluster's TLS) and print the outcome and the last probe's answers; at a terminal, say"
        " every 15 s what it waits for. Run by hand it changes nothing; run as the readiness watcher (with"
        " --after) it records the outcome in the event log and does a restart the boot left pending."
        " Exit 0 ready, 1 not ready in time, 2 usage.",
    )
    ready.add_argument(
        "--role", required=True, choices=ROLES, help="the node's role: a server is also asked its supervisor"
    )
    ready.add_argument(
        "--timeout", type=_seconds, default=900.0, metavar="DURATION",
        help="how long to wait in all: seconds, or 90s, 15m, 2h (default 15m)",
    )  # fmt: skip
    ready.add_argument(
        "--after",
        default="",
        help="the readiness watcher's: what the boot stage did (started, restarted, unchanged, deferred: a"
        " restart left for once RKE2 is ready, failed); with it the outcome goes to the event log",
    )
    ready.add_argument("--data-dir", default=None, help="RKE2's data dir (default: the root's)")
    ready.add_argument(
        "--kubelet-url",
        default=None,
        metavar="URL",
        help=f"the kubelet health check to ask (default {KUBELET_HEALTHZ})",
    )
    ready.add_argument(
        "--supervisor-url",
        default=None,
        metavar="URL",
        help=f"a server's supervisor ping to ask (default {SUPERVISOR_PING})",
    )
    ready.add_argument(
        "--max-interval", type=_interval, default=15.0, metavar="DURATION",
        help="the longest pause between two rounds of checks (default 15s)",
    )  # fmt: skip
    _with_root(ready)


def _with_artifacts(parser: argparse.ArgumentParser) -> None:
    """The release a verb takes RKE2 from, as init.provider.install names it."""
    parser.add_argument(
        "--artifacts", required=True, metavar="DIR", type=_absolute,
        help="the directory holding the release: rke2.linux-ARCH.tar.gz and sha256sum-ARCH.txt",
    )  # fmt: skip


def _install_args(verbs: Any, name: str) -> None:
    install = verbs.add_parser(
        name,
        help="install RKE2 from a release directory, as an image build's init.provider.install does",
        description="Install RKE2 from the release in DIR (rke2.linux-ARCH.tar.gz, checked against"
        " sha256sum-ARCH.txt) under the resolved root, with this provider's node scripts, as"
        " init.provider.install does at image build; for an agent-mode host, or a build step. A node"
        " that has RKE2 already is left alone (`upgrade` replaces a running one). Exit 0 installed,"
        " 1 not installed (nothing changed), 2 usage.",
    )
    _with_artifacts(install)
    install.add_argument(
        "--version", default="", help="the release expected there (refused if it holds another)"
    )
    install.add_argument(
        "--prefix", default=None, metavar="PATH", type=_given_absolute,
        help="where to install (default: <root>/usr/local in agent mode, /usr for an image)",
    )  # fmt: skip
    install.add_argument("--force", action="store_true", help="install over an RKE2 that is there already")
    install.add_argument("--json", action="store_true", help="what was installed, as a JSON object")
    _with_root(install)


def _upgrade_args(verbs: Any, name: str) -> None:
    up = verbs.add_parser(
        name,
        help="replace RKE2 in place (agent mode), rolled back by itself when it is not ready",
        description="Replace RKE2 on this agent-mode node with the release in DIR (rke2.linux-<arch>.tar.gz"
        " and sha256sum-<arch>.txt, verified first): on a server an etcd snapshot first, then stop, swap,"
        " start, and wait until the node is ready (the checks of wait-ready); not ready in time, the"
        " previous release is put back. Exit 0 upgraded (or nothing to do), 1 not upgraded (refused before"
        " any change, or rolled back), 2 usage or appliance mode, 3 failed and could NOT be rolled back.",
    )
    _with_artifacts(up)
    up.add_argument("--role", choices=ROLES, help="default: the last boot's, else the enabled unit's")
    up.add_argument(
        "--timeout", type=_seconds, default=900.0, metavar="DURATION",
        help="how long each release may take to be ready (default 15m)",
    )  # fmt: skip
    up.add_argument("--dry-run", action="store_true", help="print the plan, change nothing")
    up.add_argument(
        "--force", action="store_true", help="a downgrade, a skipped minor version, a stopped or unready node"
    )
    up.add_argument("--json", action="store_true", help="a JSON object (docs/operating.md: upgrade --json)")
    up.add_argument("--kubelet-url", default="", help=argparse.SUPPRESS)
    up.add_argument("--supervisor-url", default="", help=argparse.SUPPRESS)
    _with_root(up)


def _no_proxy_args(verbs: Any, name: str) -> None:
    # Run by the unit's ExecStartPre when a proxy is configured, not by people.
    text = "write the unit's NO_PROXY with this node's own subnets added (run by RKE2's unit as it starts)"
    no_proxy = verbs.add_parser(name, help=text, description=text[:1].upper() + text[1:] + ".")
    no_proxy.add_argument(
        "--unit", required=True, choices=("rke2-server", "rke2-agent"), help="the unit starting"
    )
    _with_root(no_proxy)


# --- argument types: a bad value is a usage error (exit 2) that says what is expected ----


def _seconds(text: str) -> float:
    """A duration (90, 90s, 15m, 2h): finite and not negative (nan and inf would never end a wait)."""
    from provider_rke2.core.timespec import duration

    try:
        return duration(text)
    except ValueError as err:
        raise argparse.ArgumentTypeError(str(err)) from None


def _interval(text: str) -> float:
    """A pause between two rounds of probes: at least a tenth of a second (0 would spin)."""
    seconds = _seconds(text)
    if seconds < 0.1:
        raise argparse.ArgumentTypeError(f"expected at least 0.1 s between two rounds, got {text!r}")
    return seconds


def _since(text: str) -> Any:
    from datetime import datetime, timezone

    from provider_rke2.core.timespec import instant

    try:
        return instant(text, datetime.now(timezone.utc))
    except ValueError as err:
        raise argparse.ArgumentTypeError(str(err)) from None


def _root_flag(text: str) -> str:
    from provider_rke2.core.errors import ConfigError
    from provider_rke2.core.root import FROM_FLAG, clean

    try:
        return clean(text, FROM_FLAG)
    except ConfigError as err:
        raise argparse.ArgumentTypeError(err.problems[0].message) from None


def _given_absolute(text: str) -> str:
    """A path where RKE2 goes: never one relative to wherever the command happens to run."""
    if not text.startswith("/"):
        raise argparse.ArgumentTypeError(f"expected an absolute path, got {text!r}")
    return text


def _absolute(text: str) -> str:
    return os.path.abspath(text)


# --- the handlers ------------------------------------------------------------------------


def render(options: argparse.Namespace, node: Machine, io: Streams) -> int:
    text = _read_source(options.file, io)
    if text is None:
        return 2
    from provider_rke2.core.errors import ConfigError
    from provider_rke2.core.render import OUTPUT_MODE, render_section
    from provider_rke2.core.secrets import in_section, scrub
    from provider_rke2.core.spec import NO_FACTS, read_section, root_for_section
    from provider_rke2.core.validation import HEADER

    section = read_section(text)  # read once, as agent.boot does
    if section is None:
        io.stderr.write("no cluster section: agent.boot would write nothing\n")
        return 0
    secrets = in_section(section.data, section.config)
    root = root_for_section(section.data, node.stylus_root())
    paths = node.paths(root.path)
    # The node's own fingerprint key and state when it has them (never made here), so that
    # the output is byte for byte what agent.boot would write on this node; --fresh: as on
    # a node that has none yet (the golden renders in stages/).
    key = b"" if options.fresh else (node.read_state(paths.fingerprint_key) or "").encode()
    facts = NO_FACTS if options.fresh else node.facts(paths)
    executable = _boot_executable(node)
    try:
        rendered = render_section(section, root, key, executable, facts)
    except ConfigError:
        from provider_rke2.core import validation

        findings = validation.validate(text, root)  # every problem, not the first layer's
        if options.json:
            io.stdout.write(scrub(validation.as_json(options.file, findings), secrets))
            return 1
        for finding in findings:
            io.stderr.write(f"{finding.level}: {scrub(str(finding.problem), secrets)}\n")
        return 1
    if options.json:
        import json

        report = {
            "path": rendered.path,
            "mode": f"{OUTPUT_MODE:04o}",
            "root": {"path": rendered.root.path, "source": rendered.root.source},
            "executable": executable,
            "warnings": [
                *([] if text.startswith(HEADER) else [{"path": "file", "message": _NO_HEADER}]),
                *({"path": w.path, "message": scrub(w.message, secrets)} for w in rendered.warnings),
            ],
            "document": rendered.text,
        }
        io.stdout.write(json.dumps(report, indent=2) + "\n")
        return 0
    if not text.startswith(HEADER):
        io.stderr.write(f"warning: file: {_NO_HEADER}\n")
    for warning in rendered.warnings:
        io.stderr.write(f"warning: {scrub(str(warning), secrets)}\n")
    io.stderr.write(
        f"# agent.boot would write this to {rendered.path} (mode {OUTPUT_MODE:04o});"
        f" root {rendered.root.path} from {rendered.root.source}; the provider runs from {executable}\n"
    )
    io.stdout.write(rendered.text)
    return 0


def plan(options: argparse.Namespace, node: Machine, io: Streams) -> int:
    text = _read_source(options.file, io)
    if text is None:
        return 2
    from provider_rke2.core import changes, validation
    from provider_rke2.core.errors import ConfigError
    from provider_rke2.core.paths import unit_for
    from provider_rke2.core.render import render_section
    from provider_rke2.core.secrets import in_section, scrub
    from provider_rke2.core.spec import read_section, root_for_section
    from provider_rke2.machine.fsio import read_regular

    section = read_section(text)
    if section is None:
        io.stderr.write("no cluster section: agent.boot would write nothing\n")
        return 0
    secrets = in_section(section.data, section.config)
    root = root_for_section(section.data, node.stylus_root())
    paths = node.paths(root.path)
    facts = node.facts(paths)
    key = (node.read_state(paths.fingerprint_key) or "").encode()
    try:
        rendered = render_section(section, root, key, _boot_executable(node), facts)
    except ConfigError:
        for finding in validation.validate(text, root):
            io.stderr.write(f"{finding.level}: {scrub(str(finding.problem), secrets)}\n")
        return 1
    try:
        now = read_regular(rendered.path, 4 << 20).decode("utf-8", errors="replace")
    except OSError:
        now = ""  # the node has none yet: every file is added
    old, new = changes.files_of(now), changes.files_of(rendered.text)
    secrets |= changes.secrets_in(old) | changes.secrets_in(new)
    unit = unit_for(rendered.role)
    _, state = node.systemctl("is-active", unit)
    action, why = changes.rke2_action(
        state.strip(), node.read_state(paths.started_stamp), rendered.fingerprint
    )
    reset = paths.reset_plan(rendered.data_dir.path, rendered.spec.kubelet_dir)
    result = changes.Changes(
        output=rendered.path,
        files=changes.file_changes(old, new, secrets),
        rke2=action,
        rke2_why=why,
        unit=unit,
        role=(node.read_state(paths.role_state) or "", rendered.role),
        data_dir=(node.read_state(paths.data_dir_state) or "", rendered.data_dir.path),
        reset_removes=reset.remove,
        warnings=tuple(scrub(str(w), secrets) for w in rendered.warnings),
    )
    io.stdout.write(result.to_json() if options.json else result.text())
    return 0


def validate(options: argparse.Namespace, node: Machine, io: Streams) -> int:
    from provider_rke2.core import validation

    as_json = options.json or options.format == "json"
    if len(options.file) == 1 and not os.path.isdir(options.file[0]):
        text = _read_source(options.file[0], io)
        if text is None:
            return 2
        findings = validation.validate(text, node.stylus_root())
        io.stdout.write(
            validation.as_json(options.file[0], findings) if as_json else validation.annotate(text, findings)
        )
        return 1 if validation.has_errors(findings) else 0
    files = []
    for name in _cloud_configs(options.file, io):
        text = _read_source(name, io)
        if text is None:
            return 2
        files.append((name, text))
    if not files:
        return 2
    results = validation.validate_cluster(files, node.stylus_root())
    if as_json:
        io.stdout.write(validation.cluster_json(results))
    else:
        texts = dict(files)
        io.stdout.write(
            "\n".join(
                f"==> {name} <==\n" + validation.annotate(texts[name], found) for name, found in results
            )
        )
    return 1 if any(validation.has_errors(found) for _, found in results) else 0


def paths(options: argparse.Namespace, node: Machine, io: Streams) -> int:
    from provider_rke2.verbs import report

    root = node.stylus_root()
    if options.env:
        io.stdout.write(_scripts_env(root, node))
    else:
        io.stdout.write(report.paths_json(root) if options.json else report.path_table(root))
    return 0


def mode(options: argparse.Namespace, node: Machine, io: Streams) -> int:
    from provider_rke2.verbs import report

    root, seen = node.stylus_root(), report.gather()
    io.stdout.write(report.describe_json(root, seen) if options.json else report.describe(root, seen))
    return 0


def events(options: argparse.Namespace, node: Machine, io: Streams) -> int:
    from provider_rke2.verbs import report

    root = node.stylus_root()
    return report.events(
        root, options.kind, options.since, options.json, options.follow, io.stdout, io.stderr
    )


def status(options: argparse.Namespace, node: Machine, io: Streams) -> int:
    from provider_rke2.verbs import report

    failed = _finish_upgrade(node, io.stderr)
    shown = report.status(node.stylus_root(), io.stdout, as_json=options.json)
    return 3 if failed else shown  # the upgrade's own status for a release it could not put back


def wait_ready(options: argparse.Namespace, node: Machine, io: Streams) -> int:
    from provider_rke2.machine.readiness import wait_ready as watch

    return watch(options, node, io.stderr, io.stdout)


def install(options: argparse.Namespace, node: Machine, io: Streams) -> int:
    import json

    from provider_rke2.agent import imagebuild
    from provider_rke2.core.errors import ProviderError

    root = node.stylus_root()
    config = {
        "artifacts": options.artifacts,
        "root": root.path,
        **({"prefix": options.prefix} if options.prefix else {}),
    }
    payload = {"provider": imagebuild.PROVIDER, "version": options.version, "config": config}
    try:
        request = imagebuild.request(payload, node.architecture())
        if request is None:  # never: the payload names this provider
            raise ProviderError("not an rke2 install request")
        binary = request.prefix + "/bin/rke2"
        if not os.path.isdir(request.artifacts):  # before the lock: a refusal writes nothing
            raise ProviderError(f"no directory {request.artifacts} (--artifacts)")
        if os.path.lexists(binary) and not options.force:
            raise ProviderError(
                f"RKE2 is installed at {binary} already: `upgrade` replaces a running one (or --force)"
            )
        with node.lock(node.paths(root.path).lock_file, 30.0, "install"):
            response = imagebuild.install(request, node.version_of)
    except ProviderError as err:
        io.stderr.write(f"error: install: not installed, nothing changed: {err}\n")
        return 1
    if options.json:
        io.stdout.write(json.dumps(json.loads(response.data), indent=2) + "\n")
    else:
        data = json.loads(response.data)
        io.stdout.write(f"installed RKE2 {data['version'] or '(version unknown)'} in {data['prefix']}\n")
        io.stdout.write(response.log + "\n")
    return 0


def upgrade(options: argparse.Namespace, node: Machine, io: Streams) -> int:
    import signal

    from provider_rke2.core.errors import Busy, ProviderError
    from provider_rke2.machine import upgrade as upgrades
    from provider_rke2.machine.process import terminates

    root = node.stylus_root()
    if not root.agent_mode:
        io.stderr.write(
            "error: upgrade: this node is in appliance mode (root /): RKE2 is part of the immutable OS"
            " image there and changes with it (kairos-agent upgrade); nothing changed\n"
        )
        return 2
    where = node.paths(root.path)
    request = upgrades.Request(
        options.artifacts,
        options.role or "",
        options.timeout,
        options.dry_run,
        options.force,
        options.kubelet_url,
        options.supervisor_url,
    )

    def say(line: str) -> None:
        io.stderr.write(f"upgrade: {line}\n")
        io.stderr.flush()

    # a stop mid-upgrade puts the previous release back
    signal.signal(signal.SIGTERM, terminates("the upgrade"))
    try:
        if options.dry_run:  # writes nothing, the lock file included
            result = upgrades.dry_run(request, where, node)
        else:
            with node.lock(where.lock_file, upgrades.LOCK_WAIT, "upgrade"):
                result = upgrades.upgrade(request, where, node, say)
    except Busy as err:  # another upgrade (or a boot) is at work: its journal is not this one's failure
        result = upgrades.Result(upgrades.REFUSED, f"not upgraded, nothing changed: {err}")
    except Exception as err:  # noqa: BLE001 - a bug must still say where the node stands
        what = str(err) if isinstance(err, ProviderError) else f"internal error: {type(err).__name__}: {err}"
        if upgrades.pending(where):
            result = upgrades.Result(
                upgrades.FAILED,
                f"{what}; the next upgrade, boot or status rolls back what {where.upgrade_journal} lists",
            )
        else:
            result = upgrades.Result(upgrades.REFUSED, f"not upgraded, nothing changed: {what}")
    io.stdout.write(result.to_json() if options.json else result.text())
    return result.exit_status


def no_proxy(options: argparse.Namespace, node: Machine, io: Streams) -> int:
    from provider_rke2.core import proxy
    from provider_rke2.core.paths import Paths
    from provider_rke2.machine.fsio import read_regular

    where = Paths(node.stylus_root().path)
    env_file = where.env_file(options.unit)
    try:
        # Never through a link, never blocking on a FIFO: RKE2's start waits for this.
        rendered = read_regular(env_file, 65536).decode("utf-8", errors="replace")
    except OSError as err:
        io.stderr.write(f"no-proxy: nothing to do: {env_file}: {err.strerror or err}\n")
        return 0
    text = proxy.with_subnets(rendered, proxy.node_subnets(*node.routes()))
    if text is None:
        io.stderr.write(f"no-proxy: nothing to do: {env_file} sets no NO_PROXY\n")
        return 0
    node.write_private(where.no_proxy_env(options.unit), text)
    return 0


# The verbs, in the order `--help` lists them (names.COMMANDS, the launcher's copy, is this
# order too): how each one's arguments are declared, and what runs it.
VERBS: Dict[str, Verb] = {
    "render": Verb(_render_args, render),
    "validate": Verb(_validate_args, validate),
    "plan": Verb(_plan_args, plan),
    "paths": Verb(_paths_args, paths),
    "mode": Verb(_mode_args, mode),
    "events": Verb(_events_args, events),
    "status": Verb(_status_args, status),
    "wait-ready": Verb(_wait_ready_args, wait_ready),
    "install": Verb(_install_args, install),
    "upgrade": Verb(_upgrade_args, upgrade),
    "no-proxy": Verb(_no_proxy_args, no_proxy),
}


# --- helpers ----------------------------------------------------------------------------

_NO_HEADER = "does not start with #cloud-config: Kairos reads no configuration from it"


def _read_source(source: str, io: Streams) -> Optional[str]:
    from provider_rke2.machine.process import at_a_terminal

    try:
        if source == "-":
            if at_a_terminal(io.stdin):
                io.stderr.write("reading the cloud-config from stdin (end it with Ctrl-D), or give a FILE\n")
            return io.stdin.read()
        import stat

        if not stat.S_ISREG(os.stat(source).st_mode):  # a FIFO or a device would hang or never end
            io.stderr.write(f"error: cannot read {source}: not a regular file\n")
            return None
        with open(source, encoding="utf-8") as handle:
            return handle.read()
    except (OSError, UnicodeDecodeError) as err:
        io.stderr.write(f"error: cannot read {source}: {getattr(err, 'strerror', None) or err}\n")
        return None


def _boot_executable(node: Machine) -> str:
    """The path a node runs the provider from: this one's own when it is in a providers
    directory, else where an image has it, whoever runs `render` or `plan` from wherever."""
    from provider_rke2.core.paths import DEFAULT_EXECUTABLE, PROVIDER_DIRS

    executable = node.executable()
    return executable if executable and os.path.dirname(executable) in PROVIDER_DIRS else DEFAULT_EXECUTABLE


def _cloud_configs(given: List[str], io: Streams) -> List[str]:
    """The files named, a directory's *.yaml and *.yml files (sorted, not below it) in its place."""
    found: List[str] = []
    for name in given:
        if not os.path.isdir(name):
            found.append(name)
            continue
        inside = sorted(
            os.path.join(name, entry) for entry in os.listdir(name) if entry.endswith((".yaml", ".yml"))
        )
        if not inside:
            io.stderr.write(f"error: no *.yaml or *.yml file in {name}\n")
            return []
        found += [path for path in inside if os.path.isfile(path)]
    return found


def _finish_upgrade(node: Machine, stderr: TextIO) -> bool:
    """`status` first rolls back an upgrade a crash interrupted, unless one is running now;
    True when it could not."""
    from provider_rke2.core.errors import Busy, ProviderError
    from provider_rke2.machine import upgrade as upgrades

    where = node.paths(node.stylus_root().path)
    if not upgrades.pending(where):
        return False
    failed = False
    try:
        with node.lock(where.lock_file, 0, "status"):
            done = upgrades.recover(where, node, "status", start=True)
    except Busy as err:
        done = f"an interrupted upgrade is not rolled back now: {err}"
    except ProviderError as err:
        done, failed = f"error: {err}", True
    if done:
        stderr.write(f"status: {done}\n")
    return failed


def _scripts_env(root: Root, node: Machine) -> str:
    """rke2-paths.env for this node: the one its last boot laid beside the scripts (with the
    kubelet dir its config names), else made from its recorded data dir or the root's defaults.
    Refused when it would have a reset act on a system directory (a data dir `/usr`)."""
    from provider_rke2.core.errors import ConfigError, Problem
    from provider_rke2.core.paths import is_system_dir
    from provider_rke2.core.root import assignments
    from provider_rke2.machine.fsio import read_regular

    where = node.paths(root.path)
    try:
        text, origin = read_regular(where.scripts_env, 65536).decode("utf-8"), where.scripts_env
        values = assignments(text, origin)
    except (OSError, UnicodeDecodeError, ConfigError):
        data_dir = where.effective_data_dir(node.read_state(where.data_dir_state))
        text, origin = where.reset_plan(data_dir, where.kubelet_dir).env_file(), where.data_dir_state
        values = {"RKE2_DATA_DIR": data_dir}
    for name in ("RKE2_DATA_DIR", "RKE2_KUBELET_DIR"):
        value = values.get(name, "")
        if value and (not value.startswith("/") or is_system_dir(value, where)):
            raise ConfigError(
                [
                    Problem(
                        origin, f"{name} is {value!r}: a reset would act on a system directory; not printed"
                    )
                ]
            )
    return text
