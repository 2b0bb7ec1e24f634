import pytest
import yaml

from provider_rke2.core import secrets
from provider_rke2.core.cluster import parse_cluster
from provider_rke2.core.errors import ConfigError
from provider_rke2.core.rke2config import dump, merge, parse_user_config, provider_settings


def provider_for(**cluster):
    return provider_settings(parse_cluster(cluster)[0])


def read_back(text: str):
    """The config as RKE2's YAML 1.1 reader sees it."""
    return yaml.safe_load(text)


# --- what the provider contributes ------------------------------------------------


def test_init_gets_token_and_no_server():
    assert provider_for(role="init", cluster_token="t") == {"token": "t"}


def test_init_with_host_adds_the_host_to_tls_san():
    assert provider_for(role="init", cluster_token="t", control_plane_host="cp") == {
        "token": "t",
        "tls-san": ["cp"],
    }


def test_controlplane_gets_server_and_tls_san():
    assert provider_for(role="controlplane", cluster_token="t", control_plane_host="cp") == {
        "token": "t",
        "server": "https://cp:9345",
        "tls-san": ["cp"],
    }


def test_worker_gets_no_tls_san_which_rke2_agent_would_skip():
    assert provider_for(role="worker", cluster_token="t", control_plane_host="cp") == {
        "token": "t",
        "server": "https://cp:9345",
    }


# --- merge rules ----------------------------------------------------------------------


def test_provider_token_wins_and_is_not_concatenated():
    # Reference bug: jq's `*` merged `token: a` and `token: b` into "ab".
    merged, warnings = merge({"token": "a"}, {"token": "b"})
    assert merged == {"token": "b"}
    assert [str(w) for w in warnings] == [
        "cluster.config.token: the user's value is replaced by the provider's,"
        " derived from cluster.cluster_token"
    ]


def test_the_conflict_warning_never_shows_the_token():
    _, warnings = merge({"token": "user-secret"}, {"token": "provider-secret"})
    assert "secret" not in " ".join(str(w) for w in warnings)


def test_provider_server_wins_with_a_warning_naming_the_old_value():
    merged, warnings = merge({"server": "https://old:9345"}, {"server": "https://cp:9345"})
    assert merged == {"server": "https://cp:9345"}
    assert "'https://old:9345'" in str(warnings[0])


def test_equal_values_give_no_warning():
    assert merge({"token": "t"}, {"token": "t"}) == ({"token": "t"}, [])


def test_numbers_are_not_added():
    # Reference bug: jq added two numbers.
    merged, _ = merge({"x": "1"}, {"x": "2"})
    assert merged == {"x": "2"}


def test_two_booleans_do_not_empty_the_config():
    # Reference bug: jq failed on two booleans and left config.yaml EMPTY.
    merged, _ = merge({"selinux": True, "cni": "calico"}, {"selinux": False})
    assert merged == {"selinux": False, "cni": "calico"}
    assert read_back(dump(merged)) == {"selinux": False, "cni": "calico"}


def test_lists_are_an_ordered_union_without_duplicates():
    merged, warnings = merge({"tls-san": ["a", "cp", "b", "a"]}, {"tls-san": ["cp"]})
    assert merged == {"tls-san": ["a", "cp", "b"]}
    assert warnings == []


def test_a_comma_separated_string_counts_as_its_items_where_rke2_splits():
    merged, _ = merge({"tls-san": "a, b,,cp"}, {"tls-san": ["cp"]})
    assert merged == {"tls-san": ["a", "b", "cp"]}


def test_commas_stay_inside_items_where_rke2_does_not_split():
    user = parse_user_config("kube-apiserver-arg: [x=1]\nkube-apiserver-arg+: feature-gates=A=true,B=false\n")
    assert user == {"kube-apiserver-arg": ["x=1", "feature-gates=A=true,B=false"]}


def test_plus_keys_append_like_rke2_drop_ins():
    user = parse_user_config("tls-san: [a]\ntls-san+: [b, a]\nnode-label+: [x=y]\n")
    assert user == {"tls-san": ["a", "b"], "node-label": ["x=y"]}


def test_keys_only_one_side_sets_are_kept_untouched():
    merged, _ = merge({"node-label": ["a=b,c"], "v": None}, {"token": "t"})
    assert merged == {"node-label": ["a=b,c"], "v": None, "token": "t"}


def test_user_order_is_kept_and_provider_keys_follow():
    merged, _ = merge({"cni": "calico", "token": "x", "debug": True}, {"token": "t", "server": "s"})
    assert list(merged) == ["cni", "token", "debug", "server"]


def test_a_mapping_where_a_list_belongs_is_an_error():
    with pytest.raises(ConfigError, match="cluster.config.tls-san: expected a list or a comma-separated"):
        merge({"tls-san": {"a": "b"}}, {"tls-san": ["cp"]})


# --- values keep their meaning for RKE2 -----------------------------------------------


def test_octal_looking_mode_stays_0644_for_rke2():
    merged, _ = merge(parse_user_config("write-kubeconfig-mode: 0644\n"), {})
    assert read_back(dump(merged)) == {"write-kubeconfig-mode": "0644"}


@pytest.mark.parametrize(
    "line, value",
    [
        ("v: 3", "3"),
        ("etcd-snapshot-retention: 010", "010"),
        ("node-name: 1e3", "1e3"),
        ("x: 2001-01-01", "2001-01-01"),
        ("selinux: yes", True),
        ("debug: false", False),
        ("node-name: 'yes'", "yes"),
        ("token: '0755'", "0755"),
    ],
)
def test_values_read_back_as_the_user_meant_them(line, value):
    merged, _ = merge(parse_user_config(line + "\n"), {})
    assert list(read_back(dump(merged)).values()) == [value]


def test_empty_config_is_an_explicit_empty_mapping_not_an_empty_file():
    assert dump({}) == "{}\n"
    assert read_back(dump({})) == {}


@pytest.mark.parametrize(
    "text, message",
    [
        pytest.param("a: [", "cluster.config: is not valid YAML", id="syntax"),
        pytest.param(
            "- a\n- b\n", "cluster.config: expected a mapping of RKE2 options, got a list", id="list"
        ),
        pytest.param("just words", "expected a mapping of RKE2 options, got a string", id="scalar"),
    ],
)
def test_bad_user_config_is_an_error_naming_cluster_config(text, message):
    with pytest.raises(ConfigError, match=message):
        parse_user_config(text)


def test_blank_or_null_user_config_is_empty():
    assert parse_user_config("") == {}
    assert parse_user_config("# only a comment\n") == {}


def test_secret_keys_are_never_shown_in_warnings():
    for key in secrets.SECRET_KEYS:
        _, warnings = merge({key: "hunter2"}, {key: "other"})
        assert "hunter2" not in str(warnings[0]) and "other" not in str(warnings[0])
