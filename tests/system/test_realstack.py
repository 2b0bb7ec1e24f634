"""The provider on the real Kairos stack: kairos-agent v2.31.4 sends `agent.boot`, the
kairos-sdk bus sends every other event, yip v1.25.1 runs what we wrote, on a node in a box
with Kairos's own disk layout (tests/kairosbox.py), in appliance and agent mode, for every
bundled example: image build, first boot, identical reboot, changed config, reset. While
yip runs, a local user (uid 65534) tries to read every file it can reach."""

from __future__ import annotations

import json
from typing import Any, Dict, List

import pytest
import yaml

from provider_rke2.core.registries import secrets as registry_secrets

import kairosbox
from helpers import ROOT, unescape
from kairosbox import OUTPUT, STYLUS

EXAMPLES = sorted(p.stem for p in (ROOT / "examples").glob("*.yaml"))
UNIT = {"init": "rke2-server.service", "controlplane": "rke2-server.service", "worker": "rke2-agent.service"}
PROXY_PASSWORD = "proxy-s3cret"


def example(name: str) -> str:
    text = (ROOT / "examples" / f"{name}.yaml").read_text()
    # Proxy credentials are secrets too: the proxy example carries some here.
    return text.replace("http://proxy.", f"http://edge:{PROXY_PASSWORD}@proxy.")


def changed(text: str) -> str:
    document = yaml.safe_load(text)
    document["cluster"]["config"] = (document["cluster"].get("config") or "") + "node-name: changed-node\n"
    return "#cloud-config\n" + yaml.safe_dump(document, sort_keys=False)


def secrets(text: str) -> List[str]:
    cluster = yaml.safe_load(text)["cluster"]
    return [cluster["cluster_token"], PROXY_PASSWORD, *registry_secrets(cluster.get("registries"))]


def assert_written_as_the_document_says(phase: Dict[str, Any]) -> None:
    """Every file of the document the provider wrote reached the node through real yip with
    the content and mode the document gives (registries.yaml, secrets and templates included)."""
    document = yaml.safe_load(phase["after_boot"][OUTPUT]["content"])
    files = [f for step in document["stages"]["boot.before"] for f in step.get("files", [])]
    assert files
    for entry in files:
        on_node = phase["after_boot"][entry["path"]]
        assert on_node["content"] == unescape(entry["content"]), entry["path"]
        assert (on_node["mode"], on_node["uid"]) == (entry["permissions"], 0), entry["path"]
    # cluster.registries, and only it, gives the node RKE2's registries file: private.
    asked = bool(yaml.safe_load(phase["config"])["cluster"].get("registries"))
    found = [p for p in phase["after_boot"] if p.endswith("/etc/rancher/rke2/registries.yaml")]
    assert bool(found) == asked, found
    assert all(phase["after_boot"][p]["mode"] == 0o600 for p in found)


def role(text: str) -> str:
    return yaml.safe_load(text)["cluster"]["role"]


def assert_booted(phase: Dict[str, Any], text: str) -> None:
    """The agent's notify succeeded, yip ran every step without an error, and no local user
    could read a secret at any moment of it."""
    notify = phase["notify"]
    assert notify["status"] == 0, notify
    if "answers" in notify:
        assert [a["response"]["state"] for a in notify["answers"]] == ["success"], notify
    else:
        assert "[provider event: agent.boot] success" in notify["stdout"], notify
    yip = phase["yip"]
    assert yip["status"] == 0, yip["stderr"]
    assert "level=error" not in yip["stdout"] + yip["stderr"], yip["stderr"]
    assert kairosbox.leaked(phase, secrets(text)) == []
    assert phase["yip"]["spy"]["opened"], "the spy opened nothing: it did not run"
    assert phase["unpacked"] == [], "the image carries the unpacked provider: a boot writes none to /run"


def started(phase: Dict[str, Any], unit: str) -> List[str]:
    return [c for c in phase["calls"] if c.startswith("systemd-run") and "wait-ready" in c] + [
        c for c in phase["calls"] if c.endswith(unit) and c.split()[1] in ("start", "restart", "stop")
    ]


