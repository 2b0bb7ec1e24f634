import pytest

from provider_rke2.errors import ConfigError
from provider_rke2.proxy import env_file_text, ignored_variables, no_proxy_entries, proxy_environment

from conftest import dash

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
    with pytest.raises(ConfigError, match="cluster.env.HTTP_PROXY: must be a single line"):
        proxy_environment({"HTTP_PROXY": "http://p\nEVIL=1"}, {})


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
