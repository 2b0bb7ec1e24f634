"""Rendering for a host whose RKE2 lives under STYLUS_ROOT."""

import pytest
import yaml

from provider_rke2.core.paths import Paths
from provider_rke2.core.render import render
from provider_rke2.core.root import FROM_FLAG, Root

from helpers import ROOT, cloud_config, files_of, rendered_document, step_named, steps, unescape

STYLUS = "/persistent/spectro"
AGENT = Root(STYLUS, FROM_FLAG)
# Paths that are not RKE2's and so stay where the host keeps them.
HOST_PATHS = ("/usr/local/cloud-config/", "/run/systemd/system/", "/etc/fstab", "/etc/systemd/system/")


def agent_document(**cluster):
    result = render(cloud_config(**cluster), AGENT)
    return yaml.safe_load(result.text)


def every_path(document):
    for step in steps(document):
        for entry in step.get("files", []) + step.get("directories", []):
            yield entry["path"]
        if "if" in step:  # the paths it tests (the word after -perm is a mode)
            words = [w.strip("'\"") for w in step["if"].split()]
            yield from (w for i, w in enumerate(words) if w.startswith("/") and words[i - 1] != "-perm")


@pytest.mark.parametrize("example", sorted(p.name for p in (ROOT / "examples").glob("*.yaml")))
def test_every_rke2_path_of_every_example_sits_under_the_root(example):
    text = (ROOT / "examples" / example).read_text() + "  import_local_images: true\n"
    document = yaml.safe_load(render(text, AGENT).text)
    paths = list(every_path(document))
    assert paths
    for path in paths:
        assert path.startswith(STYLUS + "/") or path.startswith(HOST_PATHS), path


def test_data_dir_points_at_the_root():
    config = yaml.safe_load(
        files_of(agent_document(role="init"))[f"{STYLUS}/etc/rancher/rke2/config.yaml"]["content"]
    )
    assert config["data-dir"] == f"{STYLUS}/var/lib/rancher/rke2"


def test_a_users_data_dir_is_respected_with_a_warning():
    result = render(cloud_config(role="init", config="data-dir: /data/rke2\n"), AGENT)
    config = yaml.safe_load(
        files_of(yaml.safe_load(result.text))[f"{STYLUS}/etc/rancher/rke2/config.yaml"]["content"]
    )
    assert config["data-dir"] == "/data/rke2"
    assert "cluster.config.data-dir: kept as given ('/data/rke2');" in str(result.warnings[0])


@pytest.mark.parametrize(
    "role, unit, verb", [("init", "rke2-server", "server"), ("worker", "rke2-agent", "agent")]
)
def test_the_unit_drop_in_points_systemd_at_the_root(role, unit, verb):
    document = agent_document(role=role, control_plane_host="cp", cluster_token="t")
    drop_in = files_of(document)[f"/run/systemd/system/{unit}.service.d/50-stylus-root.conf"]
    assert drop_in["permissions"] == 0o644
    assert drop_in["content"].splitlines()[1:] == [
        "[Service]",
        "EnvironmentFile=-/etc/spectro/environment",
        f"EnvironmentFile=-{STYLUS}/etc/default/{unit}",
        "ExecStart=",
        f"ExecStart={STYLUS}/usr/local/bin/rke2 {verb} --config {STYLUS}/etc/rancher/rke2/config.yaml",
    ]
    start = step_named(document, f"Start {unit}")
    assert start["files"] == [drop_in]  # written before the daemon-reload of the same step


def test_appliance_mode_emits_no_drop_in():
    document = rendered_document(cloud_config(role="init"))
    assert not [p for p in files_of(document) if p.startswith("/run/systemd")]


def test_images_default_under_the_root_and_an_explicit_path_is_kept():
    default = step_named(agent_document(role="init", import_local_images=True), "Copy local image")
    assert default["if"] == f"[ -d {STYLUS}/opt/content/images ]"
    assert default["commands"][0] == f"mkdir -p {STYLUS}/var/lib/rancher/rke2/agent/images"
    explicit = step_named(
        agent_document(role="init", import_local_images=True, local_images_path="/media/images"),
        "Copy local image",
    )
    assert explicit["if"] == "[ -d /media/images ]"


def test_proxy_env_file_under_the_root():
    document = agent_document(role="init", env={"HTTP_PROXY": "http://p"})
    assert f"{STYLUS}/etc/default/rke2-server" in files_of(document)


def test_cluster_root_path_renders_agent_mode_when_nothing_else_sets_a_root():
    result = render(cloud_config(role="init", providerConfig={"cluster_root_path": STYLUS}))
    assert result.root.path == STYLUS
    assert f"{STYLUS}/etc/rancher/rke2/config.yaml" in files_of(yaml.safe_load(result.text))


def test_the_cluster_output_keeps_the_sdk_default_in_agent_mode():
    assert render(cloud_config(role="init"), AGENT).path == "/usr/local/cloud-config/cluster.kairos.yaml"


def test_template_escaping_holds_in_agent_mode_too():
    document = agent_document(role="init", config='node-name: "{{x}}"\n')
    content = files_of(document)[f"{STYLUS}/etc/rancher/rke2/config.yaml"]["content"]
    assert yaml.safe_load(unescape(content))["node-name"] == "{{x}}"


def test_path_table_for_both_modes():
    appliance = dict(Paths("/").table())
    agent = dict(Paths(STYLUS).table())
    expected = {
        "config drop-ins": ("/etc/rancher/rke2/config.d/", f"{STYLUS}/etc/rancher/rke2/config.d/"),
        "final config": ("/etc/rancher/rke2/config.yaml", f"{STYLUS}/etc/rancher/rke2/config.yaml"),
        "data dir": ("/var/lib/rancher/rke2/", f"{STYLUS}/var/lib/rancher/rke2/"),
        "proxy env (server)": ("/etc/default/rke2-server", f"{STYLUS}/etc/default/rke2-server"),
        "binary": ("/usr/bin/rke2", f"{STYLUS}/usr/local/bin/rke2"),  # where an install puts it
        "logs": ("/var/log/rke2.log", f"{STYLUS}/var/log/rke2.log"),
        "scripts": ("/opt/rke2/scripts/", f"{STYLUS}/opt/rke2/scripts/"),
    }
    for purpose, (in_appliance, in_agent) in expected.items():
        assert (appliance[purpose], agent[purpose]) == (in_appliance, in_agent)


def test_every_path_paths_derives_is_set_and_below_the_root():
    """Each attribute Paths declares it derives (paths._Derived) is made by __post_init__ and,
    in agent mode, lies under STYLUS_ROOT: a name declared and never derived fails here, not
    at a node."""
    from provider_rke2.core.paths import _Derived

    paths = Paths(STYLUS)
    derived = {name: getattr(paths, name) for name in _Derived.__annotations__}
    assert derived.pop("agent_mode") is True
    assert len(derived) > 30
    assert sorted(name for name, path in derived.items() if not path.startswith(STYLUS + "/")) == []
