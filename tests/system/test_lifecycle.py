"""A node's whole lifecycle, end to end, in both modes: install -> first boot -> identical
boot (no restart) -> changed config (restart) -> reset, and a node taken over from the Go
provider. Everything really runs (the provider, the YIP it writes, executed as yip does,
the node scripts) in a private mount namespace where `/` is read-only, the host's runtime
paths are fresh tmpfs and /etc and /usr/local are overlays (tests/sandbox.py). systemd is a
stub that keeps unit states and, when an RKE2 unit starts, plays RKE2: it fills the data
dir and kubelet dir its config names, mounts a pod volume, and lays the CNI files its charts
install at host level. The rest (systemd-run, swapoff, ip, iptables) are recording stubs."""

from __future__ import annotations

import json
import os

import pytest

from provider_rke2.core.paths import Paths

from harness import (
    NEIGHBOURS,
    OUTPUT,
    STYLUS,
    TOKEN,
    assert_boot_ran,
    boot,
    by_name,
    host_part,
    lifecycle,
    rendered_paths,
    rke2_calls,
)
from helpers import ROOT, cloud_config


@pytest.fixture
def agent_node(tmp_path):
    root = tmp_path / "root" / STYLUS.lstrip("/")
    host = {**NEIGHBOURS, "/etc/spectro/environment": f"export STYLUS_ROOT={root}\n"}
    return tmp_path, str(root), host


@pytest.fixture(scope="module")
def agent_lifecycle(tmp_path_factory):
    """An agent-mode node taken through install, first boot, an identical boot, a changed
    config and a reset."""
    tmp = tmp_path_factory.mktemp("agent")
    root = str(tmp / "root" / STYLUS.lstrip("/"))
    host = {**NEIGHBOURS, "/etc/spectro/environment": f"export STYLUS_ROOT={root}\n"}
    paths = Paths(root)
    config = "kubelet-arg:\n- root-dir=" + paths.kubelet_dir + "\nnode-label:\n- site=a\n"
    first = cloud_config(
        role="init", cluster_token=TOKEN, config=config, env={"HTTPS_PROXY": "http://proxy:3128"}
    )
    changed = first.replace("site=a", "site=b")
    phases = [
        boot("first boot", first),
        boot("identical boot", first),
        boot("changed config", changed),
        {"name": "reset", "event": "cluster.reset", "payload": {"config": changed}},
    ]
    result = lifecycle(tmp, root, phases, host)
    return result["before"], by_name(result), paths, tmp


def test_install_puts_rke2_and_the_scripts_at_the_path_tables_place(agent_lifecycle):
    _, done, paths, _ = agent_lifecycle
    assert done["install"]["response"]["state"] == "success", done["install"]["response"]
    installed = done["install"]["after"]
    assert paths.binary in installed and paths.scripts_env in installed
    assert f"RKE2_DATA_DIR={paths.data_dir}\n" in installed[paths.scripts_env]


def test_the_first_boot_configures_and_starts_rke2_under_the_root(agent_lifecycle):
    _, done, paths, _ = agent_lifecycle
    first_boot = done["first boot"]
    assert_boot_ran(first_boot)
    assert rke2_calls(first_boot, "rke2-server.service") == ["systemctl start --no-block rke2-server.service"]
    after = first_boot["after"]
    assert f"data-dir: {paths.data_dir}\n" in after[paths.config_file]
    assert paths.data_dir + "/server/db/etcd/member" in after
    assert (
        "ExecStartPre=-" in after["/run/systemd/system/rke2-server.service.d/60-provider-rke2-no-proxy.conf"]
    )


def test_outside_the_root_only_what_rke2_owns_by_name_changes(agent_lifecycle):
    before, done, _, tmp = agent_lifecycle
    after = host_part(done["first boot"]["after"], tmp)
    changed_outside = {p for p in set(after) ^ set(host_part(before, tmp)) if after.get(p) != before.get(p)}
    allowed_prefixes = (
        "/run/systemd/system/rke2-server.service.d/",
        "/run/systemd/system/multi-user.target.wants/rke2-server.service",
        "/run/k3s/", "/run/flannel/", "/etc/cni/net.d/10-canal.conflist", "/etc/cni/net.d/calico-kubeconfig",
        "/opt/cni/bin/calico", "/opt/cni/bin/flannel", "/var/lib/cni/networks/k8s-pod-network/", OUTPUT,
    )  # fmt: skip
    assert [p for p in changed_outside if not p.startswith(allowed_prefixes)] == []
    assert "/etc/fstab" not in (tmp / "listing.txt").read_text(), "an agent-mode host's fstab is its own"


def test_an_identical_boot_restarts_nothing_and_a_changed_one_restarts_once(agent_lifecycle):
    _, done, _, _ = agent_lifecycle
    assert_boot_ran(done["identical boot"])
    assert rke2_calls(done["identical boot"], "rke2-server.service") == []
    assert_boot_ran(done["changed config"])
    assert rke2_calls(done["changed config"], "rke2-server.service") == [
        "systemctl restart --no-block rke2-server.service"
    ]


