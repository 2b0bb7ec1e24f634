"""Run a command where only chosen paths are writable: a private mount namespace
with `/` read-only, the test's temporary directory bound read-write, and fresh
tmpfs over the host runtime paths the node scripts own. Anything the command
tries to change elsewhere fails with "Read-only file system"; nothing it does
reaches the real machine. Fake content for the tmpfs paths is laid down inside
the namespace, and a listing of every writable path is taken before it ends."""

from __future__ import annotations

import os
import shlex
import subprocess
from pathlib import Path
from typing import Dict, List, Sequence

# Host paths the scripts may touch, each replaced by an empty tmpfs.
RUNTIME_MOUNTS = ("/run", "/var/lib", "/var/log", "/opt", "/etc/systemd/system")


def run(
    tmp: Path,
    command: Sequence[str],
    *,
    host_files: Dict[str, str],
    host_links: Dict[str, str],
    env: Dict[str, str],
    extra_mounts: Sequence[str] = (),
) -> subprocess.CompletedProcess:
    """Run `command`; afterwards tmp/listing.txt lists every file under the writable paths."""
    lines: List[str] = ["set -e", f"mount --bind {q(tmp)} {q(tmp)}"]
    lines += [f"mount -t tmpfs tmpfs {q(m)}" for m in RUNTIME_MOUNTS]
    for path, content in host_files.items():
        lines.append(f"mkdir -p {q(os.path.dirname(path))} && printf %s {q(content)} > {q(path)}")
    for path, target in host_links.items():
        lines.append(f"mkdir -p {q(os.path.dirname(path))} && ln -s {q(target)} {q(path)}")
    lines += [f"mkdir -p {q(m)} && mount -t tmpfs tmpfs {q(m)} && touch {q(m)}/mounted" for m in extra_mounts]
    lines.append("mount -o remount,bind,ro /")
    lines.append("set +e")
    lines.append(" ".join(q(part) for part in command) + f" > {q(tmp)}/output.txt 2>&1")
    lines.append(f"echo $? > {q(tmp)}/status.txt")
    watched = " ".join(q(p) for p in (*RUNTIME_MOUNTS, str(tmp / "root")))
    lines.append(f"find {watched} -mindepth 1 ! -type d | sort > {q(tmp)}/listing.txt")
    unshare = ["unshare", "--mount", "--propagation", "private"]
    if os.geteuid() != 0:
        unshare.append("--map-root-user")
    result = subprocess.run(
        [*unshare, "sh", "-c", "\n".join(lines)],
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, f"sandbox setup failed: {result.stderr}"
    return result


def q(text: str) -> str:
    return shlex.quote(str(text))
