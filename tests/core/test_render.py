import pytest
import yaml
from hypothesis import given
from hypothesis import strategies as st

from provider_rke2.core import schema
from provider_rke2.core.errors import ConfigError
from provider_rke2.core.render import render

from helpers import cloud_config, dash, files_of, rendered_document, step_named, steps, unescape

TOKEN = "s3cr3t-t0ken"
CONFIG = "/etc/rancher/rke2/config.yaml"


def merged_config(document):
    return yaml.safe_load(unescape(files_of(document)[CONFIG]["content"]))


@pytest.mark.parametrize(
    "role, host, unit, expected",
    [
        pytest.param("init", "", "rke2-server.service", {"token": TOKEN}, id="init-alone"),
        pytest.param(
            "init", "cp.lan", "rke2-server.service", {"token": TOKEN, "tls-san": ["cp.lan"]}, id="init"
        ),
        pytest.param(
            "controlplane",
            "cp.lan",
            "rke2-server.service",
            {"token": TOKEN, "server": "https://cp.lan:9345", "tls-san": ["cp.lan"]},
            id="controlplane",
        ),
        pytest.param(
            "worker",
            "cp.lan",
            "rke2-agent.service",
            {"token": TOKEN, "server": "https://cp.lan:9345"},
            id="worker",
        ),
    ],
)
def test_each_role(role, host, unit, expected):
    cluster = {"role": role, "cluster_token": TOKEN}
    if host:
        cluster["control_plane_host"] = host
    document = rendered_document(cloud_config(**cluster))
    assert merged_config(document) == expected
    assert [s["name"] for s in steps(document)] == [
        "Turn swap off (the kubelet refuses to start with swap on)",
        "Lay fresh private files where secrets go (yip creates a file readable by all, then chmods it)",
        "Write the RKE2 configuration",
        "Record the paths the node scripts act on (this node's data dir included)",
        f"Start {unit} (enabled for this boot only; restarted when it runs with a changed configuration,"
        " never while it starts)",
    ]
    assert list(document["stages"]) == ["boot.before"]


def test_no_cluster_section_renders_nothing():
    assert render("#cloud-config\nhostname: x\n") is None
    assert render("") is None
    assert render("cluster:\n") is None


def test_files_carrying_the_token_are_owner_read_only():
    document = rendered_document(cloud_config(role="init", cluster_token=TOKEN))
    readable = {"/opt/rke2/scripts/rke2-paths.env"}
    for path, entry in files_of(document).items():
        assert isinstance(entry["permissions"], int)
        if path in readable:
            assert (entry["permissions"], TOKEN in entry["content"]) == (0o644, False)
        else:
            assert entry["permissions"] == 0o400, path


def test_user_drop_in_holds_the_users_text_and_provider_drop_in_the_providers():
    user = "write-kubeconfig-mode: 0644   # as written\n"
    document = rendered_document(
        cloud_config(role="worker", cluster_token=TOKEN, control_plane_host="h", config=user)
    )
    files = files_of(document)
    assert files["/etc/rancher/rke2/config.d/90_userdata.yaml"]["content"].endswith(user)
    assert yaml.safe_load(files["/etc/rancher/rke2/config.d/99_userdata.yaml"]["content"]) == {
        "token": TOKEN,
        "server": "https://h:9345",
    }
    assert merged_config(document)["write-kubeconfig-mode"] == "0644"


def test_template_braces_in_user_config_reach_the_node_unchanged():
    document = rendered_document(cloud_config(role="init", config='node-name: "{{ .Values.x }}"\n'))
    content = files_of(document)[CONFIG]["content"]
    assert "{{ .Values" not in content.replace('{{ "{{" }}', "")
    assert merged_config(document)["node-name"] == "{{ .Values.x }}"


def test_proxy_file_goes_to_the_units_environment():
    document = rendered_document(
        cloud_config(
            role="worker", cluster_token=TOKEN, control_plane_host="h", env={"HTTPS_PROXY": "http://p:3"}
        )
    )
    entry = files_of(document)["/etc/default/rke2-agent"]
    assert entry["permissions"] == 0o400
    assert "HTTPS_PROXY=http://p:3\n" in entry["content"]
    assert "NO_PROXY=h,10.42.0.0/16,10.43.0.0/16," in entry["content"]


def test_proxy_no_proxy_uses_the_merged_cidrs():
    document = rendered_document(
        cloud_config(role="init", env={"HTTP_PROXY": "http://p"}, config="cluster-cidr: 10.9.0.0/16\n")
    )
    assert "NO_PROXY=10.9.0.0/16,10.43.0.0/16," in files_of(document)["/etc/default/rke2-server"]["content"]


def test_images_step_uses_the_users_data_dir_and_images_path():
    document = rendered_document(
        cloud_config(
            role="init",
            import_local_images=True,
            local_images_path="/data/images",
            config="data-dir: /data/rke2\n",
        )
    )
    step = step_named(document, "Copy local image archives")
    assert step["if"] == "[ -d /data/images ]"
    assert step["commands"][0] == "mkdir -p /data/rke2/agent/images"


def test_images_step_is_absent_unless_asked_for():
    document = rendered_document(cloud_config(role="init", import_local_images=False))
    assert not [s for s in steps(document) if "image" in s["name"]]


def test_no_unconditional_sleep_anywhere():
    document = rendered_document(cloud_config(role="init", import_local_images=True))
    for step in steps(document):
        for command in step.get("commands", []):
            assert "sleep" not in command or "while" in command


