"""A changed token on a node with cluster state (rancher/rke2#6281): refused on a server
before anything is written, unless the operator says the cluster's token was rotated; a
warning on an agent. Neither token is ever shown."""

import json
import stat

import pytest

from provider_rke2.cli import run_event
from provider_rke2.core import tokens
from provider_rke2.core.errors import ConfigError
from provider_rke2.core.render import render
from provider_rke2.core.root import FROM_FLAG, Root
from provider_rke2.core.spec import NodeFacts
from provider_rke2.machine.node import LocalNode

from helpers import cloud_config

OLD = "old-cluster-s3cret"
NEW = "new-cluster-s3cret"
CA_HASH = "5165a78f7432632a33ccafcba308d2fba0dfa96d9eea5ddf6e8ba5b370f5d666"
HELD = f"K10{CA_HASH}::server:{OLD}"  # as RKE2 writes <data-dir>/server/token
DATA = "/var/lib/rancher/rke2"


# --- the forms of a token -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("given", "held", "same"),
    [
        pytest.param(OLD, HELD, True, id="bare-password-of-the-held-full-token"),
        pytest.param(HELD, HELD, True, id="the-full-token-itself"),
        pytest.param(f"K10{CA_HASH.upper()}::server:{OLD}", HELD, True, id="hash-in-capitals"),
        pytest.param(NEW, HELD, False, id="another-password"),
        pytest.param(f"K10{'0' * 64}::server:{OLD}", HELD, False, id="full-token-of-another-cluster"),
        pytest.param(OLD, OLD, True, id="both-bare"),
        pytest.param(f"K10{CA_HASH}::{OLD}", HELD, True, id="full-form-without-user"),
        pytest.param("abcdef.0123456789abcdef", "abcdef.0123456789abcdef", True, id="bootstrap-bearer"),
        pytest.param(f"  {OLD}\n", HELD, True, id="surrounding-space"),
        pytest.param("abc:def-s3cret", f"K10{CA_HASH}::server:abc:def-s3cret", True, id="bare-with-a-colon"),
        pytest.param(f"server:{OLD}", HELD, False, id="bare-is-all-password"),
    ],
)
def test_a_token_is_the_same_whatever_form_it_is_given_in(given, held, same):
    assert tokens.same(given, held) is same


# --- the check, pure ------------------------------------------------------------------------


def server_facts(held=HELD, state=True, last=None):
    return NodeFacts(
        has_state=lambda path: state and path == DATA,
        held_token=lambda path: held if path == f"{DATA}/server/token" else None,
        last_token=lambda: last,
    )


@pytest.mark.parametrize("role", ["init", "controlplane"])
def test_a_server_handed_another_token_is_refused_naming_the_file_and_what_to_do(role):
    config = cloud_config(role=role, cluster_token=NEW, control_plane_host="cp.lan")
    with pytest.raises(ConfigError) as caught:
        render(config, facts=server_facts())
    [problem] = caught.value.problems
    assert problem.path == "cluster.cluster_token"
    text = str(problem)
    assert f"({DATA}/server/token)" in text and "rke2 token rotate" in text and "cluster.reset" in text
    assert "token_rotated" in text and "the node keeps its configuration" in text
    assert OLD not in text and NEW not in text and CA_HASH not in text


@pytest.mark.parametrize("key", ["token", "t"])
def test_the_token_in_the_users_rke2_config_is_checked_too(key):
    with pytest.raises(ConfigError) as caught:
        render(cloud_config(role="init", config=f"{key}: {NEW}\n"), facts=server_facts())
    assert [p.path for p in caught.value.problems] == [f"cluster.config.{key}"]


@pytest.mark.parametrize(
    "cluster",
    [
        pytest.param({"cluster_token": OLD}, id="the-same-token-bare"),
        pytest.param({"cluster_token": HELD}, id="the-same-token-full"),
        pytest.param({}, id="no-token-given"),
        pytest.param({"config": "token-file: /etc/token\n"}, id="a-token-file"),
    ],
)
def test_a_server_keeping_its_token_boots(cluster):
    rendered = render(cloud_config(role="init", **cluster), facts=server_facts())
    assert not [w for w in rendered.warnings if "token" in w.path]


def test_without_cluster_state_any_token_goes():
    render(cloud_config(role="init", cluster_token=NEW), facts=server_facts(state=False))


def test_without_a_readable_server_token_there_is_nothing_to_compare():
    render(cloud_config(role="init", cluster_token=NEW), facts=server_facts(held=None))


