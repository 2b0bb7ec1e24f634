import os

import pytest

from provider_rke2.core.errors import ConfigError
from provider_rke2.core.proxy import (
    env_file_text,
    ignored_variables,
    no_proxy_entries,
    node_subnets,
    proxy_environment,
    with_subnets,
)
from provider_rke2.core.render import render

from helpers import cloud_config, dash

CLUSTER_SUFFIXES = [".svc", ".svc.cluster", ".svc.cluster.local"]
LOOPBACK = ["127.0.0.0/8", "::1", "localhost"]


def test_no_proxy_settings_means_no_environment_file():
    assert proxy_environment({}, {}) == []
    assert proxy_environment({"HTTP_PROXY": ""}, {}) == []


def test_proxy_without_cidrs_in_config_uses_rke2_defaults():
    # Reference bug: a proxy without cluster-cidr and service-cidr crashed the provider.
    pairs = dict(proxy_environment({"HTTP_PROXY": "http://p:3128"}, {}))
    assert pairs["NO_PROXY"].split(",") == ["10.42.0.0/16", "10.43.0.0/16", *CLUSTER_SUFFIXES, *LOOPBACK]


def test_plain_and_containerd_variables_are_both_written():
    pairs = proxy_environment({"HTTP_PROXY": "http://p:1", "HTTPS_PROXY": "http://p:2"}, {})
    assert [name for name, _ in pairs] == [
        "HTTP_PROXY",
        "HTTPS_PROXY",
        "NO_PROXY",
        "CONTAINERD_HTTP_PROXY",
        "CONTAINERD_HTTPS_PROXY",
        "CONTAINERD_NO_PROXY",
    ]
    values = dict(pairs)
    assert values["CONTAINERD_HTTPS_PROXY"] == "http://p:2"
    assert values["CONTAINERD_NO_PROXY"] == values["NO_PROXY"]


def test_user_entries_come_first_without_empty_or_repeated_entries():
    entries = no_proxy_entries(" .lan,,10.42.0.0/16 ,localhost,", {})
    assert entries == [
        ".lan",
        "10.42.0.0/16",
        "localhost",
        "10.43.0.0/16",
        *CLUSTER_SUFFIXES,
        "127.0.0.0/8",
        "::1",
    ]
    assert "" not in entries


@pytest.mark.parametrize(
    "config",
    [
        pytest.param(
            {"cluster-cidr": "10.1.0.0/16,fd01::/56", "service-cidr": "10.2.0.0/16,fd02::/112"}, id="str"
        ),
        pytest.param(
            {"cluster-cidr": ["10.1.0.0/16", "fd01::/56"], "service-cidr": ["10.2.0.0/16,fd02::/112"]},
            id="list",
        ),
    ],
)
def test_dual_stack_cidrs_are_split(config):
    entries = no_proxy_entries("", config)
    assert entries[:4] == ["10.1.0.0/16", "fd01::/56", "10.2.0.0/16", "fd02::/112"]


def test_a_custom_cluster_domain_is_bypassed_too():
    assert ".svc.edge.internal" in no_proxy_entries("", {"cluster-domain": "edge.internal"})


def test_only_no_proxy_still_writes_the_cluster_entries():
    assert [n for n, _ in proxy_environment({"NO_PROXY": ".lan"}, {})] == ["NO_PROXY", "CONTAINERD_NO_PROXY"]


def test_control_characters_in_a_proxy_value_are_an_error():
    config = cloud_config(role="init", env={"HTTP_PROXY": "http://p\nEVIL=1", "NO_PROXY": "a\tb"})
    with pytest.raises(ConfigError) as raised:
        render(config)
    assert [str(p) for p in raised.value.problems] == [
        "cluster.env.HTTP_PROXY: must be a single line without control characters",
        "cluster.env.NO_PROXY: must be a single line without control characters",
    ]


