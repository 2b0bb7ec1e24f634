"""In-place upgrades on an agent-mode node, end to end in the lifecycle harness
(tests/harness.py): the real provider, the YIP it writes, a stub systemd and a fake RKE2
whose version and health each release sets. One node lives through every scenario in
turn, as a node in the field would: each must leave it on a working RKE2 for the next."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Dict, List

import pytest

from provider_rke2.core.paths import Paths

from harness import NEIGHBOURS, STYLUS, TOKEN, assert_boot_ran, boot, by_name, host_part, lifecycle
from helpers import cloud_config

OLD, NEW, SKIP = "v1.30.5+rke2r1", "v1.31.2+rke2r1", "v1.32.0+rke2r1"


def upgrade(name: str, release: str, stub_dir: Path, *extra: str, **env: str) -> Dict[str, Any]:
    args = [
        "upgrade", "--artifacts", f"{stub_dir.parent}/releases/{release}", "--timeout", "3", "--json",
        "--kubelet-url", f"file://{stub_dir}/healthz", "--supervisor-url", f"file://{stub_dir}/ping", *extra,
    ]  # fmt: skip
    return {"name": name, "command": args, "env": env}


def command(name: str, *args: str) -> Dict[str, Any]:
    return {"name": name, "command": list(args)}


def events_of(phase: Dict[str, Any], paths: Paths) -> List[Dict[str, Any]]:
    text = phase["after"].get(paths.events_log, "")
    return [json.loads(line) for line in text.splitlines() if line.strip()]


def new_events(done: Dict[str, Any], before: str, phase: str, paths: Paths) -> List[Dict[str, Any]]:
    seen = len(events_of(done[before], paths))
    return events_of(done[phase], paths)[seen:]


def version(phase: Dict[str, Any], paths: Paths) -> str:
    text = phase["after"][paths.binary]
    return next(v for v in (OLD, NEW, SKIP, "v1.31.3+rke2r1") if f"rke2 version {v} " in text)


@pytest.fixture(scope="module")
def server_node(tmp_path_factory, ca_pem):
    """An init node on OLD, taken through every upgrade scenario in turn."""
    tmp = tmp_path_factory.mktemp("upgrade")
    stubs = tmp / "stubs"
    root = str(tmp / "root" / STYLUS.lstrip("/"))
    host = {**NEIGHBOURS, "/etc/spectro/environment": f"export STYLUS_ROOT={root}\n"}
    config = cloud_config(role="init", cluster_token=TOKEN)
    phases = [
        boot("first boot", config),
        upgrade("skip", "skip", stubs),
        upgrade("snapshot fails", "new", stubs, FAIL_SNAPSHOT="1"),
        upgrade("killed at stop", "new", stubs, KILL_AT="systemctl stop#1"),
        command("status recovers", "status"),
        upgrade("killed while waiting", "new", stubs, KILL_AT="systemctl start#1"),
        boot("boot recovers", config),
        upgrade("killed at the snapshot", "new", stubs, KILL_AT="rke2 etcd-snapshot#1"),
        upgrade("sick", "sick", stubs),
        upgrade("killed rolling back", "sick", stubs, KILL_AT="systemctl stop#2"),
        upgrade("next upgrade recovers", "skip", stubs),
        upgrade("terminated while waiting", "new", stubs, KILL_AT="systemctl start#1", KILL_SIGNAL="TERM"),
        upgrade("dry run", "new", stubs, "--dry-run"),
        upgrade("healthy", "new", stubs),
        upgrade("again", "new", stubs),
        upgrade("poison", "poison", stubs),
        command("status after", "status", "--json"),
    ]
    releases = {
        "new": (NEW, "ok"),
        "skip": (SKIP, "ok"),
        "sick": (NEW, "sick"),
        "poison": ("v1.31.3+rke2r1", "poison"),
    }
    result = lifecycle(tmp, root, phases, host, installed=OLD, releases=releases, ca=ca_pem)
    return by_name(result), Paths(root), tmp


def test_the_node_runs_the_old_release_first(server_node):
    done, paths, _ = server_node
    assert_boot_ran(done["first boot"])
    assert version(done["first boot"], paths) == OLD
    assert done["first boot"]["units"] == {"rke2-server.service": "active", "healthz": "ok"}


def assert_running(phase: Dict[str, Any], paths: Paths, release: str) -> None:
    """`release` installed, its unit active and answering the readiness checks."""
    assert version(phase, paths) == release
    assert phase["units"] == {"rke2-server.service": "active", "healthz": "ok"}


def outcome(phase: Dict[str, Any]) -> Dict[str, Any]:
    return json.loads(phase["response"]["stdout"])


def called(phase: Dict[str, Any], prefix: str) -> List[str]:
    return [call for call in phase["calls"] if call.startswith(prefix)]


def test_a_working_binary_is_in_place_after_every_step(server_node):
    done, paths, _ = server_node
    for name, phase in done.items():
        if name != "install":
            assert version(phase, paths), name  # whole, and one of the releases
            assert phase["after"][paths.binary].startswith("#!/bin/sh"), name


def test_what_kubernetes_does_not_support_is_refused_before_anything_changes(server_node):
    done, paths, _ = server_node
    skip = done["skip"]
    assert skip["response"]["status"] == 1
    assert outcome(skip)["outcome"] == "refused"
    assert "skips v1.31: Kubernetes upgrades one minor version at a time" in outcome(skip)["message"]
    assert called(skip, "systemctl stop") == called(skip, "rke2 etcd-snapshot") == []
    assert version(skip, paths) == OLD
    [event] = new_events(done, "first boot", "skip", paths)
    assert event["type"] == "error" and event["upgrade"]["outcome"] == "refused"


def test_a_failed_snapshot_stops_the_upgrade_before_any_change(server_node):
    done, paths, _ = server_node
    phase = done["snapshot fails"]
    assert phase["response"]["status"] == 1
    assert "the etcd snapshot provider-rke2-pre-v1-31-2-rke2r1 failed" in outcome(phase)["message"]
    assert "context deadline exceeded" in outcome(phase)["message"]
    # the upgrade reads no cloud-config: the node's own secrets are scrubbed from RKE2's words
    assert "token: <redacted>" in outcome(phase)["message"]
    assert TOKEN not in phase["response"]["stdout"] + phase["response"]["stderr"]
    assert TOKEN not in phase["after"][paths.events_log]
    assert called(phase, "rke2 etcd-snapshot") == [
        f"rke2 etcd-snapshot save --config {paths.config_file} --data-dir {paths.data_dir}"
        " --name provider-rke2-pre-v1-31-2-rke2r1"
    ]
    assert called(phase, "systemctl stop") == []
    assert version(phase, paths) == OLD and phase["units"]["rke2-server.service"] == "active"
    assert not [p for p in phase["after"] if p.startswith(paths.upgrade_dir)], "the staged release is gone"


def test_killed_at_the_stop_then_status_rolls_back(server_node):
    done, paths, _ = server_node
    killed, status = done["killed at stop"], done["status recovers"]
    assert killed["response"]["status"] == -9
    assert json.loads(killed["after"][paths.upgrade_journal])["phase"] == "swapping"
    assert status["response"]["status"] == 0
    assert "rolled back by status" in status["response"]["stderr"]
    assert_running(status, paths, OLD)
    assert paths.upgrade_journal not in status["after"]
    assert not [p for p in status["after"] if p.startswith(paths.upgrade_dir)]
    [event] = new_events(done, "killed at stop", "status recovers", paths)
    assert event["type"] == "rke2_rolled_back" and event["event"] == "status"
    assert event["upgrade"]["why"] == "interrupted while swapping; rolled back by status"
    assert "last upgrade: rolled_back" in status["response"]["stdout"]


def test_killed_while_waiting_then_the_boot_rolls_back_before_it_renders(server_node):
    done, paths, _ = server_node
    killed, booted = done["killed while waiting"], done["boot recovers"]
    assert version(killed, paths) == NEW, "killed with the new release running"
    assert json.loads(killed["after"][paths.upgrade_journal])["phase"] == "waiting for readiness"
    assert_boot_ran(booted)
    assert "rolled back by agent.boot" in booted["response"]["log"]
    assert version(booted, paths) == OLD
    # Stopped by the rollback (it ran the new files), started again by the boot stage.
    assert called(booted, "systemctl stop rke2-server") == ["systemctl stop rke2-server.service"]
    assert "systemctl start --no-block rke2-server.service" in booted["calls"]
    assert booted["units"] == {"rke2-server.service": "active", "healthz": "ok"}
    kinds = [
        (e["type"], e.get("event")) for e in new_events(done, "killed while waiting", "boot recovers", paths)
    ]
    assert kinds[0] == ("rke2_rolled_back", "agent.boot")
    event = new_events(done, "killed while waiting", "boot recovers", paths)[0]
    assert event["upgrade"]["why"] == "interrupted while waiting for readiness; rolled back by agent.boot"


def test_killed_at_the_snapshot_nothing_changed(server_node):
    done, paths, _ = server_node
    phase = done["killed at the snapshot"]
    assert phase["response"]["status"] == -9
    assert paths.upgrade_journal not in phase["after"], "nothing to roll back"
    assert version(phase, paths) == OLD and phase["units"]["rke2-server.service"] == "active"


def test_an_unhealthy_release_is_rolled_back(server_node):
    done, paths, _ = server_node
    phase = done["sick"]
    assert phase["response"]["status"] == 1
    assert outcome(phase)["outcome"] == "rolled_back"
    assert_running(phase, paths, OLD)
    assert [c.split()[1] for c in phase["calls"] if c.startswith("systemctl") and "rke2-server" in c][-4:] == [
        "stop", "start", "stop", "start",
    ]  # fmt: skip
    [event] = new_events(done, "killed at the snapshot", "sick", paths)
    assert event["type"] == "rke2_rolled_back"
    assert event["upgrade"]["from"] == OLD and event["upgrade"]["to"] == NEW
    assert event["upgrade"]["why"] == f"{NEW} was not ready after 3 s"
    assert "healthz: 'sick'" in event["upgrade"]["probe"]
    assert event["upgrade"]["snapshot"] == "provider-rke2-pre-v1-31-2-rke2r1"


def test_killed_rolling_back_then_the_next_upgrade_finishes_it_first(server_node):
    done, paths, _ = server_node
    killed, after = done["killed rolling back"], done["next upgrade recovers"]
    assert json.loads(killed["after"][paths.upgrade_journal])["phase"] == "rolling back"
    result = outcome(after)
    assert result["notes"] == [
        f"RKE2 {NEW} was interrupted while rolling back; rolled back by upgrade; {OLD} is back"
    ]
    assert result["outcome"] == "refused", "then the upgrade asked for (a skipped minor) is judged"
    assert_running(after, paths, OLD)


def test_sigterm_while_waiting_puts_the_previous_release_back(server_node):
    done, paths, _ = server_node
    phase = done["terminated while waiting"]
    assert phase["response"]["status"] == 1
    assert outcome(phase)["outcome"] == "rolled_back"
    assert "terminated by SIGTERM before the upgrade finished" in outcome(phase)["message"]
    assert_running(phase, paths, OLD)
    assert paths.upgrade_journal not in phase["after"]


def test_a_dry_run_prints_the_plan_and_changes_nothing(server_node):
    done, paths, _ = server_node
    phase = done["dry run"]
    assert phase["response"]["status"] == 0
    result = outcome(phase)
    plan = result["plan"]
    assert result["outcome"] == "planned"
    assert (plan["current"], plan["new"], plan["step"]) == (OLD, NEW, "a minor upgrade")
    assert (plan["role"], plan["unit"]) == ("init", "rke2-server.service")
    assert paths.binary in plan["files"]
    assert plan["snapshot"][:3] == [paths.binary, "etcd-snapshot", "save"]
    assert called(phase, "systemctl stop") == called(phase, "rke2 etcd-snapshot") == []
    unchanged = {p: v for p, v in phase["after"].items() if p != paths.lock_file}
    before = {p: v for p, v in done["terminated while waiting"]["after"].items() if p != paths.lock_file}
    assert unchanged == before


def test_a_healthy_upgrade(server_node):
    done, paths, _ = server_node
    phase = done["healthy"]
    assert phase["response"]["status"] == 0, phase["response"]
    assert outcome(phase)["outcome"] == "upgraded"
    assert_running(phase, paths, NEW)
    assert not [p for p in phase["after"] if p.startswith(paths.upgrade_dir)], "the rollback set is removed"
    order = [
        c.split()[1]
        for c in phase["calls"]
        if c.startswith(("rke2 etcd", "systemctl stop", "systemctl start"))
    ]
    assert order == ["etcd-snapshot", "stop", "start"]
    [event] = new_events(done, "dry run", "healthy", paths)
    assert event["type"] == "rke2_upgraded" and event["role"] == "init" and event["event"] == "upgrade"
    assert {k: event["upgrade"][k] for k in ("outcome", "from", "to", "snapshot")} == {
        "outcome": "upgraded", "from": OLD, "to": NEW, "snapshot": "provider-rke2-pre-v1-31-2-rke2r1",
    }  # fmt: skip
    assert event["upgrade"]["took_seconds"] >= 0
    again = done["again"]
    assert again["response"]["status"] == 0 and outcome(again)["outcome"] == "unchanged"
    assert called(again, "systemctl stop") == []


def test_a_rollback_that_is_not_ready_either_exits_3_and_says_where_things_are(server_node):
    done, paths, _ = server_node
    phase = done["poison"]
    assert phase["response"]["status"] == 3
    result = outcome(phase)
    assert result["outcome"] == "failed"
    assert f"{NEW}, put back at {paths.binary}, is not ready either" in result["message"]
    assert "journalctl -u rke2-server.service" in result["message"]
    assert (
        "provider-rke2-pre-v1-31-3-rke2r1 is in " + paths.data_dir + "/server/db/snapshots"
        in result["message"]
    )
    assert version(phase, paths) == NEW, "the previous release is back, even if not ready"
    [event] = new_events(done, "again", "poison", paths)
    assert event["type"] == "error" and event["upgrade"]["outcome"] == "failed"
    status = json.loads(done["status after"]["response"]["stdout"])
    assert status["last_upgrade"]["outcome"] == "failed"
    assert status["last_events"]["rke2_upgraded"]["upgrade"]["to"] == NEW


def test_every_event_an_upgrade_wrote_is_valid(server_node):
    import jsonschema

    done, paths, _ = server_node
    schema = json.loads(
        (Path(__file__).resolve().parents[2] / "provider_rke2" / "core" / "event.schema.json").read_text()
    )
    events = events_of(done["status after"], paths)
    assert {e["type"] for e in events} >= {"rke2_upgraded", "rke2_rolled_back", "error"}
    for event in events:
        jsonschema.validate(event, schema)


def test_a_worker_is_upgraded_without_a_snapshot_and_its_role_from_the_last_boot(tmp_path):
    stubs = tmp_path / "stubs"
    root = str(tmp_path / "root" / STYLUS.lstrip("/"))
    host = {"/etc/spectro/environment": f"export STYLUS_ROOT={root}\n"}
    config = cloud_config(role="worker", cluster_token=TOKEN, control_plane_host="10.0.0.1")
    phases = [boot("first boot", config), upgrade("healthy", "new", stubs)]
    done = by_name(lifecycle(tmp_path, root, phases, host, installed=OLD, releases={"new": (NEW, "ok")}))
    paths = Paths(root)
    phase = done["healthy"]
    assert phase["response"]["status"] == 0, phase["response"]
    plan = outcome(phase)["plan"]
    assert (plan["role"], plan["role_from"], plan["unit"]) == (
        "worker", f"the last boot, {paths.role_state}", "rke2-agent.service",
    )  # fmt: skip
    assert [c["url"] if isinstance(c, dict) else c[0] for c in plan["checks"]] == [f"file://{stubs}/healthz"]
    assert called(phase, "rke2 etcd-snapshot") == []
    assert called(phase, "systemctl st") == [
        "systemctl stop rke2-agent.service",
        "systemctl start rke2-agent.service",
    ]
    assert version(phase, paths) == NEW
    assert phase["units"] == {"rke2-agent.service": "active", "healthz": "ok"}


def test_upgrades_change_nothing_outside_the_root(server_node):
    done, paths, tmp = server_node
    first, last = done["first boot"]["after"], done["status after"]["after"]
    assert host_part(last, tmp) == host_part(first, tmp)
    # Under the root: the release's files, the provider's state, logs and the data dir only.
    changed = {p for p in set(first) | set(last) if p.startswith(paths.root) and first.get(p) != last.get(p)}
    allowed = (paths.install_prefix + "/", paths.state_dir + "/", paths.provider_log_dir + "/")
    assert [p for p in changed if not p.startswith(allowed)] == []


def test_an_upgrade_record_carries_only_what_it_knows(server_node):
    done, paths, _ = server_node
    [event] = new_events(done, "next upgrade recovers", "terminated while waiting", paths)
    assert "probe" not in event["upgrade"], "no probe answered before SIGTERM"
    assert event["upgrade"]["why"] == "terminated by SIGTERM before the upgrade finished"