def test_after_a_reset_the_host_is_as_before_the_install(agent_lifecycle):
    before, done, paths, tmp = agent_lifecycle
    reset = done["reset"]
    assert reset["response"]["state"] == "success", reset["response"]
    assert host_part(reset["after"], tmp) == host_part(before, tmp)
    # Under the root, everything the render put there is gone, the scripts and logs stay.
    kept = {paths.scripts_dir, paths.provider_log_dir}
    left = [p for p in reset["after"] if p.startswith(paths.root) and not p.startswith(tuple(kept))]
    assert left == []
    for path in rendered_paths(done["first boot"]["after"][OUTPUT]):
        if path.startswith(paths.root) and not path.startswith(paths.scripts_dir):
            assert not any(p == path or p.startswith(path + "/") for p in reset["after"]), path
    events = [
        json.loads(line)["type"] for line in reset["after"][paths.events_log].splitlines() if line.strip()
    ]
    assert events[-1] == "cluster_reset"


def test_a_node_taken_over_from_the_go_provider_keeps_its_cluster_state(agent_node):
    tmp, root, host = agent_node
    go_era = "/var/lib/rancher/rke2"
    host = {
        **host,
        f"{go_era}/server/db/etcd/member": "the cluster",
        f"{go_era}/server/tls/server-ca.crt": "ca",
    }
    config = cloud_config(role="controlplane", cluster_token=TOKEN, control_plane_host="cp.edge.lan")
    result = lifecycle(
        tmp,
        root,
        [
            boot("first boot", config),
            {"name": "reset", "event": "cluster.reset", "payload": {"config": config}},
        ],
        host,
    )
    done = by_name(result)
    first_boot, paths = done["first boot"], Paths(root)
    assert_boot_ran(first_boot)
    assert "kept the existing data dir /var/lib/rancher/rke2" in first_boot["response"]["log"]
    after = first_boot["after"]
    assert f"data-dir: {go_era}\n" in after[paths.config_file]
    assert after[f"{go_era}/server/db/etcd/member"] == "the cluster", "the state is where RKE2 finds it"
    assert not [p for p in after if p.startswith(paths.data_dir + "/")], "no new, empty member beside it"
    kept = [json.loads(line) for line in after[paths.events_log].splitlines() if "data_dir_kept" in line]
    assert len(kept) == 1 and paths.data_dir in kept[0]["message"]
    assert after[paths.data_dir_state] == go_era + "\n"
    reset = done["reset"]
    assert reset["response"]["state"] == "success", reset["response"]
    assert f"(data dir {go_era})" in reset["response"]["log"]
    assert not [p for p in reset["after"] if p.startswith(go_era)]


def test_appliance_mode_lifecycle_with_a_data_dir_of_the_users(tmp_path):
    data_dir = "/opt/edge-data/rke2"
    config = cloud_config(
        role="worker", cluster_token=TOKEN, control_plane_host="10.0.0.1", config=f"data-dir: {data_dir}\n"
    )
    changed = cloud_config(
        role="worker",
        cluster_token=TOKEN,
        control_plane_host="10.0.0.1",
        config=f"data-dir: {data_dir}\nnode-label: [site=b]\n",
    )
    phases = [
        boot("first boot", config),
        boot("identical boot", config),
        boot("changed config", changed),
        {"name": "reset", "event": "cluster.reset", "payload": {"config": changed}},
    ]
    result = lifecycle(tmp_path, "/", phases, dict(NEIGHBOURS))
    before, done = result["before"], by_name(result)
    assert done["install"]["response"]["state"] == "success", done["install"]["response"]
    assert "/usr/local/bin/rke2" in done["install"]["after"]
    assert_boot_ran(done["first boot"])
    after = done["first boot"]["after"]
    assert data_dir + "/agent/etc/containerd/config.toml" in after
    assert rke2_calls(done["first boot"], "rke2-agent.service") == [
        "systemctl start --no-block rke2-agent.service"
    ]
    assert rke2_calls(done["identical boot"], "rke2-agent.service") == []
    assert_boot_ran(done["changed config"])
    assert "site=b" in done["changed config"]["after"]["/etc/rancher/rke2/config.yaml"]
    assert rke2_calls(done["changed config"], "rke2-agent.service") == [
        "systemctl restart --no-block rke2-agent.service"
    ]
    reset = done["reset"]["after"]
    assert done["reset"]["response"]["state"] == "success", done["reset"]["response"]
    assert not [p for p in reset if p.startswith(("/opt/edge-data", "/etc/rancher", "/var/lib/rancher"))]
    # Appliance mode: RKE2 owns the CNI, kubelet and pod-log directories whole.
    for gone in (
        "/etc/cni/",
        "/opt/cni/",
        "/var/lib/cni/",
        "/var/lib/kubelet/",
        "/var/log/pods/",
        "/usr/local/bin/rke2",
    ):
        assert not [p for p in reset if p.startswith(gone)], gone
    assert OUTPUT not in reset, "the output file would start RKE2 again at the next boot"
    survivors = set(host_part(reset, tmp_path)) - set(host_part(before, tmp_path))
    assert survivors <= {"/opt/rke2/scripts/" + n for n in os.listdir(ROOT / "provider_rke2/scripts")} | {
        "/opt/rke2/scripts/rke2-paths.env",
        "/var/log/provider-rke2/events.jsonl",
        "/var/log/provider-rke2/provider-rke2.log",
    }, survivors
