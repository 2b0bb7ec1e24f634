"""Where RKE2 is on a node: under the root's usr/local, usr or opt/rke2 (the first that holds
bin/rke2), and every reader (a boot's unit drop-in, init.provider.info, `paths`, a reset's
list) names the same file."""

import json
import os
import subprocess
import sys

import pytest

from provider_rke2.cli import run_event
from provider_rke2.core.paths import Paths, located
from provider_rke2.core.render import APPLIANCE
from provider_rke2.machine import ScriptResult

from helpers import ROOT, cloud_config
from nodes import MemoryNode


@pytest.mark.parametrize(
    ("present", "expected"),
    [
        ((), "/usr/bin/rke2"),  # nothing yet: where an appliance image gets it
        (("/usr/bin/rke2",), "/usr/bin/rke2"),
        (("/usr/bin/rke2", "/usr/local/bin/rke2"), "/usr/local/bin/rke2"),  # the seed's layout first
        (("/opt/rke2/bin/rke2",), "/opt/rke2/bin/rke2"),
        (("/usr/bin/rke2", "/opt/rke2/bin/rke2"), "/usr/bin/rke2"),
    ],
)
def test_an_appliance_finds_rke2_in_one_order(present, expected):
    assert located("/", lambda path: path in present).binary == expected


def test_agent_mode_looks_under_the_root_only():
    root = "/persistent/spectro"
    assert located(root, lambda path: False).binary == f"{root}/usr/local/bin/rke2"
    assert located(root, lambda path: path == "/usr/local/bin/rke2").binary == f"{root}/usr/local/bin/rke2"
    found = located(root, lambda path: path == f"{root}/opt/rke2/bin/rke2")
    assert found.binary == f"{root}/opt/rke2/bin/rke2" and found.upgrade_dir.startswith(f"{root}/opt/rke2/")


def test_a_reset_leaves_the_images_own_rke2_and_removes_one_installed_at_run_time():
    image = Paths("/").reset_plan("/var/lib/rancher/rke2", "/var/lib/kubelet")
    assert not [p for p in image.remove if p.startswith("/usr/")], "the read-only OS's own"
    seed = Paths("/", "/usr/local").reset_plan("/var/lib/rancher/rke2", "/var/lib/kubelet")
    assert "/usr/local/bin/rke2" in seed.remove and "/usr/local/share/rke2" in seed.remove
    opt = Paths("/", "/opt/rke2").reset_plan("/var/lib/rancher/rke2", "/var/lib/kubelet")
    assert "/opt/rke2/bin/rke2" in opt.remove and "/etc/systemd/system/rke2-server.service" in opt.remove_host


@pytest.mark.parametrize("binary", ["/usr/local/bin/rke2", "/usr/bin/rke2"])
def test_the_reset_event_hands_the_script_the_rke2_the_node_has(binary):
    node = MemoryNode(root=APPLIANCE, files={binary: "#!/bin/sh\n"}, script=ScriptResult("/x", 0, ""))
    config = json.dumps({"data": json.dumps({"config": cloud_config(role="init")})})
    assert run_event("cluster.reset", config, node).state == "success"
    removed = node.script_env["RKE2_REMOVE"].split()
    assert (binary in removed) == (binary == "/usr/local/bin/rke2")


def provider_run(*args, stdin="", env=None):
    return subprocess.run(
        [sys.executable, "-m", "provider_rke2", *args],
        input=stdin, capture_output=True, text=True, cwd=ROOT, env={**os.environ, **(env or {})}, timeout=60,
    )  # fmt: skip


@pytest.mark.parametrize("prefix", ["usr/local", "usr", "opt/rke2"])
def test_every_reader_names_the_rke2_an_agent_mode_root_holds(tmp_path, prefix):
    root = tmp_path / "root"
    binary = root / prefix / "bin" / "rke2"
    binary.parent.mkdir(parents=True)
    binary.write_text("#!/bin/sh\necho 'rke2 version v1.31.4+rke2r1 (abc)'\n")
    binary.chmod(0o755)
    env = {"STYLUS_ROOT": str(root)}

    table = json.loads(provider_run("paths", "--json", env=env).stdout)
    assert table["paths"]["binary"] == str(binary)
    scripts_env = provider_run("paths", "--env", env=env).stdout
    assert f"{binary} " in scripts_env.split("RKE2_REMOVE=", 1)[1]

    event = json.dumps({"name": "init.provider.info", "data": "{}"})
    info = json.loads(provider_run("init.provider.info", stdin=event, env=env).stdout)
    assert json.loads(info["data"])["version"] == "v1.31.4+rke2r1" and info["log"] == f"found {binary}"

    config = tmp_path / "node.yaml"
    config.write_text(
        cloud_config(role="init", cluster_token="t" * 32, cluster_config_path=str(tmp_path / "o.yaml"))
    )
    render = provider_run("render", str(config), env=env)
    assert render.returncode == 0, render.stderr
    assert f"ExecStart={binary} server --config {root}/etc/rancher/rke2/config.yaml" in render.stdout
