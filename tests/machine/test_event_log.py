"""The event log: records, the journal copy, concurrency, rotation, who emits what, and what
operators read of it (`events`, `status`)."""

import json
import os
import socket
import subprocess
import sys
import time

from provider_rke2 import __version__
from provider_rke2.cli import run_event
from provider_rke2.core import schema
from provider_rke2.core.errors import OutputError
from provider_rke2.core.root import FROM_FLAG, Root
from provider_rke2.machine import eventlog
from provider_rke2.machine.fsio import append_record
from provider_rke2.machine.node import LocalNode
from provider_rke2.verbs import report

from helpers import ROOT, cloud_config
from nodes import MemoryNode

TOKEN = "event-log-secret-token"


def valid(entry):
    problems = schema.jsonschema_problems(entry, "event.schema.json", "event")
    assert problems == schema.problems(entry, "event.schema.json", "event")
    return problems == []


def test_records_match_their_schema_in_both_checkers():
    for kind in eventlog.TYPES:
        entry = eventlog.record(kind, "m", "worker", "agent.boot")
        assert valid(entry)
        assert entry["time"].endswith("Z") and entry["provider_version"] == __version__
    assert not valid({**eventlog.record("error", "m"), "type": "nonsense"})
    assert not valid({**eventlog.record("error", "m"), "time": "yesterday"})


def test_a_record_is_one_line():
    text = eventlog.line(eventlog.record("error", "two\nlines"))
    assert text.endswith(b"\n") and text.count(b"\n") == 1


def test_the_journal_gets_structured_fields(tmp_path):
    path = str(tmp_path / "journal.socket")
    journal = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    journal.bind(path)
    node = LocalNode(environ={}, journal_socket=path)
    node.emit(str(tmp_path / "events.jsonl"), eventlog.record("cluster_ready", "up\nand running", "init"))
    data = journal.recv(65536)
    journal.close()
    assert b"SYSLOG_IDENTIFIER=provider-rke2\n" in data
    assert b"PROVIDER_RKE2_EVENT=cluster_ready\n" in data
    assert b"PROVIDER_RKE2_ROLE=init\n" in data
    message = b"cluster_ready: up\nand running"
    assert b"MESSAGE\n" + len(message).to_bytes(8, "little") + message + b"\n" in data
    assert (tmp_path / "events.jsonl").read_text().count("\n") == 1


def test_no_journal_socket_is_fine(tmp_path):
    node = LocalNode(environ={}, journal_socket=str(tmp_path / "absent"))
    node.emit(str(tmp_path / "events.jsonl"), eventlog.record("error", "x"))
    assert json.loads((tmp_path / "events.jsonl").read_text())["type"] == "error"


def test_concurrent_writers_never_interleave(tmp_path):
    path = tmp_path / "events.jsonl"
    writer = (
        "import sys\nfrom provider_rke2.machine import eventlog\nfrom provider_rke2.machine.fsio import append_record\n"
        "for i in range(200):\n"
        "    append_record(sys.argv[1], eventlog.line(eventlog.record('config_updated', sys.argv[2] + str(i) * 50)), 1 << 30)\n"
    )
    procs = [
        subprocess.Popen([sys.executable, "-c", writer, str(path), f"w{n}-"], cwd=ROOT) for n in range(6)
    ]
    assert [p.wait(timeout=120) for p in procs] == [0] * 6
    lines = path.read_text().splitlines()
    assert len(lines) == 1200
    assert all(json.loads(line)["type"] == "config_updated" for line in lines)


def test_rotation_bounds_the_log_and_readers_see_both_files(tmp_path):
    path = str(tmp_path / "events.jsonl")
    for index in range(10):
        append_record(path, eventlog.line(eventlog.record("error", f"e{index}")), 400)
    assert os.path.getsize(path) <= 400 and os.path.getsize(path + ".1") <= 400
    messages = [r["message"] for r in eventlog.read_events(path)]
    assert messages == sorted(messages, key=lambda m: int(m[1:])) and messages[-1] == "e9"


# --- who emits what ---------------------------------------------------------------------------------


def boot(node, **cluster):
    return run_event(
        "agent.boot", json.dumps({"data": json.dumps({"config": cloud_config(**cluster)})}), node
    )


def test_identical_boots_report_one_config_update_and_a_change_another():
    node = MemoryNode()
    boot(node, role="init", cluster_token=TOKEN)
    boot(node, role="init", cluster_token=TOKEN)
    assert node.event_types() == ["config_updated"]
    boot(node, role="init", cluster_token=TOKEN, env={"HTTP_PROXY": "http://p:3128"})
    boot(node, role="init", cluster_token=TOKEN + "-rotated")
    assert node.event_types() == ["config_updated"] * 3
    path, entry = node.events[0]
    assert path == "/var/log/provider-rke2/events.jsonl"
    assert (entry["role"], entry["event"]) == ("init", "agent.boot")


def test_the_render_state_holds_no_recoverable_secret():
    node = MemoryNode()
    boot(node, role="init", cluster_token=TOKEN)
    state = node.state["/var/lib/provider-rke2/rendered"]
    assert TOKEN not in state and len(state) == 64  # an HMAC under the node's key


def test_every_failure_is_an_error_event_with_the_response_message():
    node = MemoryNode()
    response = boot(node, role="boss", cluster_token=TOKEN)
    assert node.event_types() == ["error"]
    assert node.events[0][1]["message"] == response.error


def test_a_token_in_an_error_never_reaches_the_event_log():
    node = MemoryNode()
    boot(node, role=TOKEN, cluster_token=TOKEN)
    assert TOKEN not in json.dumps(node.events)


