"""The real machine (provider_rke2.machine.Machine): the files, environment and processes
of the node this runs on, each method one primitive."""

from __future__ import annotations

import os

from provider_rke2.core import root as roots
from provider_rke2.core.errors import ConfigError, OutputError, Problem
from provider_rke2.machine import ScriptResult
from provider_rke2.machine.eventlog import JOURNAL_SOCKET, LIMIT
from provider_rke2.names import MAX_EVENT_BYTES

TYPE_CHECKING = False  # typing costs milliseconds of every boot: annotations only
if TYPE_CHECKING:
    from typing import Any, ContextManager, Mapping, Optional, Sequence, Tuple

    from provider_rke2.core.paths import Paths
    from provider_rke2.core.spec import NodeFacts
    from provider_rke2.machine import Check
    from provider_rke2.machine.readiness import Outcome

MAX_SCRIPT_OUTPUT = 8192
VERSION_TIMEOUT = 30.0
SYSTEMCTL_TIMEOUT = 180.0  # a stop waits for RKE2 to end its containers' shims
ENVIRONMENT_LIMIT = 64 * 1024  # /etc/spectro/environment: a few assignments


class LocalNode:
    def __init__(
        self,
        stylus_root_flag: Optional[str] = None,
        environ: Optional[Mapping[str, str]] = None,
        journal_socket: str = JOURNAL_SOCKET,
    ):
        self.stylus_root_flag = stylus_root_flag
        self.environ = os.environ if environ is None else environ
        self.journal_socket = journal_socket

    def executable(self) -> Optional[str]:
        """This program's own path, when it runs as the packaged executable."""
        import sys

        argv0 = os.path.realpath(sys.argv[0]) if sys.argv and sys.argv[0] else ""
        return argv0 if argv0 and not argv0.endswith(".py") and os.path.isfile(argv0) else None

    def paths(self, root: str) -> Paths:
        """The paths of `root` with RKE2 where this node really has it (paths.located)."""
        from provider_rke2.core.paths import located

        return located(root, os.path.isfile)

    def emit(self, path: str, entry: dict) -> None:
        from provider_rke2.machine import eventlog

        eventlog.append(path, entry, self.journal_socket)

    def read_state(self, path: str) -> Optional[str]:
        """A state file's text; None when there is none, or it is not a regular file."""
        from provider_rke2.machine.fsio import read_regular

        try:
            return read_regular(path, 65536).decode("utf-8").strip()
        except (OSError, UnicodeDecodeError):
            return None

    def write_state(self, path: str, text: str) -> None:
        from provider_rke2.machine.fsio import PRIVATE_DIR, replace_file

        replace_file(path, text.encode("utf-8") + b"\n", 0o600, PRIVATE_DIR)

    def fingerprint_key(self, path: str) -> bytes:
        """The node's random key for fingerprints, made on first use (0600)."""
        key = self.read_state(path)
        if not key:
            key = os.urandom(32).hex()
            self.write_state(path, key)
        return key.encode()

    def read_text(self, path: str) -> str:
        """The payload file the agent wrote: a regular file, never a link or a FIFO."""
        from provider_rke2.machine.fsio import read_regular

        try:
            return read_regular(path, MAX_EVENT_BYTES + 1).decode("utf-8")
        except UnicodeDecodeError as err:
            raise OSError(84, f"not UTF-8 text (byte {err.start})") from None

    def facts(self, paths: Paths) -> NodeFacts:
        """What a check needs to know of this node (provider_rke2.machine.nodefacts)."""
        from provider_rke2.machine.nodefacts import read

        return read(paths, self.read_state)

    def exists(self, path: str) -> bool:
        """Whether anything is at `path`, a dangling link too."""
        return os.path.lexists(path)

    def remove_file(self, path: str) -> bool:
        """Remove a regular file (never through a link); False when there was none."""
        import stat

        try:
            if not stat.S_ISREG(os.lstat(path).st_mode):
                raise OutputError(f"not removed: {path} is not a regular file")
            os.unlink(path)
        except FileNotFoundError:
            return False
        except OSError as err:
            raise OutputError(f"cannot remove {path}: {err.strerror or err}") from None
        return True

    def routes(self) -> Tuple[str, str]:
        """The kernel's IPv4 and IPv6 routing tables, as /proc shows them."""
        return _read_or_empty("/proc/net/route"), _read_or_empty("/proc/net/ipv6_route")

    def write_private(self, path: str, text: str) -> None:
        from provider_rke2.machine.fsio import replace_file

        replace_file(path, text.encode("utf-8"), 0o600)

    def append_log(self, path: str, text: str) -> None:
        from provider_rke2.machine.fsio import append_record

        append_record(path, text.encode("utf-8", errors="backslashreplace"), LIMIT)

    def stylus_root(self) -> roots.Root:
        return roots.resolve(self.stylus_root_flag, self._environment_file(), self.environ)

    def _environment_file(self) -> Optional[str]:
        # It decides where root writes everything: read only as written by root, whole, and
        # as bytes (a text read would turn the CRLF that dash keeps into a plain line end).
        from provider_rke2.machine.fsio import read_trusted

        try:
            return read_trusted(roots.STYLUS_ENVIRONMENT, ENVIRONMENT_LIMIT).decode("utf-8")
        except FileNotFoundError:
            return None
        except (OSError, UnicodeDecodeError) as err:
            reason = getattr(err, "strerror", None) or str(err)
            raise ConfigError([Problem(roots.STYLUS_ENVIRONMENT, f"cannot read: {reason}")]) from None

    # subprocess, platform and importlib.resources are imported by the methods that
    # need them: agent.boot, the common handled event, uses none of them.

    def architecture(self) -> str:
        import platform

        return platform.machine()

    def version_of(self, binary: str) -> Optional[str]:
        """`binary --version`, or None when there is no such binary or it fails."""
        if not os.access(binary, os.X_OK):
            return None
        done = self.run([binary, "--version"], VERSION_TIMEOUT)
        return done.output if done.returncode == 0 else None

    def systemctl(self, *args: str, timeout: float = SYSTEMCTL_TIMEOUT) -> Tuple[int, str]:
        """systemctl from PATH (its place differs between distributions): status and output."""
        done = self.run(["systemctl", *args], timeout)
        return (124 if done.returncode is None else done.returncode), done.output

    def wait_ready(self, checks: Sequence[Check], timeout: float) -> Outcome:
        import sys

        from provider_rke2.machine import readiness

        # An upgrade's wait: at a terminal, what it still waits for (an upgrade may wait 15 min).
        progress = readiness.progress_at(sys.stderr)
        return readiness.wait(readiness.probes(list(checks)), timeout, max_interval=5.0, progress=progress)

    def lock(self, path: str, wait: float, doing: str) -> ContextManager[None]:
        from provider_rke2.machine.fsio import node_lock

        return node_lock(path, wait, doing)

    def run_script(
        self, installed: str, root: roots.Root, timeout: float, paths_env: Mapping[str, str]
    ) -> ScriptResult:
        """Run the node's copy of a provider script, or the packaged one when the node has none."""
        from contextlib import ExitStack
        from importlib import resources

        with ExitStack() as stack:
            path = installed
            if not os.path.isfile(path):
                # one name a joinpath: Python 3.9's takes no more
                scripts = resources.files("provider_rke2").joinpath("scripts")
                packaged = scripts.joinpath(os.path.basename(installed))
                path = str(stack.enter_context(resources.as_file(packaged)))
            done = self.run(["/bin/sh", path], timeout, {roots.VARIABLE: root.path, **paths_env})
        return ScriptResult(path, done.returncode, done.output)

    def run(
        self, argv: Sequence[str], timeout: float, env: Optional[Mapping[str, str]] = None
    ) -> ScriptResult:
        """Run a command, bounded as a whole: the output goes to an unlinked temporary file,
        not a pipe, so a child that outlives it (even one that left its process group with
        setsid) cannot hold the provider waiting for the pipe to close; at the limit, or
        when the provider itself is told to stop, the command's whole process group is killed."""
        import subprocess

        with _scratch_file() as output:
            try:
                process = subprocess.Popen(  # noqa: S603 - a fixed argv, no shell parses it
                    list(argv),
                    env={**self.environ, **(env or {})},
                    stdin=subprocess.DEVNULL,
                    stdout=output,
                    stderr=subprocess.STDOUT,
                    start_new_session=True,
                )
            except OSError as err:
                return ScriptResult(argv[0], 127, f"cannot run {argv[0]}: {err.strerror or err}")
            try:
                code: Optional[int] = process.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                code = None
                _end_group(process)
            except BaseException:  # Terminated (SIGTERM to the provider): the command goes too
                _end_group(process)
                raise
            output.seek(max(0, os.fstat(output.fileno()).st_size - 4 * MAX_SCRIPT_OUTPUT))
            text = output.read().decode("utf-8", errors="replace").strip()
        return ScriptResult(argv[0], code, text[-MAX_SCRIPT_OUTPUT:])


def _scratch_file() -> Any:
    """An unnamed file for a script's output: in memory (memfd), so that a reset works on a
    read-only / as well; a temporary file where the kernel has no memfd."""
    import tempfile

    try:
        return os.fdopen(os.memfd_create("provider-rke2-script-output", os.MFD_CLOEXEC), "w+b")
    except (AttributeError, OSError):
        return tempfile.TemporaryFile()


def _end_group(process: Any) -> None:
    """Kill the script's whole process group (its children, umount, iptables-restore, ...).
    The script is not reaped yet, so its pid, which names the group, is still its own."""
    import signal

    if process.pid > 0:  # killpg(0) would be the provider's own group
        try:
            os.killpg(process.pid, signal.SIGKILL)
        except OSError:
            pass
    process.wait()


def _read_or_empty(path: str) -> str:
    try:
        with open(path, encoding="ascii", errors="replace") as handle:
            return handle.read(1 << 20)
    except OSError:
        return ""
