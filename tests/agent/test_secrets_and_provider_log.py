"""The provider log and the scrub: nothing lets anyone read the token back."""

import json
import os
import stat

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pyfakefs.helpers import set_uid
from strategies import nested

from provider_rke2 import __version__
from provider_rke2.cli import run_event
from provider_rke2.core.errors import OutputError
from provider_rke2.core.root import FROM_FLAG, Root
from provider_rke2.core.secrets import REDACTED, in_section, scrub
from provider_rke2.core.spec import cluster_section
from provider_rke2.machine.fsio import append_record
from provider_rke2.machine.node import LocalNode

from helpers import cloud_config
from nodes import MemoryNode

TOKEN = "K10-super-secret-token"


def test_collects_token_secret_options_and_proxy_passwords():
    config = cloud_config(
        role="init",
        cluster_token=TOKEN,
        env={"HTTPS_PROXY": "http://user:pr0xy-pass@proxy:3128", "NO_PROXY": ".lan"},
        config="agent-token: agent-secret\netcd-s3-secret-key: s3-secret\nt: alias-secret\nnode-name: not-secret\n",
    )
    assert in_section(cluster_section(config)) == {
        TOKEN,
        "pr0xy-pass",
        "agent-secret",
        "s3-secret",
        "alias-secret",
    }


@pytest.mark.parametrize(
    "section",
    [None, 5, "text", [1], {"config": "a: ["}, {"config": "- 1"}, {"env": [1]}, {"cluster_token": ["x"]}],
)
def test_collection_never_fails(section):
    assert in_section(section) == set()


values = nested(key_size=12, leaves=10)
keys = st.sampled_from(["cluster_token", "env", "config", "role", "x"])


@settings(max_examples=300, deadline=None)
@given(st.dictionaries(keys, values | st.text(max_size=60), max_size=5) | values)
def test_collection_never_raises_on_any_section(section):
    found = in_section(section)
    assert isinstance(found, set) and all(isinstance(item, str) and item for item in found)


def test_scrub_replaces_longest_first():
    assert scrub("abcdefgh abcdefghij", {"abcdefgh", "abcdefghij"}) == f"{REDACTED} {REDACTED}"


def RecordingNode(root):
    return MemoryNode(root=Root(root, FROM_FLAG))


def event(config):
    return json.dumps({"data": json.dumps({"config": config})})


@pytest.mark.parametrize(
    "field",
    [
        "role",
        "control_plane_host",
        "cluster_config_path",
        "local_images_path",
        "import_local_images",
        "env-key",
        "env-value",
        "config-key",
        "config-value",
        "provider-config",
    ],
)
def test_a_token_planted_in_any_field_never_leaves(field):
    cluster = {"role": "worker", "cluster_token": TOKEN, "control_plane_host": "cp"}
    planted = {
        "role": {"role": TOKEN},
        "control_plane_host": {"control_plane_host": f"https://{TOKEN}"},
        "cluster_config_path": {"cluster_config_path": f"rel/{TOKEN}"},
        "local_images_path": {"local_images_path": f"/a/../{TOKEN}"},
        "import_local_images": {"import_local_images": TOKEN},
        "env-key": {"env": {TOKEN: "x"}},
        "env-value": {"env": {"HTTP_PROXY": f"http://p\n{TOKEN}"}},
        "config-key": {"config": f"{TOKEN}: 1\n"},
        "config-value": {"config": f"debug: {TOKEN}\ncni: {TOKEN}\n"},
        "provider-config": {"providerConfig": {"local_images_wait_seconds": TOKEN}},
    }[field]
    node = RecordingNode("/")
    response = run_event("agent.boot", event(cloud_config(**{**cluster, **planted})), node)
    assert response.error or response.log  # something was said about it
    assert TOKEN not in json.dumps(response.__dict__)
    assert node.logs and all(TOKEN not in text for _, text in node.logs)


