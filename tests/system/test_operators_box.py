"""What RKE2 operators run into, on an agent-mode node in the Kairos box (tests/kairosbox.py:
the bus client sends agent.boot as the Stylus agent does, the real yip runs what we wrote,
while a local user tries to read every file): a configuration changed while a first server
is still starting (never restarted then; the watcher applies it once RKE2 is ready), airgap
images in every format RKE2 imports and never touched again unchanged, a changed token on a
server with cluster state (refused, nothing lost), private registries written, removed when
no longer asked for, and by a reset. An agent handed a new token is warned."""

from __future__ import annotations

import json
from typing import Any, Dict, List

import pytest
import yaml

import kairosbox
from helpers import cloud_config
from kairosbox import OUTPUT, STYLUS

TOKEN = "operators-token-one"
NEW_TOKEN = "operators-token-two"
PASSWORD = "registry-s3cret-pass"
PROVIDER = "/system/providers/agent-provider-rke2"
DATA = f"{STYLUS}/var/lib/rancher/rke2"
IMAGES = f"{DATA}/agent/images"
SOURCE = f"{STYLUS}/opt/content/images"
REGISTRIES = STYLUS + "/etc/rancher/rke2/registries.yaml"
STATE = f"{STYLUS}/var/lib/provider-rke2"
ARCHIVES = (
    "a.tar",
    "b.tar.lz4",
    "c.tar.bz2",
    "d.tbz",
    "e.tar.gz",
    "f.tgz",
    "g.tar.zst",
    "h.tzst",
    "images.txt",
)
REGISTRY_SECTION = {
    "mirrors": {"docker.io": {"endpoint": ["https://registry.site.example:5000"]}},
    "configs": {"registry.site.example:5000": {"auth": {"username": "edge", "password": PASSWORD}}},
}


def config(
    token: str = TOKEN, site: str = "a", registries: bool = True, role: str = "init", **extra: Any
) -> str:
    text = cloud_config(
        role=role,
        cluster_token=token,
        import_local_images=True,
        config=f"node-label:\n- site={site}\n",
        **extra,
    )
    document = yaml.safe_load(text)
    if registries:
        document["cluster"]["registries"] = REGISTRY_SECTION
    return "#cloud-config\n" + yaml.safe_dump(document, sort_keys=False)


def sh(script: str) -> Dict[str, Any]:
    return {"command": ["sh", "-c", script]}


LAY_IMAGES = sh(
    f"mkdir -p {SOURCE}/nested && cd {SOURCE} && for f in {' '.join(ARCHIVES[:-1])}; do echo $f > $f; done"
    f" && echo docker.io/library/busybox:1.36 > nested/images.txt && echo no > notes.md && echo no > x.tar.xz"
    f" && find . -exec touch -d @1600000000 {{}} +"
)
LIST_IMAGES = sh(f"cd {IMAGES} && stat -c '%n %s %Y %i' * .cache.json 2>/dev/null; true")
WATCHER = [
    PROVIDER, "wait-ready", "--role", "init", "--stylus-root", STYLUS, "--data-dir", DATA, "--timeout", "30",
    "--after", "deferred", "--kubelet-url", "file:///kairosbox/healthz", "--supervisor-url", "file:///kairosbox/ping",
    "--max-interval", "0.2",
]  # fmt: skip


