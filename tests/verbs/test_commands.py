"""The operator's commands as a user meets them: events, status, paths, mode, wait-ready,
and what the provider says at a terminal; one table of exit statuses for every verb."""

import json
import os
import pty
import select
import subprocess
import sys
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest

from provider_rke2.core.paths import Paths
from provider_rke2.core.timespec import duration, instant

import sandbox
from helpers import ROOT


def run(*args, stdin="", env=None):
    return subprocess.run(
        [sys.executable, "-m", "provider_rke2", *args],
        input=stdin, capture_output=True, text=True, cwd=ROOT, env={**os.environ, **(env or {})}, timeout=60,
    )  # fmt: skip


def seeded(tmp_path):
    root = tmp_path / "root"
    log = Path(Paths(str(root)).events_log)
    log.parent.mkdir(parents=True, mode=0o700)
    records = [
        {
            "type": "config_updated",
            "message": "first",
            "time": "2026-11-26T14:00:00Z",
            "provider_version": "x",
        },
        {"type": "error", "message": "second", "time": "2026-11-26T15:30:00Z", "provider_version": "x"},
    ]
    log.write_text("".join(json.dumps(r) + "\n" for r in records))
    return root


# --- events --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("since", "shown"),
    [
        ("2026-11-26T15:00:00Z", ["second"]),
        ("2026-11-26T16:00:00+01:00", ["second"]),  # 15:00 UTC: the offset is honoured
        ("2026-11-26T14:00:00+01:00", ["first", "second"]),  # 13:00 UTC
        ("2026-11-26T17:00:00+01:00", []),
    ],
)
def test_events_since_compares_instants_not_text(tmp_path, since, shown):
    result = run("events", "--json", "--since", since, "--stylus-root", str(seeded(tmp_path)))
    assert result.returncode == 0
    assert [json.loads(line)["message"] for line in result.stdout.splitlines()] == shown


def test_a_relative_since_counts_back_from_now(tmp_path):
    root = seeded(tmp_path)
    log = Path(Paths(str(root)).events_log)
    recent = (datetime.now(timezone.utc) - timedelta(minutes=5)).strftime("%Y-%m-%dT%H:%M:%SZ")
    with log.open("a") as handle:
        handle.write(
            json.dumps({"type": "error", "message": "recent", "time": recent, "provider_version": "x"}) + "\n"
        )
    result = run("events", "--json", "--since", "30m", "--stylus-root", str(root))
    assert [json.loads(line)["message"] for line in result.stdout.splitlines()] == ["recent"]


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (["--type", "erorr"], "invalid choice: 'erorr' (choose from 'config_updated'"),
        (["--since", "yesterday"], "expected an RFC 3339 time with its offset"),
        (["--since", "2026-13-40T00:00:00Z"], "expected an RFC 3339 time"),
    ],
)
def test_unknown_types_and_times_are_usage_errors_that_list_what_is_valid(tmp_path, args, expected):
    result = run("events", *args, "--stylus-root", str(tmp_path))
    assert (result.returncode, result.stdout) == (2, "")
    assert expected in result.stderr


def test_an_empty_log_says_so(tmp_path):
    result = run("events", "--stylus-root", str(tmp_path))
    assert (result.returncode, result.stdout) == (0, "")
    assert result.stderr.startswith("events: no events recorded in ")


def test_durations_and_instants():
    assert [duration(t) for t in ("90", "90s", "15m", "2h", "1d", "1.5m")] == [90, 90, 900, 7200, 86400, 90]
    for bad in ("nan", "inf", "-1", "1w", "", "5 m"):
        with pytest.raises(ValueError):
            duration(bad)
    now = datetime(2026, 11, 26, 12, 0, tzinfo=timezone.utc)
    assert instant("2h", now) == datetime(2026, 11, 26, 10, 0, tzinfo=timezone.utc)
    assert instant("2026-11-26T13:00:00+01:00", now) == now


# --- status, paths, mode as JSON -----------------------------------------------------------------


def test_status_json(tmp_path):
    root = seeded(tmp_path)
    report = json.loads(run("status", "--json", "--stylus-root", str(root)).stdout)
    assert report["mode"] == "agent" and report["root"] == {"path": str(root), "source": "--stylus-root"}
    assert report["data_dir"] == {"path": f"{root}/var/lib/rancher/rke2", "recorded": False}
    assert report["last_events"]["error"]["message"] == "second"
    assert report["last_events"]["cluster_ready"] is None
    assert set(report) == {"mode", "root", "role", "data_dir", "units", "last_events", "last_upgrade"}


