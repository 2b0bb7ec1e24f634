"""An in-memory node for handler tests: records what a handler asked the machine to do."""

from __future__ import annotations

import contextlib
from typing import ContextManager, Dict, List, Optional, Tuple

from provider_rke2.core.paths import DEFAULT_EXECUTABLE, Paths, located
from provider_rke2.core.record import replace
from provider_rke2.core.render import APPLIANCE
from provider_rke2.core.root import Root
from provider_rke2.core.spec import NO_FACTS, NodeFacts
from provider_rke2.machine import ScriptResult


class MemoryNode:
    def __init__(
        self,
        root: Root = APPLIANCE,
        files: Optional[Dict[str, str]] = None,
        fail_write: Optional[Exception] = None,
        script: Optional[ScriptResult] = None,
        fail_emit: Optional[Exception] = None,
        facts: NodeFacts = NO_FACTS,
    ):
        self.root = root
        self.files = dict(files or {})
        self.fail_write = fail_write
        self.fail_emit = fail_emit
        self.script = script or ScriptResult("/x/rke2-uninstall.sh", 1, "rke2-uninstall.sh: not found")
        self.writes: List[Tuple[str, str]] = []
        self.logs: List[Tuple[str, str]] = []
        self.events: List[Tuple[str, dict]] = []
        self.state: Dict[str, str] = {}
        self.ran: List[Tuple[str, str, float]] = []
        self.script_env: Dict[str, str] = {}
        self.node_facts = facts
        self.removed: List[str] = []
        self.locks: List[Tuple[str, str]] = []

    def lock(self, path: str, wait: float, doing: str) -> ContextManager[None]:
        self.locks.append((path, doing))
        return contextlib.nullcontext()

    def exists(self, path: str) -> bool:
        return path in self.files or path in self.state

    def paths(self, root: str) -> Paths:
        """RKE2 where the files this node holds put it (paths.located)."""
        return located(root, lambda path: path in self.files)

    def read_text(self, path: str) -> str:
        if path not in self.files:
            raise FileNotFoundError(2, "No such file or directory")
        return self.files[path]

    def write_private(self, path: str, text: str) -> None:
        if self.fail_write:
            raise self.fail_write
        self.writes.append((path, text))

    def stylus_root(self) -> Root:
        return self.root

    def append_log(self, path: str, text: str) -> None:
        self.logs.append((path, text))

    def emit(self, path: str, entry: dict) -> None:
        if self.fail_emit:
            raise self.fail_emit
        self.events.append((path, entry))

    def executable(self) -> str:
        return DEFAULT_EXECUTABLE

    def read_state(self, path: str) -> Optional[str]:
        return self.state.get(path)

    def write_state(self, path: str, text: str) -> None:
        self.state[path] = text

    def fingerprint_key(self, path: str) -> bytes:
        return self.state.setdefault(path, "test-key").encode()

    def run_script(
        self, installed: str, root: Root, timeout: float, paths_env: Dict[str, str]
    ) -> ScriptResult:
        self.ran.append((installed, root.path, timeout))
        self.script_env = dict(paths_env)
        return self.script

    def facts(self, paths) -> NodeFacts:
        recorded = self.state.get(paths.data_dir_state)
        if recorded and not self.node_facts.recorded_data_dir:
            return replace(self.node_facts, recorded_data_dir=recorded)
        return self.node_facts

    def remove_file(self, path: str) -> bool:
        if path in self.files:
            del self.files[path]
            self.removed.append(path)
            return True
        return False

    def version_of(self, binary: str) -> Optional[str]:
        return None

    def architecture(self) -> str:
        return "x86_64"

    def event_types(self) -> List[str]:
        return [entry["type"] for _, entry in self.events]