@pytest.fixture(scope="module")
def server(tmp_path_factory, ca_pem) -> Dict[str, Dict[str, Any]]:
    """A first server: started, re-applied while still starting, applied again unchanged,
    handed another token, its registries taken away, given back, then reset."""
    install = {"event": "init.provider.install", "payload": kairosbox.install_payload(root=STYLUS)}
    starting = sh("echo activating > /kairosbox/start-as")  # RKE2 still bootstrapping after its start
    bootstrapped = sh("rm -f /kairosbox/start-as && echo active > /kairosbox/units/rke2-server.service")
    rke2_cache = sh(f"echo '{{\"kept\": 1}}' > {IMAGES}/.cache.json")
    reset = {"event": "cluster.reset", "payload": {"config": config(site="b")}}
    phases = [
        kairosbox.agent_boot("first", config(), before=[install, LAY_IMAGES, starting], then=[LIST_IMAGES]),
        kairosbox.agent_boot(
            "while starting",
            config(site="b"),
            reboot=False,
            then=[bootstrapped, {"command": WATCHER}, rke2_cache],
        ),
        kairosbox.agent_boot("unchanged", config(site="b"), reboot=False, then=[LIST_IMAGES]),
        kairosbox.agent_boot("other token", config(NEW_TOKEN, site="b"), reboot=False),
        kairosbox.agent_boot("no registries", config(site="b", registries=False), reboot=False),
        kairosbox.agent_boot("registries again", config(site="b"), reboot=False, then=[reset]),
    ]
    tmp = tmp_path_factory.mktemp("operators")
    return kairosbox.boot(tmp, phases, installed=None, extra_share={"ca.pem": ca_pem.decode()})


def answer(phase: Dict[str, Any]) -> Dict[str, Any]:
    [only] = phase["notify"]["answers"]
    return only["response"]


def events(phase: Dict[str, Any], after: str = "after_boot") -> List[Dict[str, Any]]:
    text = phase[after][f"{STYLUS}/var/log/provider-rke2/events.jsonl"]["content"]
    return [json.loads(line) for line in text.splitlines()]


def rke2_calls(phase: Dict[str, Any]) -> List[str]:
    return [c for c in phase["calls"] if c.startswith("systemctl") and c.split()[1] in ("start", "restart")]


def assert_clean(phase: Dict[str, Any], secrets: List[str]) -> None:
    assert phase["yip"]["status"] == 0, phase["yip"]["stderr"]
    assert kairosbox.leaked(phase, secrets) == []


def test_a_first_server_still_starting_is_never_restarted_the_watcher_applies_the_change(server):
    first, starting = server["first"], server["while starting"]
    assert answer(first)["state"] == "success"
    assert rke2_calls(first) == ["systemctl start --no-block rke2-server.service"]
    assert answer(starting)["state"] == "success"
    assert_clean(starting, [TOKEN, PASSWORD])
    assert rke2_calls(starting) == [], "a restart in the middle of a bootstrap can wedge etcd"
    assert any(c.startswith("systemd-run") and "--after deferred" in c for c in starting["calls"])
    after = starting["after_boot"]
    pending = after[f"{STATE}/restart-pending"]
    assert pending["mode"] == 0o600 and pending["content"] != after[f"{STATE}/started"]["content"]
    assert "site=b" in after[f"{STYLUS}/etc/rancher/rke2/config.yaml"]["content"]
    # RKE2 finishes starting; the watcher (as its transient unit runs it) restarts it once.
    _, watcher, _ = starting["then"]
    assert watcher["status"] == 0, watcher["stdout"] + watcher["stderr"]
    systemctl = [c for c in watcher["calls"] if c.startswith("systemctl")]
    assert systemctl == ["systemctl is-active rke2-server.service", "systemctl restart rke2-server.service"]
    state = watcher["after"]
    assert f"{STATE}/restart-pending" not in state
    assert state[f"{STATE}/started"]["content"] == pending["content"]
    kinds = [e["type"] for e in events(watcher, "after")][-4:]
    assert kinds == ["rke2_restart_deferred", "cluster_ready", "rke2_restarted", "cluster_ready"]


def test_an_unchanged_config_leaves_the_running_server_alone(server):
    unchanged = server["unchanged"]
    assert answer(unchanged)["state"] == "success"
    assert rke2_calls(unchanged) == []
    assert any("--after unchanged" in c for c in unchanged["calls"] if c.startswith("systemd-run"))


def stats(phase: Dict[str, Any]) -> Dict[str, List[str]]:
    listed = phase["then"][-1]["stdout"].split()
    return {listed[i]: listed[i + 1 : i + 4] for i in range(0, len(listed), 4)}


