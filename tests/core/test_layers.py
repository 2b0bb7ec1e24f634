"""The layers the folders show hold: the pure core does no I/O and depends on nothing outside
it; the machine does not reach up into the agent's handlers or the operators' verbs; nothing
but the executable's edge (cli.py) knows both. Read from the source (every import, at the top
or inside a function), so an import added anywhere that breaks a layer fails here."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[2] / "provider_rke2"

# What each folder may import from the package: its own folder and those named.
LAYERS = {
    "core": {"core"},  # a cloud-config in, a YIP document out
    "machine": {"core", "machine"},  # the node and its I/O
    "agent": {"core", "machine", "agent"},  # the agent's events and their handlers
    "verbs": {"core", "machine", "agent", "verbs"},  # the operators' verbs
}
# Outside the folders, by decision: the executable's edge, and the names it answers to (its
# events, verbs and limits: constants every layer may read, importing nothing).
TOP = {"cli": {"core", "machine", "agent", "verbs"}, "names": set()}
EVERYONE_MAY_READ = {"", "names", "__version__"}
# The package's own data (schemas, RKE2's key table) is read by these two, next to themselves.
READS_ITS_OWN_DATA = ("core/schema.py", "core/rke2check.py")
IO = frozenset(
    {
        "os", "subprocess", "socket", "shutil", "tempfile", "fcntl", "select", "signal", "_signal",
        "http.client", "urllib.request", "tarfile", "platform", "importlib.resources", "io",
    }
)  # fmt: skip

MODULES = sorted(
    str(path.relative_to(PACKAGE)) for path in PACKAGE.rglob("*.py") if path.name not in ("__main__.py",)
)
CORE = [module for module in MODULES if module.startswith("core/")]


def imports(module: str) -> set:
    """Every module `module` imports, as dotted names (`from provider_rke2.core import spec`
    is provider_rke2.core.spec)."""
    tree = ast.parse((PACKAGE / module).read_text())
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module:
            found.add(node.module)
            if node.module.startswith("provider_rke2"):
                found |= {f"{node.module}.{alias.name}" for alias in node.names}
    return found


def layer_of(dotted: str) -> str:
    """The folder (or top-level module) a provider_rke2.* name belongs to; "" for the
    package itself."""
    parts = dotted.split(".")
    return parts[1] if len(parts) > 1 else ""


def own_layer(module: str) -> str:
    return module.split("/")[0] if "/" in module else module[: -len(".py")]


def calls_open(module: str) -> bool:
    tree = ast.parse((PACKAGE / module).read_text())
    return any(
        isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id == "open"
        for node in ast.walk(tree)
    )


@pytest.mark.parametrize("module", CORE)
def test_a_core_module_does_no_io(module):
    allowed = {"os"} if module in READS_ITS_OWN_DATA else set()
    assert sorted((imports(module) & IO) - allowed) == []
    assert module in READS_ITS_OWN_DATA or not calls_open(module)


@pytest.mark.parametrize("module", [m for m in MODULES if m != "__init__.py"])
def test_a_module_imports_only_the_layers_below_it(module):
    layer = own_layer(module)
    allowed = LAYERS.get(layer, TOP.get(layer, set())) | EVERYONE_MAY_READ
    reached = {layer_of(name) for name in imports(module) if name.startswith("provider_rke2")}
    assert sorted(reached - allowed) == []


def test_every_module_is_in_a_layer():
    """A new module goes into a folder by decision: only the edge and its names stay on top."""
    top = {module[: -len(".py")] for module in MODULES if "/" not in module} - {"__init__"}
    assert top == set(TOP)
    assert {own_layer(module) for module in MODULES if "/" in module} == set(LAYERS)
    assert len(CORE) > 20  # the folder really read: a wrong PACKAGE would pass the rest


def test_a_layer_rule_catches_what_breaks_it():
    """The check itself: an import of the machine planted in the core is seen."""
    planted = ast.parse("from provider_rke2.machine.node import LocalNode\nimport os\n")
    names = {
        f"{n.module}.{a.name}" for n in ast.walk(planted) if isinstance(n, ast.ImportFrom) for a in n.names
    }
    assert {layer_of(name) for name in names} - LAYERS["core"] - EVERYONE_MAY_READ == {"machine"}
    assert not {name for name in imports("names.py") if name.startswith("provider_rke2")}  # reads nothing
