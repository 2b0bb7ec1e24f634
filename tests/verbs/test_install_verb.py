"""`install`: what init.provider.install does, as a verb an agent-mode host (or a build step)
runs, instead of hand-written event JSON."""

import json
import os
import subprocess
import sys

from provider_rke2.core.paths import Paths

from harness import release_artefacts
from helpers import ROOT


def install(root, *args):
    return subprocess.run(
        [sys.executable, "-m", "provider_rke2", "install", "--stylus-root", str(root), *args],
        capture_output=True, text=True, cwd=ROOT, timeout=120,
    )  # fmt: skip


def test_an_agent_mode_host_installs_rke2_under_its_root_with_the_node_scripts(tmp_path):
    root, release = tmp_path / "root", tmp_path / "release"
    release_artefacts(release, "v1.31.2+rke2r1")
    done = install(root, "--artifacts", str(release), "--version", "v1.31.2+rke2r1")
    assert done.returncode == 0, done.stderr
    paths = Paths(str(root))
    assert done.stdout.startswith(f"installed RKE2 v1.31.2+rke2r1 in {root}/usr/local\n")
    assert os.access(paths.binary, os.X_OK) and os.path.isfile(paths.uninstall_script)
    unit = (root / "usr/local/lib/systemd/system/rke2-server.service").read_text()
    assert "/usr/local/bin/rke2 server" in unit
    # A second run leaves the installed RKE2 alone; --force installs over it.
    again = install(root, "--artifacts", str(release))
    assert again.returncode == 1
    assert again.stderr == (
        f"error: install: not installed, nothing changed: RKE2 is installed at {paths.binary} already:"
        " `upgrade` replaces a running one (or --force)\n"
    )
    forced = install(root, "--artifacts", str(release), "--force", "--json")
    assert forced.returncode == 0 and json.loads(forced.stdout)["version"] == "v1.31.2+rke2r1"


def test_another_release_than_the_one_asked_for_is_not_installed(tmp_path):
    root, release = tmp_path / "root", tmp_path / "release"
    release_artefacts(release, "v1.31.2+rke2r1")
    done = install(root, "--artifacts", str(release), "--version", "v1.30.0+rke2r1")
    assert done.returncode == 1 and "not the v1.30.0+rke2r1 asked for" in done.stderr
    assert not os.path.lexists(Paths(str(root)).binary)


def test_a_missing_release_directory_is_named(tmp_path):
    done = install(tmp_path / "root", "--artifacts", str(tmp_path / "nowhere"))
    assert done.returncode == 1 and str(tmp_path / "nowhere") in done.stderr
    assert "Traceback" not in done.stderr and not (tmp_path / "root").exists()


def test_a_relative_prefix_is_a_usage_error_never_a_place_below_the_working_directory(tmp_path):
    release = tmp_path / "release"
    release_artefacts(release, "v1.31.2+rke2r1")
    done = install(tmp_path / "root", "--artifacts", str(release), "--prefix", "usr/local")
    assert done.returncode == 2 and "--prefix: expected an absolute path, got 'usr/local'" in done.stderr
    assert not (ROOT / "usr").exists() and not (tmp_path / "root").exists()
