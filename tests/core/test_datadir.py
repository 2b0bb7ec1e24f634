"""Never abandon cluster state: which data dir a boot gives RKE2, and what it records."""

import json

import pytest

from provider_rke2.cli import run_event
from provider_rke2.core import datadir
from provider_rke2.core.errors import ConfigError
from provider_rke2.core.paths import Paths
from provider_rke2.core.render import render
from provider_rke2.core.root import FROM_ENVIRON, Root
from provider_rke2.core.spec import NodeFacts
from provider_rke2.machine.nodefacts import has_rke2_state

from helpers import cloud_config
from nodes import MemoryNode

AGENT = Root("/persistent/spectro", FROM_ENVIRON)
NEW = "/persistent/spectro/var/lib/rancher/rke2"
GO_ERA = "/var/lib/rancher/rke2"


def holding(*dirs):
    return lambda path: path in dirs


@pytest.mark.parametrize(
    ("wanted", "recorded", "populated", "chosen"),
    [
        pytest.param(NEW, None, (), NEW, id="fresh-node"),
        pytest.param(NEW, None, (NEW, GO_ERA), NEW, id="the-new-one-has-state"),
        pytest.param(NEW, None, (GO_ERA,), GO_ERA, id="go-era-node"),
        pytest.param(NEW, "/data/old", ("/data/old", GO_ERA), "/data/old", id="recorded-first"),
        pytest.param(NEW, "/data/old", (), NEW, id="nothing-anywhere"),
        pytest.param("/data/new", NEW, (NEW,), NEW, id="user-moved-it-without-the-data"),
    ],
)
def test_choose_in_agent_mode(wanted, recorded, populated, chosen):
    choice = datadir.choose(wanted, recorded, Paths(AGENT.path), holding(*populated))
    assert (choice.path, choice.wanted, choice.kept) == (chosen, wanted, chosen != wanted)


def test_appliance_mode_has_no_go_era_place_of_its_own():
    choice = datadir.choose("/data/rke2", None, Paths("/"), holding(GO_ERA))
    assert choice.path == "/data/rke2", "only the recorded dir counts there: the default is the same place"
    assert datadir.choose("/data/rke2", GO_ERA, Paths("/"), holding(GO_ERA)).path == GO_ERA


def test_state_markers_are_what_rke2_makes_not_the_image_copy(fs):
    fs.create_dir("/a/agent/images")
    fs.create_dir("/b/agent/etc/containerd")
    fs.create_dir("/c/server/db/etcd")
    assert [has_rke2_state(p) for p in ("/a", "/b", "/c", "/none")] == [False, True, True, False]


def test_a_go_era_node_keeps_its_data_dir_with_a_warning():
    facts = NodeFacts(has_state=holding(GO_ERA))
    rendered = render(cloud_config(role="init", cluster_token="s3cret-cluster-token"), AGENT, facts=facts)
    assert rendered.data_dir.path == GO_ERA
    assert f"data-dir: {GO_ERA}\n" in rendered.text
    assert f"--data-dir {GO_ERA} " in rendered.text, "the watcher looks for the CA where it really is"
    warning = [str(w) for w in rendered.warnings if w.path == "cluster.config.data-dir"]
    assert warning == [f"cluster.config.data-dir: {datadir.kept_message(rendered.data_dir)}"]
    assert f"RKE2_DATA_DIR={GO_ERA}\n" in rendered.text, "the scripts reset the real one"


def boot(node, config):
    event = json.dumps({"data": json.dumps({"config": config})})
    response = run_event("agent.boot", event, node)
    assert response.state == "success", response
    return response


def test_boot_records_the_data_dir_and_tells_the_fleet_manager_once():
    node = MemoryNode(root=AGENT, facts=NodeFacts(has_state=holding(GO_ERA)))
    config = cloud_config(role="init", cluster_token="s3cret-cluster-token")
    first = boot(node, config)
    assert node.state[Paths(AGENT.path).data_dir_state] == GO_ERA
    kept = [e for _, e in node.events if e["type"] == "data_dir_kept"]
    assert len(kept) == 1 and GO_ERA in kept[0]["message"] and NEW in kept[0]["message"]
    assert "kept the existing data dir" in first.log
    boot(node, config)
    assert node.event_types().count("data_dir_kept") == 1, "the decision is news once"


def test_a_fresh_node_records_its_data_dir_without_an_event():
    node = MemoryNode(root=AGENT)
    boot(node, cloud_config(role="init", cluster_token="s3cret-cluster-token"))
    assert node.state[Paths(AGENT.path).data_dir_state] == NEW
    assert "data_dir_kept" not in node.event_types()


@pytest.mark.parametrize(
    "value", ["/", "/var", "/usr/local", "/persistent/spectro", "/persistent/spectro/var/lib"]
)
def test_a_system_directory_is_refused_as_data_dir(value):
    with pytest.raises(
        ConfigError, match="cluster.config.data-dir: expected a directory of its own, got the system"
    ):
        render(cloud_config(role="init", config=f"data-dir: {value}\n"), AGENT)


def test_a_system_directory_is_refused_as_kubelet_root_dir():
    with pytest.raises(
        ConfigError, match="kubelet-arg root-dir: expected a directory of its own, got the system"
    ):
        render(cloud_config(role="init", config="kubelet-arg: [root-dir=/var/lib]\n"), AGENT)


@pytest.mark.parametrize("value", ["/data/../usr", "/data/./rke2", "//data", '"/data/x\\ny"', '"/data/\\tx"'])
def test_a_data_dir_must_be_a_clean_path_of_plain_characters(value):
    with pytest.raises(ConfigError, match="expected a clean absolute path"):
        render(cloud_config(role="init", config=f"data-dir: {value}\n"), AGENT)


def test_a_data_dir_that_is_a_link_to_a_system_directory_is_refused():
    facts = NodeFacts(resolve=lambda path: "/" if path == "/data/rke2" else path)
    with pytest.raises(ConfigError, match=r"got the system directory '/data/rke2' \(a link to /\)"):
        render(cloud_config(role="init", config="data-dir: /data/rke2\n"), AGENT, facts=facts)


def test_a_reset_refuses_a_recorded_data_dir_that_now_leads_to_a_system_directory():
    node = MemoryNode(
        root=AGENT, facts=NodeFacts(resolve=lambda path: "/usr" if path == "/data/rke2" else path)
    )
    node.state[Paths(AGENT.path).data_dir_state] = "/data/rke2"
    response = run_event(
        "cluster.reset", json.dumps({"data": json.dumps({"config": cloud_config(role="init")})}), node
    )
    assert response.error.startswith("refusing to reset: /persistent/spectro/var/lib/provider-rke2/data-dir:")
    assert node.ran == [], "nothing was run"