@pytest.fixture(scope="module", params=EXAMPLES)
def appliance(request, tmp_path_factory) -> Dict[str, Any]:
    name = request.param
    text = example(name)
    where = [
        {"command": ["/system/providers/agent-provider-rke2", "paths", "--json"]},
        {"event": "init.provider.info", "payload": {"provider": "rke2"}},
    ]
    phases = [
        kairosbox.appliance_boot("first", text, then=where),
        kairosbox.appliance_boot("reboot", text),
        kairosbox.appliance_boot(
            "changed",
            changed(text),
            then=[{"event": "cluster.reset", "payload": {"config": changed(text)}}],
        ),
    ]
    return {"text": text, "result": kairosbox.boot(tmp_path_factory.mktemp(name), phases)}


def test_the_image_build_installs_rke2_and_answers_its_version(appliance):
    install, info = (e["answers"] for e in appliance["result"]["image"]["events"])
    assert install[0]["response"]["state"] == "success", install
    assert install[0]["executable"] == "/system/providers/agent-provider-rke2"
    assert info[0]["response"]["state"] == "success"
    assert '"version": "v1.31.2+rke2r1"' in info[0]["response"]["data"]
    image = appliance["result"]["image"]["after"]
    assert image["/usr/bin/rke2"]["mode"] == 0o755


def test_the_installed_node_finds_rke2_where_the_image_put_it_and_every_reader_agrees(appliance):
    """The persistent partition over /usr/local hides what an image held there: RKE2 and its
    units are in the image's /usr, and `paths`, init.provider.info and the unit agree."""
    image = appliance["result"]["image"]["after"]
    unit = image["/usr/lib/systemd/system/rke2-server.service"]["content"]
    assert "ExecStart=/usr/bin/rke2 server" in unit and "/usr/local" not in unit
    paths, info = appliance["result"]["first"]["then"]
    assert paths["status"] == 0, paths["stderr"]
    assert json.loads(paths["stdout"])["paths"]["binary"] == "/usr/bin/rke2"
    assert info["answers"][0]["response"]["state"] == "success", info
    assert json.loads(info["answers"][0]["response"]["data"])["version"] == "v1.31.2+rke2r1"
    assert "found /usr/bin/rke2" in info["answers"][0]["response"]["log"]


def test_every_boot_succeeds_on_real_yip_and_no_secret_is_ever_readable(appliance):
    for name in ("first", "reboot", "changed"):
        assert_booted(appliance["result"][name], appliance["text"])
        assert_written_as_the_document_says({**appliance["result"][name], "config": appliance["text"]})


def test_the_first_boot_writes_private_files_and_starts_rke2_from_the_image(appliance):
    first, text = appliance["result"]["first"], appliance["text"]
    after = first["after_boot"]
    config = after["/etc/rancher/rke2/config.yaml"]
    assert config["mode"] == 0o400 and config["uid"] == 0
    assert yaml.safe_load(text)["cluster"]["cluster_token"] in config["content"]
    assert after[OUTPUT]["mode"] == 0o600
    assert after["/usr/local/cloud-config"]["mode"] == 0o600  # as Kairos makes it
    unit = UNIT[role(text)]
    calls = started(first, unit)
    assert f"systemctl start --no-block {unit}" in calls
    # RKE2 really started: the fake release, run from where the image put it (/usr),
    # filled the data dir on the persistent partition.
    assert "/var/lib/rancher/rke2/agent/etc/containerd/config.toml" in after
    assert any("--after started" in c for c in calls), calls
    assert not [p for p in after if "/etc/systemd/system/" in p and unit in p]  # never enabled for good


def test_an_identical_reboot_writes_the_same_and_a_changed_config_reaches_rke2(appliance):
    result = appliance["result"]
    first, reboot, changed_ = (
        result[n]["after_boot"]["/etc/rancher/rke2/config.yaml"] for n in ("first", "reboot", "changed")
    )
    assert first["content"] == reboot["content"]
    assert "node-name: changed-node" in changed_["content"] and "node-name" not in first["content"]
    # /etc is a tmpfs overlay, /etc/rancher is persistent: the file survived the reboot.
    assert result["reboot"]["before"]["/etc/rancher/rke2/config.yaml"]["content"] == first["content"]