def test_log_records_carry_time_version_event_and_role():
    node = RecordingNode("/persistent/spectro")
    run_event("agent.boot", event(cloud_config(role="init", config="node-lable: [a]\n")), node)
    [(path, text)] = node.logs
    assert path == "/persistent/spectro/var/log/provider-rke2/provider-rke2.log"
    lines = text.splitlines()
    assert lines[0].endswith(
        f"provider-rke2/{__version__} agent.boot role=init warning: cluster.config.node-lable: not an RKE2 option;"
        " RKE2 logs 'Unknown flag' and skips it; did you mean 'node-label'?"
    )
    assert lines[0][:20].endswith("Z") and lines[0][10] == "T"
    assert lines[1].endswith(
        "agent.boot role=init info: wrote /usr/local/cloud-config/cluster.kairos.yaml (role init, root /persistent/spectro)"
    )


def test_errors_are_logged_too():
    node = RecordingNode("/")
    run_event("agent.boot", event(cloud_config(role="boss")), node)
    assert "agent.boot role=- error: cluster.role: 'boss' is not one of" in node.logs[0][1]


# --- the file itself -----------------------------------------------------------------------------

LOG = "/var/log/provider-rke2/provider-rke2.log"


def test_append_creates_a_private_file_and_appends(fs):
    append_record(LOG, b"one\n", 1000)
    append_record(LOG, b"two\n", 1000)
    assert open(LOG).read() == "one\ntwo\n"
    assert stat.S_IMODE(os.stat(LOG).st_mode) == 0o600


def test_rotation_keeps_one_older_file(fs):
    for index in range(5):
        append_record(LOG, f"record-{index}\n".encode(), 20)
    assert open(LOG).read() == "record-4\n"
    assert open(LOG + ".1").read() == "record-2\nrecord-3\n"
    assert not os.path.exists(LOG + ".2")


def test_unwritable_log_directory_is_an_output_error(fs):
    fs.create_dir("/var/log/provider-rke2", perm_bits=0o555)
    set_uid(1000)
    try:
        with pytest.raises(OutputError, match="cannot append to /var/log/provider-rke2/provider-rke2.log"):
            append_record(LOG, b"x\n", 100)
    finally:
        set_uid(0)


def test_a_boot_succeeds_when_its_log_cannot_be_written(tmp_path):
    root = tmp_path / "root"
    (root / "var/log").mkdir(parents=True)
    (root / "var/log/provider-rke2").write_text("a file where the directory should be")
    out = tmp_path / "cluster.yaml"
    node = LocalNode(str(root), environ={})
    response = run_event("agent.boot", event(cloud_config(role="init", cluster_config_path=str(out))), node)
    assert response.state == "success"
    assert "warning: provider log not written: cannot append to" in response.log
    assert out.exists()


def test_the_real_log_is_redacted_and_versioned(tmp_path):
    root = tmp_path / "root"
    out = tmp_path / "cluster.yaml"
    config = cloud_config(
        role="init", cluster_token=TOKEN, cluster_config_path=str(out), config=f"token: {TOKEN}-other\n"
    )
    run_event("agent.boot", event(config), LocalNode(str(root), environ={}))
    log = (root / "var/log/provider-rke2/provider-rke2.log").read_text()
    assert TOKEN not in log and f"provider-rke2/{__version__} agent.boot" in log
    assert stat.S_IMODE((root / "var/log/provider-rke2/provider-rke2.log").stat().st_mode) == 0o600


def test_a_url_password_is_found_however_broken_the_url():
    """One reading for proxy settings, registry endpoints and a node's old proxy file."""
    from provider_rke2.core.secrets import url_passwords

    assert url_passwords("http://edge:s3cret-pass@proxy:3128") == {"s3cret-pass"}
    assert url_passwords("http://edge:s3cret-pass@[broken") == {"s3cret-pass"}  # urlsplit refuses it
    assert url_passwords("https://x:p:w2-long@host/path") == {"p:w2-long"}
    assert url_passwords("http://proxy:3128") == set()
