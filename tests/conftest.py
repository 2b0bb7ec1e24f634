from __future__ import annotations

import os
import subprocess
from pathlib import Path
from typing import List

import pytest

from helpers import ROOT  # the checkout on sys.path, for every test module after this one


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
