"""The pure core stays pure: cloud-config in, YIP document out, no I/O. Read from the source
(every import, at the top or inside a function), so an I/O import added anywhere in a core
module, or a core module that starts depending on one that does I/O, fails here."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parent.parent / "provider_rke2"

# What a check, a render, a plan and a validation are made of.
CORE = (
    "changes", "cluster", "datadir", "errors", "fingerprint", "fleet", "names", "paths", "protocol",
    "proxy", "record", "registries", "render", "rke2check", "rke2config", "rke2version", "root",
    "schema", "secrets", "spec", "stages", "timespec", "tokens", "validation", "yamlread",
    "yamlwrite", "yip",
)  # fmt: skip
# The package's own data (schemas, RKE2's key table) is read by these two, next to themselves.
READS_ITS_OWN_DATA = ("schema", "rke2check")
IO = frozenset(
    {
        "os", "subprocess", "socket", "shutil", "tempfile", "fcntl", "select", "signal", "_signal",
        "http.client", "urllib.request", "tarfile", "platform", "importlib.resources", "io",
        "provider_rke2.fsio", "provider_rke2.node", "provider_rke2.nodefacts", "provider_rke2.eventlog",
        "provider_rke2.readiness",
    }
)  # fmt: skip


def imports(module: str) -> set:
    tree = ast.parse((PACKAGE / f"{module}.py").read_text())
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module:
            found.add(node.module)
            if node.module == "provider_rke2":
                found |= {f"provider_rke2.{alias.name}" for alias in node.names}
    return found


def calls_open(module: str) -> bool:
    tree = ast.parse((PACKAGE / f"{module}.py").read_text())
    return any(
        isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id == "open"
        for node in ast.walk(tree)
    )


@pytest.mark.parametrize("module", CORE)
def test_a_core_module_does_no_io(module):
    allowed = {"os"} if module in READS_ITS_OWN_DATA else set()
    assert sorted((imports(module) & IO) - allowed) == []
    assert module in READS_ITS_OWN_DATA or not calls_open(module)


@pytest.mark.parametrize("module", CORE)
def test_a_core_module_imports_only_the_core(module):
    inside = {name.split(".")[1] for name in imports(module) if name.startswith("provider_rke2.")}
    assert sorted(inside - set(CORE)) == []


def test_every_module_is_placed():
    """A new module is core or edge by decision, not by default: the list names the core."""
    modules = {path.stem for path in PACKAGE.glob("*.py")} - {"__init__", "__main__"}
    edge = {
        "cli",
        "commands",
        "eventlog",
        "fsio",
        "imagebuild",
        "machine",
        "node",
        "nodefacts",
        "process",
        "provider",
        "readiness",
        "report",
        "swap",
        "upgrade",
    }
    assert modules == set(CORE) | edge