def test_a_reset_through_the_bus_removes_rke2(appliance):
    reset = appliance["result"]["changed"]["then"][0]
    assert reset["status"] == 0, reset
    assert [a["response"]["error"] for a in reset["answers"]] == [""]
    assert "/etc/rancher/rke2/config.yaml" not in reset["after"]
    assert not [p for p in reset["after"] if p.startswith("/var/lib/rancher/rke2/")]


@pytest.fixture(scope="module", params=EXAMPLES)
def agent(request, tmp_path_factory) -> Dict[str, Any]:
    name = request.param
    text = example(name)
    install = {"event": "init.provider.install", "payload": kairosbox.install_payload(root=STYLUS)}
    phases = [
        kairosbox.agent_boot("first", text, before=[install]),
        kairosbox.agent_boot("reboot", text),
        kairosbox.agent_boot(
            "changed", changed(text), then=[{"event": "cluster.reset", "payload": {"config": changed(text)}}]
        ),
    ]
    tmp = tmp_path_factory.mktemp(f"agent-{name}")
    return {"text": text, "result": kairosbox.boot(tmp, phases, installed=None)}


def test_agent_mode_boots_under_the_root_on_real_yip_with_no_secret_readable(agent):
    result, text = agent["result"], agent["text"]
    install = result["first"]["ran_before"][0]["answers"][0]["response"]
    assert install["state"] == "success", install
    for name in ("first", "reboot", "changed"):
        assert_booted(result[name], text)
        assert_written_as_the_document_says({**result[name], "config": text})
    after = result["first"]["after_boot"]
    config = after[f"{STYLUS}/etc/rancher/rke2/config.yaml"]
    assert config["mode"] == 0o400
    assert f"{STYLUS}/var/lib/rancher/rke2/agent/etc/containerd/config.toml" in after
    assert not [p for p in after if p.startswith("/etc/rancher/") or p.startswith("/var/lib/rancher/")]
    unit = UNIT[role(text)]
    assert f"systemctl start --no-block {unit}" in started(result["first"], unit)
    changed_config = result["changed"]["after_boot"][f"{STYLUS}/etc/rancher/rke2/config.yaml"]
    assert "node-name: changed-node" in changed_config["content"]


def test_agent_mode_reset_through_the_bus_removes_rke2_from_the_root(agent):
    reset = agent["result"]["changed"]["then"][0]
    assert [a["response"]["error"] for a in reset["answers"]] == [""], reset
    assert not [p for p in reset["after"] if p.startswith(f"{STYLUS}/etc/rancher/rke2")]
    assert not [p for p in reset["after"] if p.startswith(f"{STYLUS}/var/lib/rancher/rke2")]


def test_the_agent_refuses_to_notify_cluster_reset(tmp_path):
    """cluster.reset is not a kairos-agent event: only other callers (Stylus) send it."""
    text = example("single-node")
    notify = {"command": ["kairos-agent", "notify", "cluster.reset"]}
    result = kairosbox.boot(tmp_path, [kairosbox.appliance_boot("boot", text, then=[notify])])
    ran = result["boot"]["then"][0]
    assert ran["status"] != 0 and "not defined" in ran["stdout"] + ran["stderr"]
    assert "/etc/rancher/rke2/config.yaml" in ran["after"]  # nothing was reset


def test_a_payload_over_8_kib_reaches_the_provider_through_a_file(tmp_path):
    """go-pluggable hands a large event over in a file in $TMPDIR (data left empty)."""
    text = example("ha-worker").replace("\ncluster:", "\npadding: '" + "x" * 9000 + "'\ncluster:", 1)
    result = kairosbox.boot(tmp_path, [kairosbox.appliance_boot("boot", text)])
    assert_booted(result["boot"], text)
    assert "change-me-ha-token" in result["boot"]["after_boot"]["/etc/rancher/rke2/config.yaml"]["content"]


# -- side by side with the reference Go provider (tests/realstack/third_party) -----------------


def with_cidrs(text: str) -> str:
    """The example as a user of the Go provider must write it: both CIDRs given, or it panics."""
    document = yaml.safe_load(text)
    config = document["cluster"].get("config") or ""
    if "cluster-cidr" not in config:
        config += "cluster-cidr: 10.42.0.0/16\nservice-cidr: 10.43.0.0/16\n"
    document["cluster"]["config"] = config
    return "#cloud-config\n" + yaml.safe_dump(document, sort_keys=False)


