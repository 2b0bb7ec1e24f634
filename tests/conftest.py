from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any, Dict, List

import pytest
import yaml

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from provider_rke2.core import yip  # noqa: E402
from provider_rke2.core.render import render  # noqa: E402


def make_tarball(members, extra=None) -> bytes:
    """A release-shaped .tar.gz: each member a 0755 file; `extra` more TarInfo entries as given."""
    import io
    import tarfile

    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
        for name, body in members.items():
            info = tarfile.TarInfo(name)
            info.size, info.mode = len(body), 0o755
            tar.addfile(info, io.BytesIO(body))
        for info in extra or []:
            tar.addfile(info)
    return buffer.getvalue()


def cloud_config(**cluster: Any) -> str:
    """A cloud-config text with the given cluster section."""
    return "#cloud-config\n" + yaml.safe_dump({"cluster": cluster}, sort_keys=False)


def rendered_document(text: str) -> Dict[str, Any]:
    """The YIP document agent.boot would write, read back as yip would read it."""
    result = render(text)
    assert result is not None
    assert result.text.startswith(yip.HEADER)
    return yaml.safe_load(result.text)


def steps(document: Dict[str, Any]) -> List[Dict[str, Any]]:
    """Every step of every stage, in order."""
    return [step for stage in document.get("stages", {}).values() for step in stage]


def step_named(document: Dict[str, Any], prefix: str) -> Dict[str, Any]:
    found = [s for s in steps(document) if s["name"].startswith(prefix)]
    assert len(found) == 1, [s["name"] for s in steps(document)]
    return found[0]


def files_of(document: Dict[str, Any]) -> Dict[str, Dict[str, Any]]:
    return {f["path"]: f for s in steps(document) for f in s.get("files", [])}


def unescape(text: str) -> str:
    """What yip's Go template pass makes of text the provider escaped."""
    return text.replace('{{ "{{" }}', "{{")


def dash(script: str, *, env: Dict[str, str] | None = None, cwd: Path | None = None):
    """Run a command as yip does (`sh -c`), with dash as the POSIX sh."""
    return subprocess.run(
        ["dash", "-c", script],
        env={**os.environ, **(env or {})},
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=60,
    )


@pytest.fixture
def stub_bin(tmp_path: Path):
    """A directory first on PATH whose stub commands record their argv to calls.log."""
    bin_dir = tmp_path / "stub-bin"
    bin_dir.mkdir()
    log = tmp_path / "calls.log"

    def add(name: str, body: str = "") -> None:
        script = bin_dir / name
        script.write_text(f'#!/bin/sh\necho "{name} $*" >> "{log}"\n{body}\n')
        script.chmod(0o755)

    def calls() -> List[str]:
        return log.read_text().splitlines() if log.exists() else []

    add.calls = calls  # type: ignore[attr-defined]
    add.path = f"{bin_dir}:{os.environ['PATH']}"  # type: ignore[attr-defined]
    return add


# The provider writes under its root (logs, events, state) and by default the root is `/`.
# No test may touch the real one: every process the tests start inherits a temporary
# STYLUS_ROOT, and the session fails if any of these appear on the machine itself.
GUARDED = (
    "/var/log/provider-rke2",
    "/var/lib/provider-rke2",
    "/usr/local/cloud-config/cluster.kairos.yaml",
    "/persistent",
)


@pytest.fixture(autouse=True, scope="session")
def _the_real_root_is_never_written(tmp_path_factory):
    before = {path: _contents(path) for path in GUARDED}
    previous = os.environ.get("STYLUS_ROOT")
    os.environ["STYLUS_ROOT"] = str(tmp_path_factory.mktemp("stylus-root"))
    yield
    if previous is None:
        del os.environ["STYLUS_ROOT"]
    else:
        os.environ["STYLUS_ROOT"] = previous
    # Whether the path was absent, or there (perhaps hidden by tests/isolated.sh's tmpfs).
    created = [path for path in GUARDED if _contents(path) - before[path]]
    assert not created, f"tests wrote to the machine's own root: {created}"


@pytest.fixture(autouse=True, scope="session")
def _the_checkout_is_never_written():
    """No test leaves a file in the checkout that git does not ignore (a path taken relative
    to the working directory, a default that argparse turned into the checkout)."""
    before = _untracked()
    yield
    left = sorted(_untracked() - before)
    assert not left, f"tests left files in the checkout: {left}"


def _untracked() -> set:
    done = subprocess.run(
        ["git", "status", "--porcelain", "--untracked-files=all"], cwd=ROOT, capture_output=True, text=True
    )
    if done.returncode != 0:  # not a git checkout (a source tarball): nothing to compare
        return set()
    return {line[3:] for line in done.stdout.splitlines() if line.startswith("?? ")}


def _contents(path: str) -> set:
    if not os.path.exists(path):
        return set()
    if os.path.isfile(path):
        return {path}
    return {os.path.join(top, name) for top, _, names in os.walk(path) for name in names} | {path}


@pytest.fixture(scope="session")
def ca_pem(tmp_path_factory) -> bytes:
    """A cluster CA, as RKE2 lays one on a server (the readiness watcher reads it)."""
    where = tmp_path_factory.mktemp("ca")
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
         "-subj", "/CN=rke2-server-ca", "-days", "2", "-keyout", str(where / "ca.key"), "-out", str(where / "ca.pem")],
        check=True, capture_output=True,
    )  # fmt: skip
    return (where / "ca.pem").read_bytes()
