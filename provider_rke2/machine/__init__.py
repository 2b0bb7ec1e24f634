"""The machine: the node the provider acts on, and everything that does I/O on it.

This package's one protocol, `Machine`, is what a handler, a verb or an upgrade may do to a
node; `node.LocalNode` is the real one. Beside it: `fsio` (files on a hostile node),
`nodefacts` (what a check reads of the node), `eventlog`, `readiness`, `release` (an RKE2
release verified and unpacked), `upgrade` and `swap` (one release replaced by another),
`process` (this process's signals).

Everything the provider does to a node goes through `Machine`'s methods: files it reads and
writes, commands it runs, the lock it holds, where it logs; tests hand the handlers a
machine of their own. Each method is a primitive: what to do with what it returns is
decided by the caller, never here.
"""

from __future__ import annotations

from provider_rke2.core.record import record

TYPE_CHECKING = False  # typing costs milliseconds of every boot: annotations only
if TYPE_CHECKING:
    from typing import ContextManager, Mapping, Optional, Protocol, Sequence, Tuple

    from provider_rke2.core.paths import Paths
    from provider_rke2.core.root import Root
    from provider_rke2.core.spec import NodeFacts
    from provider_rke2.machine.readiness import Outcome

    # (url, expected answer, CA file or ""): a readiness probe, provider_rke2.machine.readiness.probes
    Check = Tuple[str, str, str]


@record
class ScriptResult:
    """How a command ran: its status and the end of its output."""

    path: str
    returncode: Optional[int]  # None: killed at the time limit
    output: str


if TYPE_CHECKING:

    class Machine(Protocol):
        """What the provider may do to the node it runs on."""

        # Where things are
        def stylus_root(self) -> Root: ...

        def paths(self, root: str) -> Paths:
            """The paths of `root`, with RKE2 where this node has it."""

        def executable(self) -> Optional[str]:
            """This program's own path when it runs as the packaged executable."""

        def architecture(self) -> str: ...

        # What is there
        def exists(self, path: str) -> bool: ...

        def facts(self, paths: Paths) -> NodeFacts:
            """What a check needs to know of this node."""

        def read_text(self, path: str) -> str: ...

        def read_state(self, path: str) -> Optional[str]: ...

        def version_of(self, binary: str) -> Optional[str]: ...

        # What changes
        def write_state(self, path: str, text: str) -> None: ...

        def write_private(self, path: str, text: str) -> None: ...

        def fingerprint_key(self, path: str) -> bytes: ...

        def remove_file(self, path: str) -> bool: ...

        def lock(self, path: str, wait: float, doing: str) -> ContextManager[None]: ...

        # Where it is told
        def append_log(self, path: str, text: str) -> None: ...

        def emit(self, path: str, entry: dict) -> None: ...

        # What runs
        def run(
            self, argv: Sequence[str], timeout: float, env: Optional[Mapping[str, str]] = None
        ) -> ScriptResult: ...

        def run_script(
            self, installed: str, root: Root, timeout: float, paths_env: Mapping[str, str]
        ) -> ScriptResult: ...

        def systemctl(self, *args: str, timeout: float = ...) -> Tuple[int, str]: ...

        def routes(self) -> Tuple[str, str]: ...

        def wait_ready(self, checks: Sequence[Check], timeout: float) -> Outcome: ...
