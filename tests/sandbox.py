"""Run a command where only chosen paths are writable: a private mount namespace
with `/` read-only, the test's temporary directory bound read-write, fresh tmpfs
over the host runtime paths (/run, /var/lib, /var/log, /opt), and /etc (and any
other `overlays`) as an overlay whose changes land in the test's directory (the
machine's own files are seen, never written). Anything the command tries to change elsewhere fails with
"Read-only file system"; nothing it does reaches the real machine. Fake content
is laid down inside the namespace, and a listing of every writable path is taken
before it ends. With `network=True` the command also gets a network namespace of
its own, empty, where the real iptables can be used."""

from __future__ import annotations

import os
import shlex
import subprocess
from pathlib import Path
from typing import Dict, List, Sequence, Set

# Host paths the scripts may touch, each replaced by an empty tmpfs.
RUNTIME_MOUNTS = ("/run", "/var/lib", "/var/log", "/opt")


def run(
    tmp: Path,
    command: Sequence[str],
    *,
    host_files: Dict[str, str],
    host_links: Dict[str, str],
    env: Dict[str, str],
    extra_mounts: Sequence[str] = (),
    network: bool = False,
    overlays: Sequence[str] = ("/etc",),
) -> subprocess.CompletedProcess:
    """Run `command`; afterwards tmp/listing.txt lists every file under the writable paths
    (an overlay's as what changed there) and tmp/status.txt its exit status."""
    lines: List[str] = ["set -e", f"mount --bind {q(tmp)} {q(tmp)}"]
    lines += [f"mount -t tmpfs tmpfs {q(m)}" for m in RUNTIME_MOUNTS]
    for lower in overlays:
        upper, work = _upper(tmp, lower), tmp / f".work{lower.replace('/', '-')}"
        upper.mkdir(exist_ok=True)
        work.mkdir(exist_ok=True)
        lines.append(
            f"mount -t overlay overlay -o lowerdir={lower},upperdir={q(upper)},workdir={q(work)} {lower}"
        )
    for path, content in host_files.items():
        lines.append(f"mkdir -p {q(os.path.dirname(path))} && printf %s {q(content)} > {q(path)}")
    for path, target in host_links.items():
        lines.append(f"mkdir -p {q(os.path.dirname(path))} && ln -s {q(target)} {q(path)}")
    lines += [f"mkdir -p {q(m)} && mount -t tmpfs tmpfs {q(m)} && touch {q(m)}/mounted" for m in extra_mounts]
    lines.append("mount -o remount,bind,ro /")
    lines.append("set +e")
    lines.append(" ".join(q(part) for part in command) + f" > {q(tmp)}/output.txt 2>&1")
    lines.append(f"echo $? > {q(tmp)}/status.txt")
    lines.append(listing_command(tmp, f"{q(tmp)}/listing.txt", overlays))
    unshare = ["unshare", "--mount", "--propagation", "private", *(["--net"] if network else [])]
    if os.geteuid() != 0:
        unshare.append("--map-root-user")
    try:
        result = subprocess.run(
            [*unshare, "sh", "-c", "\n".join(lines)],
            env={**os.environ, **env},
            capture_output=True,
            text=True,
            timeout=600,
        )
    except subprocess.TimeoutExpired:
        output = tmp / "output.txt"
        said = output.read_text(errors="replace")[-4000:] if output.exists() else "(nothing)"
        raise AssertionError(f"the sandboxed command did not finish in 600 s; it printed:\n{said}") from None
    assert result.returncode == 0, f"sandbox setup failed: {result.stderr}"
    return result


def listing_command(tmp: Path, out: str, overlays: Sequence[str] = ("/etc",)) -> str:
    """A shell command writing every non-directory under the writable paths to `out`, an
    overlay's changes as its own paths (a whiteout, a deleted file, as `deleted:PATH`)."""
    finds = [f"find {' '.join(q(p) for p in (*RUNTIME_MOUNTS, str(tmp / 'root')))} -mindepth 1 ! -type d"]
    for lower in overlays:
        upper = str(_upper(tmp, lower))
        finds.append(f"find {q(upper)} -mindepth 1 ! -type d ! -type c | sed 's|^{upper}/|{lower}/|'")
        finds.append(f"find {q(upper)} -type c | sed 's|^{upper}/|deleted:{lower}/|'")
    return "{ " + "; ".join(f"{find} 2>/dev/null" for find in finds) + f"; }} | sort > {out}"


def _upper(tmp: Path, lower: str) -> Path:
    return tmp / f".upper{lower.replace('/', '-')}"


def listing(tmp: Path, name: str = "listing.txt") -> Set[str]:
    return set((tmp / name).read_text().splitlines())


def q(text: str) -> str:
    return shlex.quote(str(text))
