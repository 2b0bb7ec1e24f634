import pytest

from provider_rke2.core.cluster import DEFAULT_OUTPUT_PATH, parse_cluster
from provider_rke2.core.errors import ConfigError
from provider_rke2.core.yamlread import load_cloud_config


def section(text: str):
    return load_cloud_config(text)["cluster"]


def test_token_keeps_the_text_written_as_the_go_sdk_decodes_it():
    cluster, _ = parse_cluster(section("cluster:\n  role: init\n  cluster_token: 0755\n"))
    assert cluster.token == "0755"


def test_defaults():
    cluster, warnings = parse_cluster({"role": "init"})
    assert cluster.output_path == DEFAULT_OUTPUT_PATH
    assert cluster.local_images_path == ""  # the default under the root
    assert cluster.import_local_images is False
    assert cluster.wait_for_images_seconds == 0
    assert warnings == []


@pytest.mark.parametrize(
    "role, unit, server",
    [
        ("init", "rke2-server.service", ""),
        ("controlplane", "rke2-server.service", "https://cp.lan:9345"),
        ("worker", "rke2-agent.service", "https://cp.lan:9345"),
    ],
)
def test_roles(role, unit, server):
    cluster, _ = parse_cluster({"role": role, "control_plane_host": "cp.lan"})
    assert (cluster.unit, cluster.server_url) == (unit, server)


@pytest.mark.parametrize(
    "host, server",
    [
        pytest.param("10.0.0.1", "https://10.0.0.1:9345", id="ipv4"),
        pytest.param("fd00::1", "https://[fd00::1]:9345", id="ipv6"),
        pytest.param("[fd00::1]", "https://[fd00::1]:9345", id="ipv6-bracketed"),
        pytest.param("cp.example.com", "https://cp.example.com:9345", id="name"),
    ],
)
def test_server_url_from_host(host, server):
    cluster, _ = parse_cluster({"role": "worker", "control_plane_host": host})
    assert cluster.server_url == server


@pytest.mark.parametrize(
    "given, expected",
    [
        pytest.param(
            {"role": "master"},
            ["cluster.role: 'master' is not one of init, controlplane, worker"],
            id="unknown-role",
        ),
        pytest.param({}, ["cluster.role: missing; expected one of init, controlplane, worker"], id="no-role"),
        pytest.param(
            {"role": "worker"},
            ["cluster.control_plane_host: missing; a worker node joins the cluster at this host"],
            id="worker-without-host",
        ),
        pytest.param(
            {"role": "controlplane"},
            ["cluster.control_plane_host: missing; a controlplane node joins the cluster at this host"],
            id="controlplane-without-host",
        ),
        pytest.param(
            {"role": "worker", "control_plane_host": "https://cp:9345"},
            [
                "cluster.control_plane_host: expected a host name or IP address"
                " (no scheme, port or path), got 'https://cp:9345'"
            ],
            id="host-with-scheme",
        ),
        pytest.param(
            {"role": "init", "cluster_token": ["a"]},
            ["cluster.cluster_token: expected a single value, got a list"],
            id="token-list",
        ),
        pytest.param(
            {"role": "init", "import_local_images": "maybe"},
            ["cluster.import_local_images: expected true or false, got 'maybe'"],
            id="bad-bool",
        ),
        pytest.param(
            {"role": "init", "env": ["HTTP_PROXY=x"]},
            ["cluster.env: expected a mapping of names to values, got a list"],
            id="env-list",
        ),
        pytest.param(
            {"role": "init", "providerConfig": {"x": {"y": 1}}},
            ["cluster.providerConfig.x: expected a single value, got a mapping"],
            id="provider-config-nested",
        ),
        pytest.param(
            {"role": "init", "cluster_config_path": "out/cluster.yaml"},
            ["cluster.cluster_config_path: expected an absolute path, got 'out/cluster.yaml'"],
            id="relative-output",
        ),
        pytest.param(
            {"role": "init", "local_images_path": "/opt/../etc"},
            [
                "cluster.local_images_path: expected a clean absolute path (no '..', '.', '//',"
                " trailing '/' or control characters), got '/opt/../etc'"
            ],
            id="dotdot-images",
        ),
        pytest.param(
            {"role": "init", "providerConfig": {"local_images_wait_seconds": "soon"}},
            [
                "cluster.providerConfig.local_images_wait_seconds: expected whole seconds"
                " from 0 to 3600, got 'soon'"
            ],
            id="wait-not-number",
        ),
        pytest.param(
            {"role": "init", "ca_certs": "PEM"},
            ["cluster.ca_certs: expected a list of PEM strings, got a string"],
            id="ca-certs-string",
        ),
        pytest.param(
            "just text", ["cluster: expected a mapping of cluster settings, got a string"], id="str"
        ),
    ],
)
def test_problems_name_the_field_and_what_was_expected(given, expected):
    with pytest.raises(ConfigError) as caught:
        parse_cluster(given)
    assert [str(p) for p in caught.value.problems] == expected


