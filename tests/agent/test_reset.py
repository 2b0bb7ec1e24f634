import json
import os
import time

import pytest

from provider_rke2.agent import provider
from provider_rke2.cli import run_event
from provider_rke2.core.errors import OutputError
from provider_rke2.core.paths import Paths
from provider_rke2.core.render import APPLIANCE
from provider_rke2.core.root import FROM_ENVIRON, Root
from provider_rke2.core.spec import NodeFacts
from provider_rke2.machine import ScriptResult
from provider_rke2.machine.node import LocalNode

from helpers import cloud_config
from nodes import MemoryNode


def ResetNode(result, root=APPLIANCE):
    return MemoryNode(root=root, script=result)


def reset_event(config):
    return json.dumps({"data": json.dumps({"config": config})})


def test_reset_runs_the_uninstall_script_under_the_root():
    node = ResetNode(
        ScriptResult("/p/rke2-uninstall.sh", 0, "removed"), Root("/persistent/spectro", FROM_ENVIRON)
    )
    response = run_event("cluster.reset", reset_event(cloud_config(role="init")), node)
    assert (response.state, response.error) == ("success", "")
    assert response.log == (
        "ran /p/rke2-uninstall.sh (data dir /persistent/spectro/var/lib/rancher/rke2)\nremoved"
    )
    assert node.ran == [
        (
            "/persistent/spectro/opt/rke2/scripts/rke2-uninstall.sh",
            "/persistent/spectro",
            provider.RESET_TIMEOUT,
        )
    ]


def test_reset_uses_cluster_root_path_when_nothing_else_set_a_root():
    node = ResetNode(ScriptResult("/x", 0, ""))
    config = cloud_config(role="init", providerConfig={"cluster_root_path": "/persistent/spectro"})
    run_event("cluster.reset", reset_event(config), node)
    assert node.ran[0][1] == "/persistent/spectro"


def test_reset_works_even_when_the_section_no_longer_validates():
    node = ResetNode(ScriptResult("/x", 0, ""))
    response = run_event("cluster.reset", reset_event(cloud_config(role="retired", env=[1])), node)
    assert response.state == "success"


def test_reset_without_a_cluster_section_does_nothing():
    node = ResetNode(ScriptResult("/x", 0, ""))
    response = run_event("cluster.reset", reset_event("hostname: a\n"), node)
    assert (response.state, response.error, response.log) == ("", "", provider.NO_CLUSTER_TO_RESET)
    assert node.ran == []


def test_a_failing_script_reports_its_output():
    node = ResetNode(ScriptResult("/x", 1, "rm: cannot remove '/var/lib/kubelet': Device or resource busy"))
    response = run_event("cluster.reset", reset_event(cloud_config(role="init")), node)
    assert response.state == "error"
    assert (
        response.error
        == "failed to reset cluster: rm: cannot remove '/var/lib/kubelet': Device or resource busy"
    )


def test_a_silent_failure_still_says_what_failed():
    node = ResetNode(ScriptResult("/x/rke2-uninstall.sh", 4, ""))
    response = run_event("cluster.reset", reset_event(cloud_config(role="init")), node)
    assert response.error == "failed to reset cluster: /x/rke2-uninstall.sh exited with status 4"


def test_a_script_past_its_time_limit_is_reported():
    node = ResetNode(ScriptResult("/x/rke2-uninstall.sh", None, "stopping"))
    response = run_event("cluster.reset", reset_event(cloud_config(role="init")), node)
    limit = provider.RESET_TIMEOUT
    assert (
        response.error
        == f"failed to reset cluster: /x/rke2-uninstall.sh did not finish within {limit} s: stopping"
    )


def test_the_runner_kills_the_whole_script_tree_at_the_limit(tmp_path):
    script = tmp_path / "opt/rke2/scripts/rke2-uninstall.sh"
    script.parent.mkdir(parents=True)
    marker = tmp_path / "child-survived"
    script.write_text(f"echo started\n(sleep 3; touch {marker}) &\nsleep 30\n")
    started = time.monotonic()
    result = LocalNode(environ=dict(os.environ)).run_script(
        str(script), Root(str(tmp_path), FROM_ENVIRON), 0.5, {}
    )
    assert time.monotonic() - started < 10
    assert (result.returncode, result.output) == (None, "started")
    time.sleep(3.5)
    assert not marker.exists()


def test_the_runner_passes_the_root_to_the_script(tmp_path):
    script = tmp_path / "rke2-uninstall.sh"
    script.write_text('echo "root=$STYLUS_ROOT data=$RKE2_DATA_DIR"\n')
    result = LocalNode(environ={"PATH": os.environ["PATH"]}).run_script(
        str(script), Root("/persistent/spectro", FROM_ENVIRON), 10, {"RKE2_DATA_DIR": "/data/rke2"}
    )
    assert (result.path, result.returncode, result.output) == (
        str(script),
        0,
        "root=/persistent/spectro data=/data/rke2",
    )