def test_the_wait_comes_before_the_copy_and_is_named_for_operators():
    document = rendered_document(
        cloud_config(
            role="init", import_local_images=True, providerConfig={"local_images_wait_seconds": "45"}
        )
    )
    names = [s["name"] for s in steps(document)]
    wait = names.index(
        "Wait up to 45 s while local image archives are still being extracted into /opt/content/images"
        " (providerConfig.local_images_wait_seconds)"
    )
    assert names[wait + 1].startswith("Copy local image archives")


def test_joining_without_any_token_is_an_error():
    with pytest.raises(
        ConfigError, match="cluster.cluster_token: missing; a worker node needs the cluster token"
    ):
        render(cloud_config(role="worker", control_plane_host="h"))


def test_joining_with_a_token_file_in_config_is_fine():
    document = rendered_document(
        cloud_config(role="worker", control_plane_host="h", config="token-file: /run/secret/token\n")
    )
    assert merged_config(document)["token-file"] == "/run/secret/token"


def test_server_on_an_init_node_is_kept_and_warned_about():
    result = render(cloud_config(role="init", config="server: https://other:9345\n"))
    assert any("set on an init node" in str(w) for w in result.warnings)


def test_custom_output_path():
    assert (
        render(cloud_config(role="init", cluster_config_path="/oem/99_rke2.yaml")).path == "/oem/99_rke2.yaml"
    )


@pytest.mark.parametrize(
    "text, message",
    [
        pytest.param("a: [", "config: is not valid YAML", id="syntax"),
        pytest.param("- a\n", "config: expected a mapping, got a list", id="list"),
        pytest.param(
            "cluster: [1]\n", "cluster: expected a mapping of cluster settings, got a list", id="cluster-list"
        ),
    ],
)
def test_bad_cloud_configs(text, message):
    with pytest.raises(ConfigError, match=message):
        render(text)


def test_every_command_and_if_parses_as_posix_sh():
    document = rendered_document(
        cloud_config(
            role="worker",
            cluster_token=TOKEN,
            control_plane_host="h",
            import_local_images=True,
            local_images_path="/opt/my images/$(x)",
            providerConfig={"local_images_wait_seconds": "5"},
            env={"HTTP_PROXY": "http://p"},
        )
    )
    for step in steps(document):
        for command in [step.get("if", ""), *step.get("commands", [])]:
            if command:
                result = dash(f"set -n\n{unescape(command)}")
                assert result.returncode == 0, (command, result.stderr)


# --- the yip schema ------------------------------------------------------------------


def test_rendered_documents_satisfy_the_yip_schema():
    document = rendered_document(
        cloud_config(
            role="worker",
            cluster_token=TOKEN,
            control_plane_host="h",
            import_local_images=True,
            env={"NO_PROXY": "x"},
        )
    )
    assert schema.problems(document, schema.YIP, "yip") == []


@pytest.mark.parametrize(
    "mutate, where",
    [
        pytest.param(lambda f: f.update(permissions="0600"), "permissions", id="quoted-permission"),
        pytest.param(lambda f: f.update(owner="root"), "owner", id="string-owner"),
        pytest.param(lambda f: f.update(owner_string="root"), "owner_string", id="misspelled-ownerstring"),
        pytest.param(lambda f: f.update(path="relative"), "path", id="relative-path"),
    ],
)
def test_the_schema_rejects_what_yip_would_silently_drop(mutate, where):
    document = rendered_document(cloud_config(role="init"))
    first_file = step_named(document, "Write the RKE2")["files"][0]
    mutate(first_file)
    found = schema.problems(document, schema.YIP, "yip")
    assert found and where in " ".join(str(p) for p in found)


def test_one_check_reports_every_problem_of_every_layer_in_one_pass():
    """The section, the user's RKE2 config and the node's dirs: a boot hears of them all at once."""
    from provider_rke2.core.errors import ConfigError

    config = "#cloud-config\ncluster:\n  role: worker\n  config: |\n    debug: maybe\n"
    with pytest.raises(ConfigError) as raised:
        render(config)
    assert [p.path for p in raised.value.problems] == ["cluster.config.debug", "cluster.control_plane_host"]
    dirs = cloud_config(role="init", config="data-dir: /usr\nkubelet-arg: [root-dir=/var/lib]\n")
    with pytest.raises(ConfigError) as raised:
        render(dirs)
    assert [p.path for p in raised.value.problems] == [
        "cluster.config.data-dir",
        "cluster.config.kubelet-arg root-dir",
    ]


def test_a_boot_reads_the_users_rke2_config_once(monkeypatch):
    """For its secrets and for its check alike (reading YAML is most of a boot's cost)."""
    import json as json_module

    from provider_rke2 import cli
    from provider_rke2.core import rke2config, yamlread

    from nodes import MemoryNode

    reads = []
    real = yamlread.load_rke2_config
    for module in (yamlread, rke2config):  # wherever it is called from
        monkeypatch.setattr(module, "load_rke2_config", lambda text: reads.append(text) or real(text))
    config = cloud_config(role="init", config="node-label:\n- a=b\ntoken: from-the-config-1234\n")
    event = json_module.dumps({"name": "agent.boot", "data": json_module.dumps({"config": config})})
    response = cli.run_event("agent.boot", event, MemoryNode())
    assert response.state == "success", response.error
    assert reads == ["node-label:\n- a=b\ntoken: from-the-config-1234\n"]


@given(key=st.binary(max_size=200), message=st.binary(max_size=2000))
def test_the_fingerprint_digest_is_hmac_sha256_without_openssl(key, message):
    import hashlib
    import hmac

    from provider_rke2.core.fingerprint import keyed

    assert keyed(key, message) == hmac.new(key, message, hashlib.sha256).hexdigest()