def test_every_problem_is_reported_at_once():
    with pytest.raises(ConfigError) as caught:
        parse_cluster({"role": "boss", "env": 3, "cluster_config_path": "x"})
    assert [p.path for p in caught.value.problems] == [
        "cluster.cluster_config_path",
        "cluster.env",
        "cluster.role",
    ]


def test_unknown_keys_warn_with_the_closest_known_key():
    _, warnings = parse_cluster({"role": "init", "cluster_tokn": "x"})
    assert [str(w) for w in warnings] == [
        "cluster.cluster_tokn: unknown setting, ignored; did you mean 'cluster_token'?"
    ]


def test_wait_seconds_and_images_flag_are_read():
    cluster, _ = parse_cluster(
        section(
            "cluster:\n  role: init\n  import_local_images: yes\n"
            "  providerConfig:\n    local_images_wait_seconds: 30\n"
        )
    )
    assert cluster.import_local_images is True
    assert cluster.wait_for_images_seconds == 30


@pytest.mark.parametrize(
    "path",
    [
        "/usr/local/cloud-config/cluster.kairos.yaml",
        "/oem/90_rke2.yml",
        "/system/oem/sub/dir/rke2.yaml",  # yip walks the directories
    ],
)
def test_an_output_path_kairos_runs_passes_quietly(path):
    cluster, warnings = parse_cluster({"role": "init", "cluster_config_path": path})
    assert cluster.output_path == path and warnings == []


@pytest.mark.parametrize(
    "path",
    [
        "/etc/rke2.yaml",
        "/oem/rke2.conf",
        "/usr/local/cloud-config.yaml",
        "/oemx/rke2.yaml",
        "/usr/local/cloud-config/x.yaml.bak",
    ],
)
def test_an_output_path_kairos_never_runs_is_flagged(path):
    cluster, warnings = parse_cluster({"role": "init", "cluster_config_path": path})
    assert cluster.output_path == path  # written where asked: the operator may run it another way
    assert [str(w) for w in warnings] == [
        f"cluster.cluster_config_path: Kairos never runs {path}: its boot stages run the *.yaml and *.yml"
        " files under /system/oem, /oem, /usr/local/cloud-config; RKE2 would not be set up at boot"
    ]


def test_a_misspelt_key_keeps_its_hint_in_the_agents_answer_beside_the_error_it_causes():
    import json

    from provider_rke2.cli import run_event

    from helpers import cloud_config
    from nodes import MemoryNode

    config = cloud_config(role="worker", cluster_token="abcdefgh1234").replace(
        "cluster:\n", "cluster:\n  control_plane_hots: cp.lan\n", 1
    )
    response = run_event("agent.boot", json.dumps({"data": json.dumps({"config": config})}), MemoryNode())
    assert response.state == "error"
    assert response.error.startswith("cluster.control_plane_host: missing; a worker node joins")
    assert (
        "warning: cluster.control_plane_hots: unknown setting, ignored; did you mean 'control_plane_host'?"
        in response.error
    )
    assert "warning: cluster.control_plane_hots" in response.log


def test_provider_config_keys_no_one_reads_are_named_with_the_closest_known_one():
    _, warnings = parse_cluster(
        {"role": "init", "providerConfig": {"local_images_wait_second": "60", "colour": "blue"}}
    )
    found = {w.path: w.message for w in warnings}
    assert found == {
        "cluster.providerConfig.local_images_wait_second": "unknown setting, ignored; did you mean 'local_images_wait_seconds'?",
        "cluster.providerConfig.colour": "unknown setting, ignored",
    }