@pytest.fixture(scope="module", params=EXAMPLES)
def go_node(request, tmp_path_factory) -> Dict[str, Any]:
    text = example(request.param)
    phases = [
        kairosbox.appliance_boot("as-given", text),
        kairosbox.appliance_boot("with-cidrs", with_cidrs(text)),
    ]
    tmp = tmp_path_factory.mktemp(f"go-{request.param}")
    return {"text": text, "result": kairosbox.boot(tmp, phases, provider="go")}


def test_the_go_provider_panics_on_agent_boot_unless_both_cidrs_are_given(go_node):
    as_given = go_node["result"]["as-given"]
    config = yaml.safe_load(go_node["text"])["cluster"].get("config") or ""
    if "cluster-cidr" in config and "service-cidr" in config:
        assert as_given["notify"]["status"] == 0
    else:  # ours boots every example (test_every_boot_succeeds_on_real_yip_and_...)
        assert as_given["notify"]["status"] == 1
        assert "panic: interface conversion: interface {} is nil, not string" in as_given["notify"]["stdout"]
        assert OUTPUT not in as_given["after_boot"]


def test_the_go_provider_side_by_side_differs_as_the_docs_table_says(go_node):
    """Each row of docs/real-stack.md's table, on the Go side (ours: the tests above)."""
    text, boot = go_node["text"], go_node["result"]["with-cidrs"]
    after, calls = boot["after_boot"], boot["calls"]
    assert boot["notify"]["status"] == 0
    if "jq: error" in boot["yip"]["stderr"]:
        # Its jq merge cannot add the user's tls-san string to its own list: config.yaml
        # is left EMPTY and RKE2 starts anyway (ours merges: test_every_boot_succeeds...).
        assert boot["yip"]["status"] == 1 and after["/etc/rancher/rke2/config.yaml"]["content"] == ""
        assert "tls-san: 10.10.0.10" in text and f"systemctl restart {UNIT[role(text)][:-8]}" in calls
        return
    assert boot["yip"]["status"] == 0, boot["yip"]["stderr"]
    unit = UNIT[role(text)][: -len(".service")]
    # Every boot waits two minutes, enables RKE2 for good and restarts it unconditionally.
    assert "sleep 120" in calls
    assert f"systemctl enable {unit}" in calls and f"systemctl restart {unit}" in calls
    # config.yaml: JSON from a shell redirect, 0644 with the token in it; only the 0500
    # directory yip happened to create (from a 0400 file's mode) keeps others out, and
    # with it RKE2's kubeconfig whatever write-kubeconfig-mode says.
    config = after["/etc/rancher/rke2/config.yaml"]
    assert config["mode"] == 0o644 and after["/etc/rancher/rke2"]["mode"] == 0o500
    merged = yaml.safe_load(config["content"])
    assert merged["token"] == yaml.safe_load(text)["cluster"]["cluster_token"]
    if role(text) == "init":  # empty values RKE2 is handed
        assert merged["server"] == ""
        if "control_plane_host" not in text:
            assert merged["tls-san"] == [""]
    if "write-kubeconfig-mode" in text:
        assert merged["write-kubeconfig-mode"] == 420  # 0644 read as YAML 1.1 octal, then as octal 420
    env = after.get(f"/etc/default/{unit}")
    if env:  # NO_PROXY with empty entries where the node's address was not known yet
        assert ",," in env["content"] and env["content"].startswith("HTTP_PROXY=")
        # Written by yip into the 0755 /etc/default: the proxy password readable meanwhile.
        assert kairosbox.leaked(boot, [PROXY_PASSWORD]) == [f"/etc/default/{unit}"]


def test_ours_never_waits_unconditionally_nor_enables_rke2_for_good(appliance):
    for name in ("first", "reboot", "changed"):
        calls = appliance["result"][name]["calls"]
        assert "sleep 120" not in calls
        assert not [c for c in calls if c.startswith("systemctl enable") and "--runtime" not in c]