def test_reset_emits_cluster_reset_or_error():
    from provider_rke2.machine import ScriptResult

    event = json.dumps({"data": json.dumps({"config": cloud_config(role="worker")})})
    done = MemoryNode(script=ScriptResult("/s/rke2-uninstall.sh", 0, "ok"))
    run_event("cluster.reset", event, done)
    assert done.event_types() == ["cluster_reset"] and done.events[0][1]["role"] == "worker"
    failed = MemoryNode(script=ScriptResult("/s/rke2-uninstall.sh", 2, "busy"))
    run_event("cluster.reset", event, failed)
    assert failed.event_types() == ["error"]
    assert failed.events[0][1]["message"] == "failed to reset cluster: busy"


def test_an_unwritable_event_log_never_fails_the_boot():
    node = MemoryNode(
        fail_emit=OutputError("cannot append to /var/log/provider-rke2/events.jsonl: Read-only file system")
    )
    response = boot(node, role="init")
    assert response.state == "success"
    assert (
        "warning: event lost: config_updated (cannot append to /var/log/provider-rke2/events.jsonl: Read-only file system)"
        in response.log
    )


def test_the_executable_keeps_the_state_and_the_log_under_the_root(tmp_path):
    root = tmp_path / "root"
    out = tmp_path / "cluster.yaml"
    event = json.dumps(
        {
            "data": json.dumps(
                {"config": cloud_config(role="init", cluster_token=TOKEN, cluster_config_path=str(out))}
            )
        }
    )
    env = {**os.environ, "STYLUS_ROOT": str(root)}
    for _ in range(2):
        subprocess.run(
            [sys.executable, "-m", "provider_rke2", "agent.boot"],
            input=event,
            text=True,
            capture_output=True,
            cwd=ROOT,
            env=env,
            check=True,
        )
    records = [
        json.loads(line) for line in (root / "var/log/provider-rke2/events.jsonl").read_text().splitlines()
    ]
    assert [r["type"] for r in records] == ["config_updated"]
    for name in ("rendered", "fingerprint.key"):
        assert oct((root / "var/lib/provider-rke2" / name).stat().st_mode & 0o777) == "0o600"
    assert TOKEN not in (root / "var/lib/provider-rke2/rendered").read_text()


# --- for operators ------------------------------------------------------------------------------------


def seeded(tmp_path):
    root = tmp_path / "root"
    path = str(root / "var/log/provider-rke2/events.jsonl")
    for at, kind, role in (
        ("2026-11-26T10:00:00Z", "config_updated", "worker"),
        ("2026-11-26T10:01:00Z", "rke2_started", "worker"),
        ("2026-11-26T10:05:00Z", "cluster_ready", "worker"),
    ):
        append_record(
            path, eventlog.line(eventlog.record(kind, f"{kind} happened", role, "x", at=at)), 1 << 20
        )
    return root


def test_events_table_json_and_filters(tmp_path):
    root = seeded(tmp_path)

    def run(*args):
        command = [sys.executable, "-m", "provider_rke2", "events", "--stylus-root", str(root), *args]
        return subprocess.run(command, capture_output=True, text=True, cwd=ROOT)

    table = run().stdout.splitlines()
    assert table[0].startswith("2026-11-26T10:00:00Z  config_updated  worker") and len(table) == 3
    assert [
        json.loads(x)["type"] for x in run("--json", "--since", "2026-11-26T10:01:00Z").stdout.splitlines()
    ] == ["rke2_started", "cluster_ready"]
    assert len(run("--type", "cluster_ready").stdout.splitlines()) == 1


def test_events_follow_prints_new_events_across_rotation(tmp_path):
    root = seeded(tmp_path)
    path = str(root / "var/log/provider-rke2/events.jsonl")
    follower = subprocess.Popen(
        [sys.executable, "-m", "provider_rke2", "events", "--json", "--follow", "--stylus-root", str(root)],
        stdout=subprocess.PIPE,
        text=True,
        cwd=ROOT,
    )
    time.sleep(1.5)
    append_record(path, eventlog.line(eventlog.record("error", "before rotation")), 1 << 20)
    time.sleep(1.2)
    append_record(
        path, eventlog.line(eventlog.record("cluster_reset", "after rotation")), 10
    )  # forces rotation
    time.sleep(1.5)
    follower.send_signal(2)
    out, _ = follower.communicate(timeout=20)
    messages = [json.loads(line)["message"] for line in out.splitlines()]
    assert messages[-2:] == ["before rotation", "after rotation"]
    assert follower.returncode == 0


def test_status_shows_mode_role_units_and_last_events(tmp_path):
    import io

    out = io.StringIO()
    root = seeded(tmp_path)
    report.status(Root(str(root), FROM_FLAG), out, unit_state={"rke2-agent.service": "active"})
    lines = out.getvalue().splitlines()
    assert lines[:5] == [
        "mode: agent",
        f"root: {tmp_path}/root (from --stylus-root)",
        "role: worker",
        f"data dir: {root}/var/lib/rancher/rke2 (the root's default; no boot recorded one)",
        "rke2-agent.service: active",
    ]
    (root / "var/lib/provider-rke2").mkdir(parents=True, exist_ok=True)
    (root / "var/lib/provider-rke2/data-dir").write_text("/var/lib/rancher/rke2\n")
    out = io.StringIO()
    report.status(Root(str(root), FROM_FLAG), out, unit_state={})
    assert "data dir: /var/lib/rancher/rke2 (recorded at the last boot)" in out.getvalue().splitlines()
    assert "  cluster_ready          2026-11-26T10:05:00Z  cluster_ready happened" in lines
    assert "  cluster_reset          never" in lines
    # One column for every type, the longest (rke2_restart_deferred) included.
    assert len({line.index(" never") for line in lines if line.endswith(" never")}) == 1
