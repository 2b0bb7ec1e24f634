"""`validate` over several cloud-configs: the nodes of one cluster checked together, with
the same marks, JSON report and exit statuses as one file."""

import json
import subprocess
import sys

import pytest

from provider_rke2.core.root import FROM_FLAG, Root
from provider_rke2.core.validation import validate_cluster

from helpers import ROOT

APPLIANCE = Root("/", FROM_FLAG)
TOKEN = "fleet-cluster-token"


def node(role, token=TOKEN, host="cp.lan", config="", hostname=""):
    lines = ["#cloud-config"]
    if hostname:
        lines.append(f"hostname: {hostname}")
    lines += ["cluster:", f"  role: {role}", f"  cluster_token: {token}"]
    if host and role != "init":
        lines.append(f"  control_plane_host: {host}")
    if role == "init" and host:
        lines.append(f"  control_plane_host: {host}")
    if config:
        lines.append("  config: |")
        lines += [f"    {line}" for line in config.splitlines()]
    return "\n".join(lines) + "\n"


def found(files):
    """{file: [(level, path, line text)]} for the findings `validate` adds across the files."""
    texts = dict(files)
    results = validate_cluster(files, APPLIANCE)
    return {
        name: [
            (f.level, f.problem.path, texts[name].splitlines()[f.line - 1].strip() if f.line else "")
            for f in findings
        ]
        for name, findings in results
    }


def messages(files):
    return {name: [str(f.problem) for f in findings] for name, findings in validate_cluster(files, APPLIANCE)}


def test_a_sound_cluster_has_nothing_to_report():
    files = [
        ("init.yaml", node("init", hostname="edge-1")),
        ("cp.yaml", node("controlplane", hostname="edge-2")),
        ("worker.yaml", node("worker", hostname="edge-3")),
    ]
    assert found(files) == {"init.yaml": [], "cp.yaml": [], "worker.yaml": []}


def test_two_init_nodes_are_an_error_on_the_second_at_its_role():
    files = [("a.yaml", node("init")), ("b.yaml", node("init"))]
    assert found(files)["b.yaml"] == [("error", "cluster.role", "role: init")]
    assert "init here and in a.yaml" in messages(files)["b.yaml"][0]
    assert found(files)["a.yaml"] == []


@pytest.mark.parametrize("where", ["cluster_token", "config"])
def test_two_tokens_are_an_error_naming_the_file_never_the_token(where):
    other = (
        node("worker", token="another-cluster-token")
        if where == "cluster_token"
        else node("worker", token=TOKEN).replace(f"  cluster_token: {TOKEN}\n", "")
        + "  config: |\n    token: another-cluster-token\n"
    )
    files = [("init.yaml", node("init")), ("worker.yaml", other)]
    [(level, path, _)] = found(files)["worker.yaml"]
    assert level == "error" and path == (
        "cluster.cluster_token" if where == "cluster_token" else "cluster.config.token"
    )
    [message] = messages(files)["worker.yaml"]
    assert "differs from the token of init.yaml" in message
    assert TOKEN not in message and "another-cluster-token" not in message


def test_the_same_token_in_its_full_form_is_the_same_token():
    full = f"K10{'a' * 64}::server:{TOKEN}"
    files = [("init.yaml", node("init")), ("worker.yaml", node("worker", token=full))]
    assert found(files)["worker.yaml"] == []


def test_servers_that_disagree_on_the_clusters_networks_are_errors_at_the_key():
    files = [
        ("init.yaml", node("init", config="cluster-cidr: 10.52.0.0/16\ncluster-domain: edge.local")),
        ("cp.yaml", node("controlplane", config="cluster-cidr: 10.62.0.0/16\ncni: cilium")),
    ]
    result = found(files)["cp.yaml"]
    assert ("error", "cluster.config.cluster-cidr", "cluster-cidr: 10.62.0.0/16") in result
    assert any(path == "cluster.config.cluster-domain" for _, path, _ in result)
    assert ("error", "cluster.config.cni", "cni: cilium") in result
    text = " ".join(messages(files)["cp.yaml"])
    assert "10.62.0.0/16 here, 10.52.0.0/16 on init.yaml" in text
    assert "cluster.local here, edge.local on init.yaml" in text


def test_a_host_no_server_is_known_by_is_a_warning_on_the_joining_node():
    files = [
        ("init.yaml", node("init", host="", config="tls-san:\n- lb.lan")),
        ("worker.yaml", node("worker", host="elsewhere.lan")),
        ("worker2.yaml", node("worker", host="lb.lan")),
    ]
    assert found(files)["worker.yaml"] == [
        ("warning", "cluster.control_plane_host", "control_plane_host: elsewhere.lan")
    ]
    assert found(files)["worker2.yaml"] == []


def test_two_nodes_of_one_name_are_an_error():
    files = [
        ("a.yaml", node("init", hostname="edge-1")),
        ("b.yaml", node("worker", hostname="edge-1")),
        ("c.yaml", node("worker", config="node-name: EDGE-1")),
        ("d.yaml", node("worker", hostname="edge-{{ trunc 4 .MachineID }}")),
    ]
    result = found(files)
    assert result["b.yaml"] == [("error", "hostname", "hostname: edge-1")]
    assert result["c.yaml"] == [("error", "cluster.config.node-name", "node-name: EDGE-1")]
    assert result["d.yaml"] == [], "a name Kairos makes at boot is not known here"


def test_a_file_with_errors_of_its_own_is_left_out_of_the_clusters_checks():
    files = [("a.yaml", node("init")), ("b.yaml", node("init").replace("role: init", "role: master"))]
    result = found(files)
    assert [level for level, _, _ in result["b.yaml"]] == ["error"]  # its own, not "two inits"
    assert result["a.yaml"] == []


def run(*args):
    return subprocess.run(
        [sys.executable, "-m", "provider_rke2", "validate", *args],
        capture_output=True, text=True, cwd=ROOT, timeout=60,
    )  # fmt: skip


def test_validate_takes_files_or_a_directory_with_the_same_marks_and_exit_statuses(tmp_path):
    (tmp_path / "init.yaml").write_text(node("init"))
    (tmp_path / "second-init.yaml").write_text(node("init"))
    (tmp_path / "notes.txt").write_text("not a cloud-config")
    done = run(str(tmp_path), "--stylus-root", str(tmp_path / "root"))
    assert done.returncode == 1
    assert f"==> {tmp_path}/init.yaml <==" in done.stdout and "notes.txt" not in done.stdout
    assert "  role: init\t\t# E1" in done.stdout
    assert "# E1: cluster.role: init here and in" in done.stdout
    report = json.loads(run("--json", str(tmp_path / "init.yaml"), str(tmp_path / "second-init.yaml")).stdout)
    assert report["valid"] is False and report["nodes"] == 2
    assert report["files"][1]["errors"][0]["path"] == "cluster.role"
    (tmp_path / "second-init.yaml").write_text(node("worker"))
    assert run(str(tmp_path)).returncode == 0


def test_an_empty_directory_is_a_usage_error(tmp_path):
    done = run(str(tmp_path))
    assert done.returncode == 2 and f"no *.yaml or *.yml file in {tmp_path}" in done.stderr
