import json
import os
import time

from provider_rke2 import provider
from provider_rke2.cli import run_event
from provider_rke2.node import LocalNode, ScriptResult
from provider_rke2.render import APPLIANCE
from provider_rke2.root import FROM_ENVIRON, Root

from conftest import cloud_config
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
    assert response.log == "ran /p/rke2-uninstall.sh\nremoved"
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
        str(script), Root(str(tmp_path), FROM_ENVIRON), 0.5
    )
    assert time.monotonic() - started < 10
    assert (result.returncode, result.output) == (None, "started")
    time.sleep(3.5)
    assert not marker.exists()


def test_the_runner_passes_the_root_to_the_script(tmp_path):
    script = tmp_path / "rke2-uninstall.sh"
    script.write_text('echo "root=$STYLUS_ROOT"\n')
    result = LocalNode(environ={"PATH": os.environ["PATH"]}).run_script(
        str(script), Root("/persistent/spectro", FROM_ENVIRON), 10
    )
    assert (result.path, result.returncode, result.output) == (str(script), 0, "root=/persistent/spectro")


def test_the_runner_falls_back_to_the_packaged_copy(tmp_path, monkeypatch):
    seen = []

    class Recorder:
        def __init__(self, argv, **kwargs):
            seen.append(argv)
            self.returncode = 0
            self.pid = 0

        def communicate(self, timeout=None):
            return b"", b""

    monkeypatch.setattr("subprocess.Popen", Recorder)
    result = LocalNode(environ={}).run_script(str(tmp_path / "absent/rke2-uninstall.sh"), APPLIANCE, 5)
    assert seen[0][0] == "/bin/sh"
    assert seen[0][1].endswith(os.path.join("provider_rke2", "scripts", "rke2-uninstall.sh"))
    assert result.path == seen[0][1]