def test_other_variables_are_reported_as_ignored():
    assert [str(w) for w in ignored_variables({"http_proxy": "x", "FOO": "y", "NO_PROXY": "z"})] == [
        "cluster.env.http_proxy: ignored; only HTTP_PROXY, HTTPS_PROXY, NO_PROXY reach RKE2;"
        " did you mean HTTP_PROXY?",
        "cluster.env.FOO: ignored; only HTTP_PROXY, HTTPS_PROXY, NO_PROXY reach RKE2",
    ]


def test_env_file_reads_back_exactly_in_a_posix_shell(tmp_path):
    tricky = 'http://us\'er:p@ss $(touch pwned) `id` "q"@proxy:3128'
    env_file = tmp_path / "rke2-agent"
    env_file.write_text(env_file_text([("HTTP_PROXY", tricky), ("NO_PROXY", "a,b")]))
    result = dash(f'. "{env_file}"; printf "%s|%s" "$HTTP_PROXY" "$NO_PROXY"', cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert result.stdout == tricky + "|a,b"
    assert not (tmp_path / "pwned").exists()


# --- the control-plane host and the node's own subnets ---------------------------------------


def test_the_control_plane_host_bypasses_the_proxy():
    entries = no_proxy_entries(".corp", {}, "cp.edge.lan")
    assert entries[:3] == [".corp", "cp.edge.lan", "10.42.0.0/16"]
    assert no_proxy_entries("cp.edge.lan", {}, "cp.edge.lan").count("cp.edge.lan") == 1


# /proc/net/route and /proc/net/ipv6_route of a node with two NICs, a default route via a
# gateway, RKE2's canal interfaces, a docker bridge, loopback and link-local routes.
IPV4_ROUTES = """\
Iface	Destination	Gateway 	Flags	RefCnt	Use	Metric	Mask		MTU	Window	IRTT
eth0	00000000	0100000A	0003	0	0	100	00000000	0	0	0
eth0	0000000A	00000000	0001	0	0	100	0000FFFF	0	0	0
eth1	0032A8C0	00000000	0001	0	0	0	00FFFFFF	0	0	0
eth1	0010AC0A	0132A8C0	0003	0	0	0	0000FFFF	0	0	0
cni0	00002A0A	00000000	0001	0	0	0	00FFFFFF	0	0	0
flannel.1	00012A0A	00012A0A	0043	0	0	0	00FFFFFF	0	0	0
docker0	000011AC	00000000	0001	0	0	0	0000FFFF	0	0	0
"""
IPV6_ROUTES = """\
fd000000000000000000000000000000 40 00000000000000000000000000000000 00 00000000000000000000000000000000 00000100 00000001 00000000 00000001     eth0
fe800000000000000000000000000000 40 00000000000000000000000000000000 00 00000000000000000000000000000000 00000100 00000001 00000000 00000001     eth0
00000000000000000000000000000000 00 00000000000000000000000000000000 00 fd000000000000000000000000000001 00000400 00000001 00000000 00000003     eth0
00000000000000000000000000000001 80 00000000000000000000000000000000 00 00000000000000000000000000000000 00000000 00000001 00000000 80200001       lo
fd000000000000000000000000000002 80 00000000000000000000000000000000 00 00000000000000000000000000000000 00000000 00000002 00000000 80200001     eth0
ff000000000000000000000000000000 08 00000000000000000000000000000000 00 00000000000000000000000000000000 00000100 00000004 00000000 00000001     eth0
"""


def test_node_subnets_are_the_directly_attached_ones():
    assert node_subnets(IPV4_ROUTES, IPV6_ROUTES) == [
        "10.0.0.0/16",
        "192.168.50.0/24",
        "172.17.0.0/16",
        "fd00::/64",
    ]


def test_node_subnets_of_an_unreadable_table_are_none():
    assert node_subnets("", "") == [] and node_subnets("header only\ngarbage line\n", "x y\n") == []


def test_the_runtime_file_adds_the_subnets_to_the_rendered_no_proxy():
    rendered = env_file_text(proxy_environment({"HTTP_PROXY": "http://p", "NO_PROXY": "a.corp"}, {}, "cp"))
    text = with_subnets(rendered, ["192.168.50.0/24", "10.42.0.0/16"])
    lines = text.splitlines()
    assert lines[0] == (
        "# Written by provider-rke2 (`no-proxy`) when the unit started: the rendered NO_PROXY and this node's subnets."
    )
    expected = (
        "a.corp,cp,10.42.0.0/16,10.43.0.0/16,.svc,.svc.cluster,.svc.cluster.local,127.0.0.0/8,::1,localhost"
    )
    assert lines[1:] == [
        f"NO_PROXY={expected},192.168.50.0/24",
        f"CONTAINERD_NO_PROXY={expected},192.168.50.0/24",
    ]
    assert with_subnets("HTTP_PROXY=http://p\n", ["10.0.0.0/8"]) is None


def test_no_proxy_command_writes_the_units_runtime_environment(tmp_path, monkeypatch):
    import io

    from provider_rke2.cli import command_mode
    from provider_rke2.core.paths import Paths
    from provider_rke2.machine.node import LocalNode

    paths = Paths(str(tmp_path))
    os.makedirs(os.path.dirname(paths.env_file("rke2-agent")))
    rendered = env_file_text(proxy_environment({"HTTPS_PROXY": "http://p"}, {}, "cp"))
    with open(paths.env_file("rke2-agent"), "w") as handle:
        handle.write(rendered)
    monkeypatch.setattr(LocalNode, "routes", lambda self: (IPV4_ROUTES, IPV6_ROUTES))
    args = ["no-proxy", "--unit", "rke2-agent", "--stylus-root", str(tmp_path)]
    assert command_mode(args, io.StringIO(), io.StringIO(), io.StringIO()) == 0
    written = open(paths.no_proxy_env("rke2-agent")).read()
    assert written == with_subnets(rendered, node_subnets(IPV4_ROUTES, IPV6_ROUTES))
    assert oct(os.stat(paths.no_proxy_env("rke2-agent")).st_mode & 0o777) == "0o600"
    err = io.StringIO()
    args[2] = "rke2-server"
    assert command_mode(args, io.StringIO(), io.StringIO(), err) == 0
    assert err.getvalue().startswith("no-proxy: nothing to do:")


def test_the_unit_drop_in_runs_no_proxy_before_rke2_and_reads_its_file():
    from provider_rke2.core.paths import Paths
    from provider_rke2.core.steps import unit_drop_ins

    (drop_in,) = unit_drop_ins(
        Paths("/"), "rke2-agent.service", "/system/providers/agent-provider-rke2", True
    )
    assert drop_in.path == "/run/systemd/system/rke2-agent.service.d/60-provider-rke2-no-proxy.conf"
    assert drop_in.content.splitlines()[2:] == [
        "[Service]",
        "ExecStartPre=-/system/providers/agent-provider-rke2 no-proxy --unit rke2-agent --stylus-root /",
        "EnvironmentFile=-/var/lib/provider-rke2/rke2-agent.no-proxy.env",
    ]
    odd = unit_drop_ins(Paths("/"), "rke2-agent.service", "/opt/my providers/100%$x", True)[0]
    assert 'ExecStartPre=-"/opt/my providers/100%%$x" no-proxy' in odd.content
    assert unit_drop_ins(Paths("/"), "rke2-agent.service", "/x", False) == ()


def test_no_proxy_never_blocks_on_a_fifo_or_follows_a_link(tmp_path):
    import io

    from provider_rke2.cli import command_mode
    from provider_rke2.core.paths import Paths

    paths = Paths(str(tmp_path))
    os.makedirs(os.path.dirname(paths.env_file("rke2-agent")))
    os.mkfifo(paths.env_file("rke2-agent"))
    err = io.StringIO()
    args = ["no-proxy", "--unit", "rke2-agent", "--stylus-root", str(tmp_path)]
    assert command_mode(args, io.StringIO(), io.StringIO(), err) == 0
    assert "not a regular file" in err.getvalue()
    assert not os.path.exists(paths.no_proxy_env("rke2-agent"))
