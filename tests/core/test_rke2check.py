import pytest

from provider_rke2.core.errors import ConfigError
from provider_rke2.core.render import render
from provider_rke2.core.rke2check import check, table
from provider_rke2.core.rke2config import parse_user_config

from helpers import cloud_config


def run(text, role="init"):
    return check(parse_user_config(text), role)


@pytest.mark.parametrize(
    "text, role, warning",
    [
        pytest.param(
            "node-lable: [a=b]\n", "init",
            "cluster.config.node-lable: not an RKE2 option; RKE2 logs 'Unknown flag' and skips it;"
            " did you mean 'node-label'?", id="typo",
        ),
        pytest.param(
            "frobnicate: 1\n", "init",
            "cluster.config.frobnicate: not an RKE2 option; RKE2 logs 'Unknown flag' and skips it", id="unknown",
        ),
        pytest.param(
            "cluster-init: true\n", "init",
            "cluster.config.cluster-init: a k3s option RKE2 does not have; RKE2 logs 'Unknown flag' and skips it",
            id="k3s",
        ),
        pytest.param(
            "flannel-backend: wireguard\n", "init",
            "cluster.config.flannel-backend: a k3s option RKE2 does not have; RKE2 logs 'Unknown flag' and skips it",
            id="k3s-flannel",
        ),
        pytest.param(
            "kube-controller-arg: [x=1]\n", "init",
            "cluster.config.kube-controller-arg: a k3s option RKE2 does not have; RKE2 logs 'Unknown flag' and"
            " skips it; RKE2's is 'kube-controller-manager-arg'", id="k3s-renamed",
        ),
        pytest.param(
            "tls-san: [a]\n", "worker",
            "cluster.config.tls-san: a server option; rke2 agent on a worker logs 'Unknown flag' and skips it",
            id="server-only-on-worker",
        ),
        pytest.param(
            "disable-apiserver-lb: true\n", "worker",
            "cluster.config.disable-apiserver-lb: a k3s option RKE2 does not have; RKE2 logs 'Unknown flag' and"
            " skips it", id="k3s-on-agents",
        ),
        pytest.param(
            "cni: weave\n", "init",
            "cluster.config.cni: 'weave' is not one of none, calico, canal, cilium, flannel (the values this"
            " provider knows; check your RKE2 version)", id="enum",
        ),
        pytest.param("node-name:\n", "init", "cluster.config.node-name: has no value; RKE2 receives an empty one", id="null"),
    ],
)  # fmt: skip
def test_warnings_say_what_rke2_will_do(text, role, warning):
    errors, warnings = run(text, role)
    assert errors == []
    assert [str(w) for w in warnings] == [warning]


@pytest.mark.parametrize(
    "text, message",
    [
        pytest.param("debug: enabled\n", "expected true or false, got 'enabled'", id="bool-word"),
        pytest.param("etcd-snapshot-retention: five\n", "expected a whole number, got 'five'", id="int"),
        pytest.param("etcd-snapshot-retention: true\n", "expected a whole number, got 'True'", id="int-bool"),
        pytest.param("etcd-s3-timeout: 30\n", "expected a duration such as 30s or 5m0s, got '30'", id="duration"),
        pytest.param("node-name: [a, b]\n", "expected a single value, got a list of 2 (RKE2 would keep only one)", id="list"),
        pytest.param("token:\n  a: b\n", "expected a single value, got a mapping", id="mapping"),
        pytest.param("node-label:\n  a: b\n", "expected a list, got a mapping", id="list-mapping"),
        pytest.param("node-label: [[a]]\n", "list items must be single values, got 1 nested", id="nested"),
    ],
)  # fmt: skip
def test_values_rke2_would_misread_are_errors(text, message):
    errors, _ = run(text)
    assert [str(e) for e in errors] == [f"cluster.config.{text.split(':')[0]}: {message}"]


@pytest.mark.parametrize(
    "text",
    [
        "debug: true\n", "debug: 'false'\n", "selinux: yes\n", "etcd-snapshot-retention: 010\n",
        "etcd-s3-timeout: 5m0s\n", "etcd-s3-timeout: 1h30m\n", "etcd-s3-timeout: 0\n", "cni: multus,cilium\n",
        "cni: [multus, canal]\n", "node-label: zone=a\n", "t: secret\n", "tls-san+: [x]\n",
        "disable: [rke2-ingress-nginx, rke2-metrics-server]\n", "kube-apiserver-extra-env: [A=1]\n",
    ],
)  # fmt: skip
def test_good_values_pass_quietly(text):
    assert run(text) == ([], [])


def test_the_table_covers_rke2s_flags():
    keys = table()["keys"]
    assert len(keys) == 135
    assert len([k for k, v in keys.items() if v["scope"] == "both"]) == 65
    assert {v["type"] for v in keys.values()} == {"string", "bool", "int", "duration", "list"}


def test_errors_block_the_render_and_warnings_do_not():
    with pytest.raises(ConfigError) as caught:
        render(cloud_config(role="init", config="debug: enabled\nnode-lable: [x]\n"))
    assert [p.path for p in caught.value.problems] == ["cluster.config.debug"]
    result = render(cloud_config(role="init", config="node-lable: [x]\n"))
    assert any("did you mean 'node-label'" in str(w) for w in result.warnings)


def test_every_problem_of_section_and_config_comes_at_once():
    with pytest.raises(ConfigError) as caught:
        render(cloud_config(role="worker", control_plane_host="cp", config="debug: nope\nv: x\n"))
    assert [p.path for p in caught.value.problems] == [
        "cluster.cluster_token",
        "cluster.config.debug",
        "cluster.config.v",
    ]


def test_the_packaged_key_table_is_one_the_checks_can_use():
    known = table()
    kinds = {"string", "bool", "int", "duration", "list"}
    assert all(
        entry["type"] in kinds and entry["scope"] in ("server", "agent", "both")
        for entry in known["keys"].values()
    )
    assert all(target in known["keys"] for target in known["aliases"].values()), (
        "an alias names a real option"
    )
    assert all(name in known["keys"] and options for name, options in known["enums"].items())