def test_every_image_format_rke2_imports_is_copied_keeping_its_time_and_never_touched_again(server):
    first = stats(server["first"])
    assert sorted(first) == sorted(ARCHIVES)  # not notes.md, not x.tar.xz; nested/images.txt found
    assert all(size_time_inode[1] == "1600000000" for size_time_inode in first.values())
    again = stats(server["unchanged"])
    # The same files (inode), times and sizes: RKE2's .cache.json finds nothing changed.
    assert {name: again[name] for name in ARCHIVES} == first
    assert again[".cache.json"]
    cache = server["unchanged"]["after_boot"][f"{IMAGES}/.cache.json"]["content"]
    assert cache == '{"kept": 1}\n', "RKE2's own cache file is never touched"


def test_another_token_on_a_server_with_cluster_state_is_refused_and_nothing_is_lost(server):
    unchanged, other = server["unchanged"], server["other token"]
    held = other["before"][f"{DATA}/server/token"]["content"]
    assert held.startswith("K10") and held.strip().endswith(f"::server:{TOKEN}")
    refused = answer(other)
    assert refused["state"] == "error"
    assert "cluster.cluster_token: differs from the token of this server's cluster state" in refused["error"]
    assert f"({DATA}/server/token)" in refused["error"] and "rke2 token rotate" in refused["error"]
    assert other["after_boot"][OUTPUT] == unchanged["after_boot"][OUTPUT], "the node keeps what it boots with"
    shown = json.dumps(other["notify"]) + json.dumps(events(other))
    for secret in (TOKEN, NEW_TOKEN, held.strip()):
        assert secret not in shown
    assert events(other)[-1]["type"] == "error" and "differs from the token" in events(other)[-1]["message"]
    assert rke2_calls(other) == [], "RKE2 goes on with the token it holds"


def test_registries_are_written_private_removed_when_no_longer_asked_for_and_by_a_reset(server):
    first = server["first"]["after_boot"]
    written = first[REGISTRIES]
    assert (written["mode"], written["uid"]) == (0o600, 0)
    assert yaml.safe_load(written["content"]) == REGISTRY_SECTION
    assert f"private-registry: {REGISTRIES}\n" in first[f"{STYLUS}/etc/rancher/rke2/config.yaml"]["content"]
    assert_clean(server["first"], [TOKEN, PASSWORD])
    assert PASSWORD not in json.dumps(server["first"]["notify"])
    without = server["no registries"]
    assert REGISTRIES not in without["after_boot"]
    assert (
        "private-registry" not in without["after_boot"][f"{STYLUS}/etc/rancher/rke2/config.yaml"]["content"]
    )
    assert rke2_calls(without) == [
        "systemctl restart --no-block rke2-server.service"
    ]  # RKE2 reads it at start
    again = server["registries again"]
    assert REGISTRIES in again["after_boot"]
    [reset] = again["then"]
    assert [a["response"]["state"] for a in reset["answers"]] == ["success"], reset
    assert REGISTRIES not in reset["after"]


@pytest.fixture(scope="module")
def worker(tmp_path_factory) -> Dict[str, Dict[str, Any]]:
    install = {"event": "init.provider.install", "payload": kairosbox.install_payload(root=STYLUS)}
    joining = {"control_plane_host": "10.30.0.10"}
    phases = [
        kairosbox.agent_boot("first", config(role="worker", **joining), before=[install]),
        kairosbox.agent_boot("other token", config(NEW_TOKEN, role="worker", **joining), reboot=False),
    ]
    return kairosbox.boot(tmp_path_factory.mktemp("worker"), phases, installed=None)


def test_an_agent_handed_another_token_is_told_it_rejoins_with_it(worker):
    assert answer(worker["first"])["state"] == "success"
    other = answer(worker["other token"])
    assert other["state"] == "success"
    assert "cluster.cluster_token: differs from the token rke2-agent last ran with here" in other["log"]
    assert TOKEN not in json.dumps(other) and NEW_TOKEN not in json.dumps(other)
    assert (
        NEW_TOKEN in worker["other token"]["after_boot"][f"{STYLUS}/etc/rancher/rke2/config.yaml"]["content"]
    )