def test_paths_json_is_the_table():
    report = json.loads(run("paths", "--json", "--stylus-root", "/persistent/spectro").stdout)
    assert report["paths"]["binary"] == "/persistent/spectro/usr/local/bin/rke2"
    assert report["paths"]["final config"] == Paths("/persistent/spectro").config_file
    assert report["mode"] == "agent"


def test_mode_json_carries_the_evidence():
    report = json.loads(run("mode", "--json", "--stylus-root", "/persistent/spectro").stdout)
    assert set(report["evidence"]) == {
        "cmdline_cos_img", "stylus_environment", "units_from", "agent_units", "appliance_units",
    }  # fmt: skip
    assert report["mode"] == "agent" and isinstance(report["warnings"], list)


# --- wait-ready ----------------------------------------------------------------------------


def test_wait_ready_is_in_the_help_and_takes_units():
    assert "wait-ready" in run("--help").stdout
    assert "90s, 15m" in " ".join(run("wait-ready", "--help").stdout.split())


def test_wait_ready_says_why_it_timed_out(tmp_path):
    result = run(
        "wait-ready", "--role", "worker", "--timeout", "1s", "--kubelet-url", "http://127.0.0.1:9/healthz",
        "--stylus-root", str(tmp_path / "root"),
    )  # fmt: skip
    assert result.returncode == 1
    assert result.stdout.startswith("not ready: RKE2 was not ready after 1 s: http://127.0.0.1:9/healthz:")


# --- one table of exit statuses ----------------------------------------------------------------


@pytest.mark.parametrize("verb", ["render", "validate", "paths", "mode", "events", "status"])
def test_a_bad_stylus_root_is_a_usage_error_for_every_verb(verb):
    args = [verb, "-"] if verb in ("render", "validate") else [verb]
    result = run(*args, "--stylus-root", "relative/root", stdin="#cloud-config\n")
    assert result.returncode == 2 and "usage:" in result.stderr


def test_the_reference_has_one_table_of_exit_statuses():
    reference = (ROOT / "docs" / "reference.md").read_text()
    section = reference[reference.index("### Exit statuses") :]
    table = next(block for block in section.split("\n\n") if block.startswith("| verb | 0 | 1 | 2 |"))
    for verb in ("EVENT", "render", "validate", "events", "status", "paths", "mode", "wait-ready"):
        assert f"`{verb}" in table, verb


# --- at a terminal -------------------------------------------------------------------------


def at_a_terminal(*args):
    """Run with stdin a terminal; what it says on stderr before reading, then end the input."""
    main, secondary = pty.openpty()
    process = subprocess.Popen(
        [sys.executable, "-m", "provider_rke2", *args], stdin=secondary, stdout=subprocess.PIPE,
        stderr=subprocess.PIPE, cwd=ROOT, env={**os.environ},
    )  # fmt: skip
    os.close(secondary)
    said = b""
    deadline = time.monotonic() + 20
    while b"\n" not in said and time.monotonic() < deadline:
        ready, _, _ = select.select([process.stderr], [], [], 0.5)
        if ready:
            said += os.read(process.stderr.fileno(), 4096)
    os.write(main, b"\x04")  # Ctrl-D
    process.communicate(timeout=20)
    os.close(main)
    return said.decode()


def test_render_at_a_terminal_says_it_reads_stdin():
    assert "reading the cloud-config from stdin (end it with Ctrl-D), or give a FILE" in at_a_terminal(
        "render"
    )


def test_an_event_at_a_terminal_says_what_it_awaits():
    assert "agent-provider-rke2 agent.boot: reading one JSON event from stdin" in at_a_terminal("agent.boot")


# --- the suite does not depend on the machine ----------------------------------------------------


def test_the_suite_passes_whatever_the_machine_holds(tmp_path):
    """The tests that render, boot and report, run as `make test` runs them (tests/isolated.sh)
    where the machine's own /var/lib, /var/log and /etc/spectro hold a foreign node's key,
    events and STYLUS_ROOT."""
    foreign = "/var/lib/foreign-node"
    planted = {
        "/var/lib/provider-rke2/fingerprint.key": "a-foreign-key\n",
        "/var/lib/provider-rke2/data-dir": "/var/lib/elsewhere\n",
        "/var/log/provider-rke2/events.jsonl": '{"type":"error","message":"foreign"}\n{"torn',
        "/var/log/provider-rke2/provider-rke2.log": "foreign\n",
        "/etc/spectro/environment": f"export STYLUS_ROOT={foreign}\n",
        f"{foreign}/var/lib/provider-rke2/fingerprint.key": "another-foreign-key\n",
        f"{foreign}/etc/rancher/rke2/config.d/50-foreign.yaml": "node-label: [foreign=1]\n",
    }
    (tmp_path / "tmp").mkdir()
    command = [
        sys.executable, "-m", "pytest", "-q", "-p", "no:randomly", "-p", "no:cacheprovider",
        f"--basetemp={tmp_path / 'basetemp'}", "-k", "golden or render or boot or example or status",
        "tests/agent/test_cli.py", "tests/core/test_render.py", "tests/machine/test_event_log.py",
    ]  # fmt: skip
    sandbox.run(
        tmp_path,
        ["sh", "-c", f'cd {ROOT} && exec tests/isolated.sh "$@"', "sh", *command],
        host_files=planted,
        host_links={},
        env={"HYPOTHESIS_STORAGE_DIRECTORY": str(tmp_path / "hypothesis"), "TMPDIR": str(tmp_path / "tmp")},
    )
    output = (tmp_path / "output.txt").read_text()
    assert (tmp_path / "status.txt").read_text().strip() == "0", output[-3000:]
    assert " passed" in output and "failed" not in output


