"""Other tools' drop-ins in the root's config.d/ are merged into config.yaml, in name order."""

import json
import os

import yaml

from provider_rke2.cli import run_event
from provider_rke2.core.paths import Paths
from provider_rke2.core.render import render
from provider_rke2.core.rke2config import DropIn, parse_drop_in, with_drop_ins
from provider_rke2.core.root import FROM_ENVIRON, Root
from provider_rke2.core.spec import NodeFacts
from provider_rke2.machine.node import LocalNode

from helpers import cloud_config
from nodes import MemoryNode

TOKEN = "s3cret-cluster-token"
DIR = "/etc/rancher/rke2/config.d"


def merged_config(text):
    document = yaml.safe_load(text)
    step = next(s for s in document["stages"]["boot.before"] if s["name"] == "Write the RKE2 configuration")
    return yaml.safe_load(next(f["content"] for f in step["files"] if f["path"].endswith("/config.yaml")))


def test_drop_ins_apply_in_name_order_around_the_users_config():
    user = {"node-label": ["site=a"], "debug": True, "tls-san+": ["u.example"]}
    drop_ins = (
        DropIn("50_site.yaml", {"node-label": ["rack=1"], "tls-san": ["d.example"], "debug": False}),
        DropIn("95_override.yaml", {"node-label+": ["zone=z"], "kube-apiserver-arg": ["v=2"]}),
    )
    merged, warnings = with_drop_ins(user, drop_ins, DIR)
    assert merged == {
        "node-label": ["site=a", "zone=z"],  # 90 (the user's) replaces 50's; 95 appends
        "debug": True,
        "tls-san": ["d.example", "u.example"],
        "kube-apiserver-arg": ["v=2"],
    }
    assert warnings == []


def test_a_later_drop_in_replacing_a_value_is_named():
    merged, warnings = with_drop_ins({"debug": True}, (DropIn("95_x.yaml", {"debug": False}),), DIR)
    assert merged == {"debug": False}
    assert [str(w) for w in warnings] == [f"{DIR}/95_x.yaml: sets debug, replacing the value before it"]


def test_a_drop_in_that_does_not_parse_is_named_and_skipped_without_its_content():
    broken = parse_drop_in("80_broken.yaml", f'token: "{TOKEN}\nnode-label: [\n')
    not_a_map = parse_drop_in("81_list.yaml", "- a\n- b\n")
    bad_append = DropIn("82_bad.yaml", {"tls-san+": [{"nested": 1}]})
    merged, warnings = with_drop_ins({"debug": True}, (broken, not_a_map, bad_append), DIR)
    assert merged == {"debug": True}
    text = [str(w) for w in warnings]
    assert text[0].startswith(f"{DIR}/80_broken.yaml: is not valid YAML (line ")
    assert text[1] == f"{DIR}/81_list.yaml: expected a mapping of RKE2 options, got a list; skipped"
    assert text[2].startswith(f"{DIR}/82_bad.yaml: list items must be strings") and text[2].endswith(
        "; skipped"
    )
    assert not any(TOKEN in t for t in text)


def test_the_provider_still_wins_over_a_drop_in():
    facts = NodeFacts(drop_ins=(DropIn("95_other.yaml", {"token": "theirs", "server": "https://x:9345"}),))
    config = cloud_config(role="worker", cluster_token=TOKEN, control_plane_host="cp.example")
    rendered = render(config, facts=facts)
    merged = merged_config(rendered.text)
    assert (merged["token"], merged["server"]) == (TOKEN, "https://cp.example:9345")
    assert (
        rendered.text.count("config.d/90_userdata.yaml, config.d/95_other.yaml (in this order) merged") == 1
    )
    assert not [str(w) for w in rendered.warnings if "theirs" in str(w)]


def test_rke2s_own_config_yaml_d_is_pointed_out():
    rendered = render(cloud_config(role="init"), facts=NodeFacts(rke2_drop_ins=("50-extra.yaml",)))
    assert any(
        str(w).startswith("/etc/rancher/rke2/config.yaml.d: RKE2 applies 50-extra.yaml after config.yaml")
        for w in rendered.warnings
    )


def test_the_node_reads_other_drop_ins_from_the_roots_config_d(fs):
    paths = Paths("/persistent/spectro")
    fs.create_file(paths.drop_in_dir + "/10_site.yaml", contents="node-label: [rack=1]\n")
    fs.create_file(paths.drop_in_dir + "/90_userdata.yaml", contents="ours: 1\n")
    fs.create_file(paths.drop_in_dir + "/99_userdata.yaml", contents="ours: 2\n")
    fs.create_file(paths.drop_in_dir + "/notes.txt", contents="not yaml\n")
    fs.create_symlink(paths.drop_in_dir + "/20_link.yaml", "/etc/shadow")
    fs.create_file(paths.rke2_drop_in_dir + "/50-extra.yaml", contents="debug: true\n")
    fs.create_file(paths.data_dir_state, contents="/var/lib/rancher/rke2\n")
    facts = LocalNode(environ={}).facts(paths)
    assert facts.drop_ins[0] == DropIn("10_site.yaml", {"node-label": ["rack=1"]})
    assert facts.drop_ins[1].name == "20_link.yaml" and facts.drop_ins[1].problem.startswith("cannot be read")
    assert len(facts.drop_ins) == 2
    assert facts.rke2_drop_ins == ("50-extra.yaml",)
    assert facts.recorded_data_dir == "/var/lib/rancher/rke2"


def test_a_fifo_drop_in_never_blocks_the_boot(tmp_path):
    paths = Paths(str(tmp_path))
    os.makedirs(paths.drop_in_dir)
    os.mkfifo(paths.drop_in_dir + "/30_fifo.yaml")
    facts = LocalNode(environ={}).facts(paths)
    assert facts.drop_ins[0].problem == "cannot be read (not a regular file)"


def test_a_secret_in_a_drop_in_never_reaches_the_answer():
    secret = "their-agent-token-123"
    node = MemoryNode(
        root=Root("/persistent/spectro", FROM_ENVIRON),
        facts=NodeFacts(drop_ins=(DropIn("95_x.yaml", {"agent-token": secret, "debug": "maybe"}),)),
    )
    config = cloud_config(role="init", cluster_token=TOKEN, config=f"agent-token: {secret}-mine\n")
    response = run_event("agent.boot", json.dumps({"data": json.dumps({"config": config})}), node)
    assert response.state == "success"
    assert secret not in json.dumps(response.__dict__) and secret not in str(node.logs)