def test_a_rotated_token_is_taken_with_a_warning_to_remove_the_switch_later():
    config = cloud_config(role="controlplane", cluster_token=NEW, control_plane_host="cp.lan")
    rotated = config + '  providerConfig:\n    token_rotated: "true"\n'
    rendered = render(rotated, facts=server_facts())
    [warning] = [w for w in rendered.warnings if w.path == "cluster.cluster_token"]
    assert "taken as providerConfig.token_rotated says it was rotated" in warning.message
    assert f"token: {NEW}\n" in rendered.text
    # Once this server holds the new token, the switch only turns a safety check off.
    after = render(rotated, facts=server_facts(held=f"K10{CA_HASH}::server:{NEW}"))
    assert [w.path for w in after.warnings if "token" in w.path] == ["cluster.providerConfig.token_rotated"]


def test_token_rotated_must_be_a_boolean():
    config = cloud_config(role="init") + '  providerConfig:\n    token_rotated: "sure"\n'
    with pytest.raises(
        ConfigError, match="cluster.providerConfig.token_rotated: expected true or false, got 'sure'"
    ):
        render(config)


def test_an_agent_with_another_token_than_it_ran_with_is_warned_not_refused():
    config = cloud_config(role="worker", cluster_token=NEW, control_plane_host="cp.lan")
    rendered = render(config, facts=server_facts(last=OLD))
    [warning] = [w for w in rendered.warnings if w.path == "cluster.cluster_token"]
    assert "rke2-agent last ran with" in warning.message and "rke2 token rotate" in warning.message
    assert OLD not in str(warning) and NEW not in str(warning)
    assert not [w for w in render(config, facts=server_facts(last=NEW)).warnings if "token" in w.path]
    assert not [
        w for w in render(config, facts=server_facts(last=OLD, state=False)).warnings if "token" in w.path
    ]


# --- a boot on a real node: nothing written, nothing shown ------------------------------------


def event(config):
    return json.dumps({"data": json.dumps({"config": config})})


def test_a_refused_boot_keeps_the_nodes_output_and_shows_no_token(tmp_path):
    root = tmp_path / "root"
    out = tmp_path / "cluster.yaml"
    node = LocalNode(str(root), environ={})
    agent = Root(str(root), FROM_FLAG)
    assert agent.agent_mode
    first = run_event(
        "agent.boot", event(cloud_config(role="init", cluster_token=OLD, cluster_config_path=str(out))), node
    )
    assert first.state == "success", first
    good = out.read_bytes()
    # RKE2 ran: its state, and the token it keeps in its full form (0600).
    token_file = root / "var/lib/rancher/rke2/server/token"
    (root / "var/lib/rancher/rke2/server/db").mkdir(parents=True)
    token_file.write_text(HELD + "\n")
    token_file.chmod(0o600)
    changed = cloud_config(role="init", cluster_token=NEW, cluster_config_path=str(out))
    refused = run_event("agent.boot", event(changed), node)
    assert refused.state == "error"
    assert "cluster.cluster_token: differs from the token of this server's cluster state" in refused.error
    assert str(token_file) in refused.error
    assert out.read_bytes() == good, "the node keeps the output it boots with"
    assert stat.S_IMODE(out.stat().st_mode) == 0o600
    shown = refused.to_json() + "".join(p.read_text() for p in (root / "var/log/provider-rke2").iterdir())
    for secret in (OLD, NEW, HELD, CA_HASH):
        assert secret not in shown
    errors = [
        json.loads(line) for line in (root / "var/log/provider-rke2/events.jsonl").read_text().splitlines()
    ]
    assert errors[-1]["type"] == "error" and "differs from the token" in errors[-1]["message"]
    # The operator's way out: the token was rotated on another server.
    rotated = changed + '  providerConfig:\n    token_rotated: "true"\n'
    taken = run_event("agent.boot", event(rotated), node)
    assert taken.state == "success" and "token_rotated" in taken.log
    assert NEW.encode() in out.read_bytes()


@pytest.mark.parametrize(
    "written", ["token: plain-old-secret\n", "token: 'quoted: old-secret'\n", 'token: "0755"\n']
)
def test_the_token_an_agent_ran_with_is_read_from_the_config_the_provider_wrote(tmp_path, written):
    from provider_rke2.core.yamlread import load_rke2_config
    from provider_rke2.machine.nodefacts import _config_token

    config = tmp_path / "config.yaml"
    config.write_text("# header\nnode-label:\n- token: not-this\n" + written + "server: https://cp:9345\n")
    assert _config_token(str(config)) == load_rke2_config(written)["token"]
    config.write_text("server: https://cp:9345\n")
    assert _config_token(str(config)) is None