# --- paths --env -------------------------------------------------------------------------


def test_paths_env_is_what_the_last_boot_laid_else_made_from_the_recorded_data_dir(tmp_path):
    root = tmp_path / "root"
    paths = Paths(str(root))
    os.makedirs(paths.state_dir)
    Path(paths.data_dir_state).write_text("/var/lib/rancher/rke2\n")
    made = run("paths", "--env", "--stylus-root", str(root)).stdout
    assert made == paths.reset_plan("/var/lib/rancher/rke2", paths.kubelet_dir).env_file()
    os.makedirs(paths.scripts_dir)
    laid = paths.reset_plan("/data/rke2", "/data/kubelet").env_file()
    Path(paths.scripts_env).write_text(laid)
    assert run("paths", "--env", "--stylus-root", str(root)).stdout == laid


def test_render_json_is_one_object_a_fleet_tool_can_read(tmp_path):
    import json
    import subprocess
    import sys

    from helpers import ROOT

    def render(*args):
        return subprocess.run(
            [sys.executable, "-m", "provider_rke2", "render", "--json", "--fresh", *args],
            capture_output=True, text=True, cwd=ROOT, timeout=60,
            env={"PATH": "/usr/bin:/bin", "STYLUS_ROOT": str(tmp_path / "root")},
        )  # fmt: skip

    done = render(str(ROOT / "examples" / "private-registry.yaml"))
    assert done.returncode == 0 and done.stderr == ""
    report = json.loads(done.stdout)
    assert report["path"] == "/usr/local/cloud-config/cluster.kairos.yaml" and report["mode"] == "0600"
    assert report["root"]["path"] == str(tmp_path / "root")
    assert "registries.yaml" in report["document"] and report["warnings"] == []
    headless = tmp_path / "headless.yaml"
    headless.write_text("cluster:\n  role: init\n")
    assert json.loads(render(str(headless)).stdout)["warnings"][0]["path"] == "file"
    broken = tmp_path / "broken.yaml"
    broken.write_text("#cloud-config\ncluster:\n  role: worker\n  control_plane_hots: cp\n")
    done = render(str(broken))
    assert done.returncode == 1
    report = json.loads(done.stdout)
    assert report["valid"] is False and report["errors"][0]["path"] == "cluster.control_plane_host"
    assert "did you mean 'control_plane_host'?" in report["warnings"][0]["message"]


def test_validate_takes_json_like_every_other_verb(tmp_path):
    import json
    import subprocess
    import sys

    from helpers import ROOT

    done = subprocess.run(
        [sys.executable, "-m", "provider_rke2", "validate", "--json", str(ROOT / "examples" / "ha-worker.yaml")],
        capture_output=True, text=True, cwd=ROOT, timeout=60, env={"PATH": "/usr/bin:/bin", "STYLUS_ROOT": str(tmp_path)},
    )  # fmt: skip
    assert done.returncode == 0 and json.loads(done.stdout)["valid"] is True


def test_every_verb_and_option_says_what_it_is_for_and_the_help_names_the_agent_events():
    import argparse

    from provider_rke2.names import COMMANDS, HANDLED
    from provider_rke2.verbs.commands import build_parser

    parser = build_parser()
    [verbs] = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
    assert sorted(verbs.choices) == sorted(COMMANDS)
    assert sorted(a.dest for a in verbs._choices_actions) == sorted(COMMANDS), (
        "every verb listed, no-proxy too"
    )
    silent = [
        (name, action.option_strings or action.dest)
        for name, sub in verbs.choices.items()
        for action in sub._actions
        if not action.help
    ]
    assert silent == []
    text = parser.format_help()
    assert all(event in text for event in HANDLED)