def test_the_runner_falls_back_to_the_packaged_copy(tmp_path, monkeypatch):
    seen = []

    class Recorder:
        def __init__(self, argv, **kwargs):
            seen.append(argv)
            self.returncode = 0
            self.pid = 0

        def wait(self, timeout=None):
            return 0

    monkeypatch.setattr("subprocess.Popen", Recorder)
    result = LocalNode(environ={}).run_script(str(tmp_path / "absent/rke2-uninstall.sh"), APPLIANCE, 5, {})
    assert seen[0][0] == "/bin/sh"
    assert seen[0][1].endswith(os.path.join("provider_rke2", "scripts", "rke2-uninstall.sh"))
    assert result.path == seen[0][1]


# --- which directories a reset removes --------------------------------------------------

AGENT = Root("/persistent/spectro", FROM_ENVIRON)
OK = ScriptResult("/x/rke2-uninstall.sh", 0, "")


def reset_env(config, root=APPLIANCE, facts=None, state=None):
    node = MemoryNode(root=root, script=OK, facts=facts or NodeFacts())
    node.state.update(state or {})
    response = run_event("cluster.reset", reset_event(config), node)
    assert response.state == "success", response
    return node.script_env


def test_the_script_gets_the_data_dir_the_user_configured():
    env = reset_env(cloud_config(role="init", config="data-dir: /data/rke2\n"), AGENT)
    assert env["RKE2_DATA_DIR"] == "/data/rke2"
    assert "/data/rke2" not in env["RKE2_REMOVE"].split(), "a user's data dir is emptied, never removed whole"
    assert "/persistent/spectro/var/lib/rancher/rke2" not in env["RKE2_REMOVE"].split()


def test_the_recorded_data_dir_wins_over_the_config():
    state = {Paths(AGENT.path).data_dir_state: "/var/lib/rancher/rke2"}
    env = reset_env(cloud_config(role="init", config="data-dir: /data/other\n"), AGENT, state=state)
    assert env["RKE2_DATA_DIR"] == "/var/lib/rancher/rke2"


def test_a_go_era_node_never_booted_by_us_resets_its_real_data_dir():
    facts = NodeFacts(has_state=lambda path: path == "/var/lib/rancher/rke2")
    env = reset_env(cloud_config(role="worker"), AGENT, facts)
    assert env["RKE2_DATA_DIR"] == "/var/lib/rancher/rke2"


def test_a_section_that_no_longer_validates_resets_the_roots_defaults():
    env = reset_env(cloud_config(role="retired", config="data-dir: [1]\n"), AGENT)
    assert env["RKE2_DATA_DIR"] == "/persistent/spectro/var/lib/rancher/rke2"
    assert env["RKE2_KUBELET_DIR"] == "/persistent/spectro/var/lib/kubelet"


def test_the_kubelet_dir_follows_kubelet_arg_root_dir():
    config = "kubelet-arg:\n- root-dir=/data/kubelet\n- v=2\n"
    assert reset_env(cloud_config(role="worker", config=config), AGENT)["RKE2_KUBELET_DIR"] == "/data/kubelet"


def test_a_successful_reset_removes_the_output_file_that_would_start_rke2_again():
    node = MemoryNode(script=OK, files={"/out/cluster.kairos.yaml": "#cloud-config\n"})
    config = cloud_config(role="init", cluster_config_path="/out/cluster.kairos.yaml")
    response = run_event("cluster.reset", reset_event(config), node)
    assert node.removed == ["/out/cluster.kairos.yaml"]
    assert response.log.splitlines()[-1] == "removed /out/cluster.kairos.yaml"


def test_a_failed_reset_keeps_the_output_file():
    node = MemoryNode(script=ScriptResult("/x", 1, "busy"), files={"/out/c.yaml": "x"})
    run_event(
        "cluster.reset", reset_event(cloud_config(role="init", cluster_config_path="/out/c.yaml")), node
    )
    assert node.removed == []


def test_the_output_file_is_never_removed_through_a_link(tmp_path):
    target = tmp_path / "precious"
    target.write_text("keep")
    link = tmp_path / "cluster.kairos.yaml"
    link.symlink_to(target)
    node = LocalNode(environ={})
    with pytest.raises(OutputError, match="is not a regular file"):
        node.remove_file(str(link))
    assert target.read_text() == "keep" and link.is_symlink()
    assert node.remove_file(str(tmp_path / "absent")) is False
