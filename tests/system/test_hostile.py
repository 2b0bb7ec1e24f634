"""The adversarial suite: a hostile or broken node, against the provider that runs as root at
every boot. One class per kind of attack; every case here once got through (an adversarial
review of commit 2bf8de1), and must never again.

Everything really runs: the provider as the agent runs it (`python -m provider_rke2 EVENT`,
or its functions on a real temporary filesystem), the scripts with dash.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import stat
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from provider_rke2.core import root as roots
from provider_rke2.core.errors import ConfigError, OutputError
from provider_rke2.core.paths import Paths
from provider_rke2.core.render import render
from provider_rke2.core.rke2config import DropIn, with_drop_ins
from provider_rke2.core.root import FROM_ENVIRON, Root
from provider_rke2.machine import fsio
from provider_rke2.machine.node import LocalNode

from helpers import ROOT, cloud_config

TOKEN = "hostile-suite-token-0123"


def provider(event, payload, root, *, stdin=None, timeout=60, **popen):
    """The provider as the agent runs it; its answer, exit status and stderr."""
    message = stdin if stdin is not None else json.dumps({"name": event, "data": json.dumps(payload)})
    result = subprocess.run(
        [sys.executable, "-m", "provider_rke2", event],
        input=message.encode() if isinstance(message, str) else message,
        capture_output=True,
        cwd=ROOT,
        env={**os.environ, "STYLUS_ROOT": str(root)},
        timeout=timeout,
        **popen,
    )
    answer = json.loads(result.stdout) if result.stdout.strip() else None
    return answer, result.returncode, result.stderr.decode()


def boot_payload(tmp_path, **cluster):
    cluster.setdefault("role", "init")
    cluster.setdefault("cluster_token", TOKEN)
    cluster.setdefault("cluster_config_path", str(tmp_path / "out" / "cluster.yaml"))
    return {"config": cloud_config(**cluster)}


def planted_target(tmp_path):
    target = tmp_path / "precious"
    target.write_text("untouched\n")
    return target


class TestNoWriteThroughALink:
    @pytest.mark.parametrize("name", ["events_log", "provider_log"])
    def test_a_log_planted_as_a_link_is_never_written_through(self, tmp_path, name):
        root = tmp_path / "root"
        target = planted_target(tmp_path)
        log = Path(getattr(Paths(str(root)), name))
        log.parent.mkdir(parents=True, mode=0o700)
        log.symlink_to(target)
        answer, code, _ = provider("agent.boot", boot_payload(tmp_path), root)
        assert (answer["state"], code) == ("success", 0)
        assert target.read_text() == "untouched\n"
        assert "not written through" in answer["log"] or "not written" in answer["log"]

    @pytest.mark.parametrize("name", ["fingerprint_key", "rendered_state", "data_dir_state"])
    def test_a_state_file_planted_as_a_link_is_neither_read_nor_written_through(self, tmp_path, name):
        root = tmp_path / "root"
        target = planted_target(tmp_path)
        state = Path(getattr(Paths(str(root)), name))
        state.parent.mkdir(parents=True, mode=0o700)
        state.symlink_to(target)
        answer, _, _ = provider("agent.boot", boot_payload(tmp_path), root)
        assert answer["state"] == "success"
        assert target.read_text() == "untouched\n"
        assert state.is_symlink(), "left as it was: not a regular file of ours"
        assert "not kept" in answer["log"], "neither read through the link (a key from /etc/shadow) nor kept"

    def test_rotation_creates_nothing_through_a_link(self, tmp_path):
        log = tmp_path / "logs" / "events.jsonl"
        log.parent.mkdir(mode=0o700)
        lock_target = tmp_path / "created-through-a-link"
        (log.parent / "events.jsonl.lock").symlink_to(lock_target)  # the old rotation lock's name
        target = planted_target(tmp_path)
        (log.parent / "events.jsonl.1").symlink_to(target)
        for index in range(4):
            fsio.append_record(str(log), f"record-{index}\n".encode(), 20)
        assert not lock_target.exists()
        assert target.read_text() == "untouched\n"
        assert not (log.parent / "events.jsonl.1").is_symlink()

    def test_the_start_steps_stamp_is_never_written_through_a_link(self, tmp_path, stub_bin):
        from provider_rke2.core import steps

        paths = Paths(str(tmp_path / "root"))
        os.makedirs(paths.state_dir, mode=0o700)
        target = planted_target(tmp_path)
        os.symlink(target, paths.started_stamp + ".tmp")  # where the old step wrote with `>`
        os.symlink(target, paths.started_stamp)
        stub_bin("systemctl", '[ "$1" = is-active ] && echo inactive; exit 0')
        stub_bin("systemd-run", "exit 0")
        step = steps.start_service(
            "rke2-server.service", paths, "f" * 64, "/x/agent-provider-rke2 wait-ready"
        )
        result = subprocess.run(["dash", "-c", step.commands[-1]], env={**os.environ, "PATH": stub_bin.path})
        assert result.returncode == 0
        assert target.read_text() == "untouched\n"
        assert Path(paths.started_stamp).read_text() == "f" * 64 + "\n", "the link itself was replaced"
        assert stat.S_IMODE(os.stat(paths.started_stamp).st_mode) == 0o600
        assert [p for p in os.listdir(paths.state_dir) if p.startswith(".started")] == []
        assert os.path.islink(paths.started_stamp + ".tmp"), "a planted name is not used"

    def test_the_start_steps_stamp_never_lands_in_a_planted_directory(self, tmp_path, stub_bin):
        from provider_rke2.core import steps

        paths = Paths(str(tmp_path / "root"))
        os.makedirs(paths.started_stamp)
        stub_bin("systemctl", '[ "$1" = is-active ] && echo inactive; exit 0')
        stub_bin("systemd-run", "exit 0")
        step = steps.start_service("rke2-server.service", paths, "f" * 64, "/x/w")
        subprocess.run(
            ["dash", "-c", step.commands[-1]], env={**os.environ, "PATH": stub_bin.path}, check=True
        )
        assert os.listdir(paths.started_stamp) == []

    def test_the_providers_directories_are_private(self, tmp_path):
        root = tmp_path / "root"
        answer, _, _ = provider("agent.boot", boot_payload(tmp_path), root)
        assert answer["state"] == "success"
        paths = Paths(str(root))
        for directory in (paths.state_dir, paths.provider_log_dir):
            assert stat.S_IMODE(os.stat(directory).st_mode) == 0o700, directory

    def test_a_directory_others_can_write_is_not_written_in(self, tmp_path):
        root = tmp_path / "root"
        logs = Path(Paths(str(root)).provider_log_dir)
        logs.mkdir(parents=True)
        logs.chmod(0o777)
        answer, _, _ = provider("agent.boot", boot_payload(tmp_path), root)
        assert answer["state"] == "success"
        assert os.listdir(logs) == []
        assert "warning: event lost: config_updated" in answer["log"]
        assert "is writable by other users" in answer["log"]


class TestTheOutputFile:
    def test_a_parent_that_is_another_users_link_in_a_shared_directory_is_refused(self, tmp_path):
        shared = tmp_path / "shared"
        shared.mkdir()
        shared.chmod(0o1777)
        elsewhere = tmp_path / "elsewhere"
        elsewhere.mkdir()
        link = shared / "cfg"
        link.symlink_to(elsewhere)
        os.lchown(link, 1000, 1000)
        with pytest.raises(OutputError, match="is a link owned by uid 1000"):
            fsio.replace_file(str(link / "cluster.yaml"), b"secret", 0o600)
        assert os.listdir(elsewhere) == []

    def test_a_parent_others_can_write_is_refused(self, tmp_path):
        open_dir = tmp_path / "open"
        open_dir.mkdir()
        open_dir.chmod(0o777)
        with pytest.raises(OutputError, match="is writable by other users"):
            fsio.replace_file(str(open_dir / "cluster.yaml"), b"secret", 0o600)
        assert os.listdir(open_dir) == []

    def test_a_parent_owned_by_another_user_is_refused(self, tmp_path):
        theirs = tmp_path / "theirs"
        theirs.mkdir()
        os.chown(theirs, 1000, 1000)
        with pytest.raises(OutputError, match="belongs to uid 1000"):
            fsio.replace_file(str(theirs / "cluster.yaml"), b"secret", 0o600)

    @pytest.mark.parametrize("kind", ["fifo", "directory", "link", "device"])
    def test_anything_but_a_regular_file_at_the_output_is_never_replaced(self, tmp_path, kind):
        out = tmp_path / "cluster.yaml"
        if kind == "fifo":
            os.mkfifo(out)
        elif kind == "directory":
            out.mkdir()
        elif kind == "link":
            out.symlink_to(planted_target(tmp_path))
        else:
            try:
                os.mknod(out, 0o600 | stat.S_IFCHR, os.makedev(1, 3))
            except PermissionError:
                os.mkfifo(out)  # no CAP_MKNOD here: a FIFO stands in for the device
        before = os.lstat(out)
        with pytest.raises(OutputError, match="is not a regular file; not replaced"):
            fsio.replace_file(str(out), b"secret", 0o600)
        after = os.lstat(out)
        assert (before.st_ino, stat.S_IFMT(before.st_mode)) == (after.st_ino, stat.S_IFMT(after.st_mode))


class TestNoBlockingOnAFifo:
    def test_a_fifo_as_the_payload_file_is_refused_at_once(self, tmp_path):
        fifo = tmp_path / "payload.json"
        os.mkfifo(fifo)
        start = time.monotonic()
        answer, _, _ = provider("agent.boot", None, tmp_path / "root", stdin=json.dumps({"file": str(fifo)}))
        assert time.monotonic() - start < 20
        assert answer["error"] == f"cannot read event payload file {fifo}: not a regular file"

    @pytest.mark.parametrize("name", ["events_log", "fingerprint_key", "rendered_state", "data_dir_state"])
    def test_a_fifo_at_a_log_or_state_file_never_blocks_a_boot(self, tmp_path, name):
        root = tmp_path / "root"
        fifo = Path(getattr(Paths(str(root)), name))
        fifo.parent.mkdir(parents=True, mode=0o700)
        os.mkfifo(fifo)
        answer, code, _ = provider("agent.boot", boot_payload(tmp_path), root, timeout=30)
        assert (answer["state"], code) == ("success", 0)
        assert stat.S_ISFIFO(os.lstat(fifo).st_mode)

    def test_a_fifo_as_an_install_artefact_is_refused_at_once(self, tmp_path):
        from provider_rke2.agent.imagebuild import InstallRequest, install
        from provider_rke2.machine.release import InstallError

        artefacts = tmp_path / "artefacts"
        artefacts.mkdir()
        os.mkfifo(artefacts / "sha256sum-amd64.txt")
        request = InstallRequest(str(artefacts), str(tmp_path / "usr"), str(tmp_path), "amd64", "")
        with pytest.raises(InstallError, match="not a regular file"):
            install(request, lambda binary: None)


class TestRecordsWholeOrAbsent:
    def test_a_short_write_is_cut_back_and_reported(self, tmp_path, monkeypatch):
        log = tmp_path / "logs" / "events.jsonl"
        fsio.append_record(str(log), b'{"type":"a"}\n', 1 << 20)
        real_write = os.write
        monkeypatch.setattr(os, "write", lambda fd, data: real_write(fd, data[: len(data) // 2]))
        with pytest.raises(OutputError, match="No space left on device"):
            fsio.append_record(str(log), b'{"type":"b","message":"' + b"x" * 160 + b'"}\n', 1 << 20)
        monkeypatch.setattr(os, "write", real_write)
        assert log.read_bytes() == b'{"type":"a"}\n', "the half record was cut back off"
        fsio.append_record(str(log), b'{"type":"c"}\n', 1 << 20)
        assert log.read_bytes() == b'{"type":"a"}\n{"type":"c"}\n'

    def test_a_record_torn_earlier_never_swallows_the_next_one(self, tmp_path):
        from provider_rke2.machine import eventlog

        log = tmp_path / "logs" / "events.jsonl"
        log.parent.mkdir(mode=0o700)
        log.write_bytes(b'{"type":"config_updated","message":"whole"}\n{"type":"rke2_sta')  # torn, no newline
        fsio.append_record(str(log), b'{"type":"cluster_ready","message":"after"}\n', 1 << 20)
        records, skipped = eventlog.read_log(str(log))
        assert [r["type"] for r in records] == ["config_updated", "cluster_ready"]
        assert skipped == 1

    def test_events_says_how_many_lines_it_skipped(self, tmp_path):
        root = tmp_path / "root"
        log = Path(Paths(str(root)).events_log)
        log.parent.mkdir(parents=True, mode=0o700)
        log.write_text('{"type":"error","message":"m","time":"2026-11-26T10:00:00Z"}\nnot json\n{"type":"err')
        result = subprocess.run(
            [sys.executable, "-m", "provider_rke2", "events", "--stylus-root", str(root)],
            capture_output=True, text=True, cwd=ROOT, timeout=60,
        )  # fmt: skip
        assert result.returncode == 0
        assert "skipped 2 unreadable line(s)" in result.stderr
        assert result.stdout.count("\n") == 1

    def test_a_full_disk_loses_the_event_with_a_word_in_the_response(self, tmp_path, monkeypatch):
        from provider_rke2.cli import run_event

        real_write = os.write
        log_dir = Paths(str(tmp_path / "root")).provider_log_dir

        def full(fd, data):
            path = os.readlink(f"/proc/self/fd/{fd}")
            return real_write(fd, data[:7]) if path.startswith(log_dir) else real_write(fd, data)

        monkeypatch.setattr(os, "write", full)
        node = LocalNode(environ={"STYLUS_ROOT": str(tmp_path / "root")})
        response = run_event("agent.boot", json.dumps({"data": json.dumps(boot_payload(tmp_path))}), node)
        assert response.state == "success"
        assert "warning: event lost: config_updated" in response.log
        assert "cut back" in response.log
        monkeypatch.setattr(os, "write", real_write)
        events = Path(Paths(str(tmp_path / "root")).events_log)
        assert not events.exists() or events.read_bytes() == b""


class TestEveryWaitHasADeadline:
    def test_a_grandchild_holding_the_output_does_not_hold_the_reset(self, tmp_path):
        script = tmp_path / "rke2-uninstall.sh"
        script.write_text("echo removed\nsetsid sh -c 'sleep 30' &\nexit 0\n")
        start = time.monotonic()
        result = LocalNode(environ=dict(os.environ)).run_script(str(script), Root("/", FROM_ENVIRON), 20, {})
        assert time.monotonic() - start < 10
        assert (result.returncode, result.output) == (0, "removed")

    def test_a_timeout_holds_with_an_escaped_grandchild_holding_the_output(self, tmp_path):
        script = tmp_path / "rke2-uninstall.sh"
        script.write_text("echo stopping\nsetsid sh -c 'sleep 30' &\nsleep 30\n")
        start = time.monotonic()
        result = LocalNode(environ=dict(os.environ)).run_script(str(script), Root("/", FROM_ENVIRON), 1, {})
        assert time.monotonic() - start < 10
        assert (result.returncode, result.output) == (None, "stopping")

    def test_sigterm_during_a_reset_ends_the_script_and_records_an_error(self, tmp_path):
        root = tmp_path / "root"
        scripts = Path(Paths(str(root)).scripts_dir)
        scripts.mkdir(parents=True)
        pid_file = tmp_path / "script.pid"
        (scripts / "rke2-uninstall.sh").write_text(f"echo $$ > {pid_file}\nsleep 60\n")
        event = json.dumps({"data": json.dumps({"config": cloud_config(role="init")})})
        process = subprocess.Popen(
            [sys.executable, "-m", "provider_rke2", "cluster.reset"],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
            cwd=ROOT, env={**os.environ, "STYLUS_ROOT": str(root)},
        )  # fmt: skip
        process.stdin.write(event.encode())
        process.stdin.close()
        for _ in range(200):
            if pid_file.exists() and pid_file.read_text().strip():
                break
            time.sleep(0.05)
        script_pid = int(pid_file.read_text())
        process.send_signal(signal.SIGTERM)
        process.stdin = None  # written and closed above
        out, _ = process.communicate(timeout=20)
        answer = json.loads(out)
        assert answer["state"] == "error" and "terminated" in answer["error"]
        time.sleep(0.2)
        assert not Path(f"/proc/{script_pid}").exists(), "the script did not outlive the provider"
        events = [json.loads(line) for line in Path(Paths(str(root)).events_log).read_text().splitlines()]
        assert events[-1]["type"] == "error" and "terminated" in events[-1]["message"]

    def test_wait_ready_holds_its_deadline_against_a_server_that_drips(self, tmp_path):
        server = socket.socket()
        server.bind(("127.0.0.1", 0))
        server.listen(4)
        stop = threading.Event()

        def drip():
            while not stop.is_set():
                try:
                    server.settimeout(0.5)
                    client, _ = server.accept()
                except OSError:
                    continue
                for byte in b"HTTP/1.1 200 OK\r\nX-Slow: " + b"a" * 200:
                    if stop.is_set():
                        break
                    try:
                        client.sendall(bytes([byte]))
                    except OSError:
                        break
                    time.sleep(0.4)
                client.close()

        thread = threading.Thread(target=drip, daemon=True)
        thread.start()
        url = f"http://127.0.0.1:{server.getsockname()[1]}/healthz"
        start = time.monotonic()
        result = subprocess.run(
            [sys.executable, "-m", "provider_rke2", "wait-ready", "--role", "worker", "--timeout", "3",
             "--kubelet-url", url, "--stylus-root", str(tmp_path / "root")],
            capture_output=True, text=True, cwd=ROOT, timeout=60,
        )  # fmt: skip
        took = time.monotonic() - start
        stop.set()
        server.close()
        assert result.returncode == 1
        assert took < 10, f"took {took:.1f} s against a 3 s deadline"
        assert "no whole answer within" in result.stdout

    @pytest.mark.parametrize("value", ["nan", "inf", "-1", "-inf", "soon"])
    def test_a_timeout_that_would_never_end_is_a_usage_error(self, tmp_path, value):
        result = subprocess.run(
            [sys.executable, "-m", "provider_rke2", "wait-ready", "--role", "worker", f"--timeout={value}",
             "--stylus-root", str(tmp_path)],
            capture_output=True, text=True, cwd=ROOT, timeout=60,
        )  # fmt: skip
        assert result.returncode == 2
        assert "expected a number of seconds, or with a unit: 90s, 15m, 2h, 1d" in result.stderr


class TestLinearAndBounded:
    def test_forty_thousand_list_entries_merge_in_linear_time(self):
        # A guard against quadratic merging (40,000 took 7.7 s; 160,000, 111 s), not a benchmark:
        # `make bench` measures the cost per entry.
        sans = "".join(f"- h{i}.example\n" for i in range(40000))
        no_proxy = ",".join(f"n{i}.corp" for i in range(40000))
        config = cloud_config(
            role="init", control_plane_host="cp", config="tls-san:\n" + sans,
            env={"HTTP_PROXY": "http://p:1", "NO_PROXY": no_proxy + ",n1.corp"},
        )  # fmt: skip
        start = time.monotonic()
        rendered = render(config)
        assert time.monotonic() - start < 6
        # Once each in 90_userdata.yaml and config.yaml; in NO_PROXY and CONTAINERD_NO_PROXY.
        assert rendered.text.count("h39999.example") == 2 and rendered.text.count("n39999.corp") == 2

    @pytest.mark.parametrize(
        ("value", "message"),
        [
            pytest.param(
                "&a [x,x,x,x,x,x,x,x,x,x]\n"
                + "".join(
                    f"k{i}: &{chr(98 + i)} [" + ",".join([f"*{chr(97 + i)}"] * 10) + "]\n" for i in range(8)
                ),
                "expands to more than 500000 values",
                id="alias-bomb",
            ),
            pytest.param("&a [*a]\n", "nested more than 100 levels deep", id="recursive-alias"),
            pytest.param("[" * 2000 + "]" * 2000 + "\n", "nested more than 100 levels deep", id="deep-flow"),
            pytest.param("!!set {a, b}\n", "!!set is not supported here", id="set"),
            pytest.param("!!omap [a: 1]\n", "!!omap is not supported here", id="omap"),
        ],
    )
    def test_a_hostile_value_in_the_rke2_config_gets_a_specific_error_at_once(self, tmp_path, value, message):
        config = "#cloud-config\ncluster:\n  role: init\n  config: |\n    bad: " + value.replace(
            "\n", "\n    "
        )
        start = time.monotonic()
        answer, code, _ = provider("agent.boot", {"config": config}, tmp_path / "root")
        assert time.monotonic() - start < 15
        assert code == 0 and answer["state"] == "error"
        assert message in answer["error"] and "internal error" not in answer["error"]
        assert len(json.dumps(answer)) < 4096, "a short excerpt at most"

    def test_a_deeply_nested_cloud_config_gets_a_specific_error(self, tmp_path):
        config = "#cloud-config\ncluster:\n" + "".join("  " * (i + 1) + f"k{i}:\n" for i in range(2000))
        answer, _, _ = provider("agent.boot", {"config": config}, tmp_path / "root")
        assert "nested more than 100 levels deep" in answer["error"]

    def test_json_nested_fifty_thousand_deep_gets_a_specific_error(self, tmp_path):
        answer, _, _ = provider("agent.boot", None, tmp_path, stdin="[" * 50000 + "]" * 50000)
        assert answer["error"] == "event on stdin is nested too deeply to be an event"

    def test_a_huge_value_is_quoted_as_an_excerpt(self):
        huge = "/data/" + "x" * 3_000_000 + "\t"
        with pytest.raises(ConfigError) as raised:
            render(cloud_config(role="init", config=f'data-dir: "{huge}"\n'))
        assert len(str(raised.value)) < 1000
        assert "more characters" in str(raised.value)

    def test_an_error_lists_at_most_twenty_problems(self):
        from provider_rke2.core import rke2check

        booleans = sorted(k for k, spec in rke2check.table()["keys"].items() if spec["type"] == "bool")[:30]
        config = "".join(f"{key}: maybe\n" for key in booleans)  # 30 values RKE2 cannot take
        with pytest.raises(ConfigError) as raised:
            render(cloud_config(role="init", config=config))
        problems = raised.value.problems
        assert len(problems) == len(booleans) > 20
        assert str(raised.value).endswith(f"; and {len(problems) - 20} more problems")


class TestSecretsAndLogs:
    def test_a_one_character_token_never_bends_the_answer(self, tmp_path):
        answer, _, _ = provider("agent.boot", boot_payload(tmp_path, cluster_token="e"), tmp_path / "root")
        assert answer["state"] == "success"
        assert "<redacted>" not in json.dumps(answer)
        assert "cluster.cluster_token: a weak token: 1 characters" in answer["log"]

    @pytest.mark.parametrize("inside", ["\\", "\t", "\x07", "\x1b[2J"])
    def test_a_token_that_python_would_escape_is_redacted_in_every_printed_form(self, tmp_path, inside):
        token = f"hostile{inside}token-0123"
        payload = boot_payload(
            tmp_path, cluster_token=token, config=json.dumps({"data-dir": f"/data/{token}/x"}) + "\n"
        )
        answer, _, _ = provider("agent.boot", payload, tmp_path / "root")
        root = tmp_path / "root"
        printed = json.dumps(answer) + Path(Paths(str(root)).provider_log).read_text()
        printed += Path(Paths(str(root)).events_log).read_text()
        for form in (
            token,
            repr(token)[1:-1],
            json.dumps(token)[1:-1],
            token.encode("unicode_escape").decode(),
        ):
            assert form not in printed, form
        assert "<redacted>" in answer["error"] + answer["log"], "the value was shown, the token in it not"

    def test_render_redacts_its_warnings_on_stderr(self, tmp_path):
        config = cloud_config(role="init", cluster_token=TOKEN, config=f"not-a-key-{TOKEN}: 1\n")
        result = subprocess.run(
            [sys.executable, "-m", "provider_rke2", "render", "-", "--stylus-root", str(tmp_path)],
            input=config, capture_output=True, text=True, cwd=ROOT, timeout=60,
        )  # fmt: skip
        assert result.returncode == 0
        assert "warning: cluster.config.not-a-key-<redacted>" in result.stderr
        assert TOKEN not in result.stderr

    def test_a_newline_in_a_role_or_key_never_forges_a_log_line(self, tmp_path):
        forged = "init\n2026-11-26T00:00:00Z provider-rke2/0.1.0 agent.boot role=init info: all good"
        payload = boot_payload(tmp_path, role=forged, config='"x\\ny\\u001b[31m": 1\n')
        provider("agent.boot", payload, tmp_path / "root")
        lines = Path(Paths(str(tmp_path / "root")).provider_log).read_text().splitlines()
        assert lines and all(line.split(" ")[1].startswith("provider-rke2/") for line in lines)
        assert not any("\x1b" in line for line in lines)
        assert any("\\n2026-11-26T00:00:00Z provider-rke2/0.1.0" in line for line in lines), "escaped, inline"

    def test_events_never_prints_a_terminal_escape(self, tmp_path):
        root = tmp_path / "root"
        log = Path(Paths(str(root)).events_log)
        log.parent.mkdir(parents=True, mode=0o700)
        record = {
            "type": "error",
            "message": "a\x1b[2J\nfake row",
            "time": "2026-11-26T00:00:00Z",
            "role": "x\ny",
        }
        log.write_text(json.dumps(record) + "\n")
        for verb in ("events", "status"):
            result = subprocess.run(
                [sys.executable, "-m", "provider_rke2", verb, "--stylus-root", str(root)],
                capture_output=True, text=True, cwd=ROOT, timeout=60,
            )  # fmt: skip
            assert "\x1b" not in result.stdout and "fake row" in result.stdout
            assert "\\nfake row" in result.stdout, verb


class TestTheProtocolNeverBreaks:
    @pytest.mark.parametrize(
        ("stdin", "message"),
        [
            pytest.param(
                b'{"file":"/tmp/\\udcff"}',
                "event field 'file' is not valid UTF-8 text",
                id="escaped-surrogate",
            ),
            pytest.param(b'{"file":"/tmp/\xff"}', "event on stdin is not valid UTF-8 text", id="raw-byte"),
            pytest.param(
                b'{"file":"/tmp/a\\u0000b"}', "event field 'file' holds a control character", id="nul"
            ),
            pytest.param(
                b"\x8b\xff\x00\x13garbage", "event on stdin is not valid UTF-8 text", id="random-bytes"
            ),
        ],
    )
    def test_a_broken_event_gets_a_specific_error_on_stdout(self, tmp_path, stdin, message):
        answer, code, stderr = provider("agent.boot", None, tmp_path, stdin=stdin)
        assert code == 0 and answer["state"] == "error"
        assert answer["error"].startswith(message)
        assert "Traceback" not in stderr

    def test_a_closed_stdout_ends_quietly(self, tmp_path):
        # Started with fd 1 closed, as `agent-provider-rke2 agent.boot >&-`: Python has no sys.stdout.
        result = subprocess.run(
            ["sh", "-c", 'exec "$0" -m provider_rke2 agent.boot >&-', sys.executable],
            input=json.dumps({"data": "{}"}), capture_output=True, text=True, cwd=ROOT, timeout=60,
            env={**os.environ, "STYLUS_ROOT": str(tmp_path)},
        )  # fmt: skip
        assert result.returncode == 1
        assert "Traceback" not in result.stderr and "Error" not in result.stderr

    def test_the_launcher_blames_unpacking_only_for_unpacking(self, tmp_path, monkeypatch, capsys):
        import importlib.util

        spec = importlib.util.spec_from_file_location("launcher_under_test", ROOT / "build" / "launcher.py")
        launcher = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(launcher)
        monkeypatch.setattr(launcher, "_ANSWER_FD", os.open(tmp_path / "answer", os.O_WRONLY | os.O_CREAT))
        monkeypatch.setattr(sys, "argv", ["agent-provider-rke2", "agent.boot"])
        monkeypatch.setitem(sys.modules, "provider_rke2.cli", sys.modules.get("provider_rke2.cli", object()))
        with pytest.raises(SystemExit):
            launcher._fail(UnicodeEncodeError("utf-8", "x", 0, 1, "surrogates not allowed"))
        answer = json.loads((tmp_path / "answer").read_text())
        assert answer["error"].startswith("internal error: UnicodeEncodeError")
        monkeypatch.delitem(sys.modules, "provider_rke2.cli")
        os.ftruncate(launcher._ANSWER_FD, 0)
        os.lseek(launcher._ANSWER_FD, 0, 0)
        with pytest.raises(SystemExit):
            launcher._fail(OSError(30, "Read-only file system"))
        assert json.loads((tmp_path / "answer").read_text())["error"].startswith("cannot unpack")

    @pytest.mark.parametrize("host", ["fe80::1%$(reboot)", "fe80::1%eth0;x", "fe80::1%", "fe80::1%a b"])
    def test_an_ipv6_zone_holds_only_interface_characters(self, host):
        with pytest.raises(
            ConfigError, match="cluster.control_plane_host: expected a host name or IP address"
        ):
            render(cloud_config(role="worker", cluster_token=TOKEN, control_plane_host=host))

    def test_a_plain_ipv6_zone_is_fine(self):
        config = cloud_config(role="worker", cluster_token=TOKEN, control_plane_host="fe80::1%eth0")
        assert "server: https://[fe80::1%eth0]:9345" in render(config).text

    def test_a_key_longer_than_pyyaml_takes_is_an_error_not_a_broken_config(self, tmp_path):
        answer, _, _ = provider("agent.boot", boot_payload(tmp_path, config="k" * 1100 + ": v\n"), tmp_path)
        assert answer["state"] == "error" and "cluster.config: is not valid YAML" in answer["error"]
        assert not (tmp_path / "out" / "cluster.yaml").exists()


class TestUsualHostsStillWork:
    def test_a_root_owned_sticky_directory_is_fine(self, tmp_path):
        sticky = tmp_path / "sticky"
        sticky.mkdir()
        sticky.chmod(0o1777)
        fsio.replace_file(str(sticky / "cluster.yaml"), b"secret", 0o600)
        assert (sticky / "cluster.yaml").read_bytes() == b"secret"

    def test_a_parent_a_system_group_may_write_is_usual_and_fine(self, tmp_path):
        var_log = tmp_path / "var-log"  # as Ubuntu's /var/log: root:syslog 0775
        var_log.mkdir()
        os.chown(var_log, 0, 4)
        var_log.chmod(0o775)
        fsio.append_record(str(var_log / "provider-rke2" / "events.jsonl"), b"{}\n", 1 << 20)
        assert (var_log / "provider-rke2" / "events.jsonl").read_bytes() == b"{}\n"

    def test_but_not_where_the_file_goes_nor_for_a_users_group(self, tmp_path):
        group_dir = tmp_path / "group-dir"
        group_dir.mkdir()
        os.chown(group_dir, 0, 4)
        group_dir.chmod(0o775)
        with pytest.raises(OutputError, match="is writable by other users"):
            fsio.append_record(str(group_dir / "events.jsonl"), b"{}\n", 1 << 20)
        users = tmp_path / "users"
        (users / "sub").mkdir(parents=True)
        os.chown(users, 0, 1000)
        users.chmod(0o775)
        with pytest.raises(OutputError, match="is writable by other users"):
            fsio.append_record(str(users / "sub" / "events.jsonl"), b"{}\n", 1 << 20)


class TestEveryBoundHolds:
    """Issue 26, class 4 and 6: a wait that would never end, a probe loop that would spin, a
    file that would never be read whole: each a usage error that says what is expected."""

    def run(self, tmp_path, *args, timeout=20):
        return subprocess.run(
            [sys.executable, "-m", "provider_rke2", *args, "--stylus-root", str(tmp_path / "root")],
            capture_output=True, text=True, cwd=ROOT, timeout=timeout,
        )  # fmt: skip

    @pytest.mark.parametrize(
        "args",
        [
            ("wait-ready", "--role", "worker", "--timeout", "99999999999d"),
            ("wait-ready", "--role", "worker", "--timeout", "367d"),
            ("events", "--since", "99999999999d"),
            ("events", "--since", "800000d"),
        ],
    )
    def test_a_duration_past_a_year_is_a_usage_error(self, tmp_path, args):
        done = self.run(tmp_path, *args)
        assert done.returncode == 2 and "at most 366d" in done.stderr and "Traceback" not in done.stderr

    @pytest.mark.parametrize("value", ["0", "0s", "0.01"])
    def test_probes_never_spin(self, tmp_path, value):
        done = self.run(tmp_path, "wait-ready", "--role", "worker", "--max-interval", value)
        assert done.returncode == 2 and "expected at least 0.1 s between two rounds" in done.stderr

    @pytest.mark.parametrize("verb", ["render", "validate", "plan"])
    def test_a_fifo_is_refused_at_once_not_read_forever(self, tmp_path, verb):
        fifo = tmp_path / "config.yaml"
        os.mkfifo(fifo)
        start = time.monotonic()
        done = self.run(tmp_path, verb, str(fifo), timeout=10)
        assert done.returncode == 2 and f"cannot read {fifo}: not a regular file" in done.stderr
        assert time.monotonic() - start < 5


class TestTheEnvironmentFileAsDashReadsIt:
    """Issue 26, class 1: /etc/spectro/environment decides where root writes everything. What
    dash would not assign is never read as an assignment; what cannot be read exactly, or
    that another user could have written, is refused with the reason."""

    @pytest.mark.parametrize(
        "text",
        [
            "'STYLUS_ROOT=/evil'\n",
            '"STYLUS_ROOT=/evil"\n',
            'STYLUS_ROOT"=/evil"\n',
            'STYLUS_"ROOT"=/evil\n',
            "export 'STYLUS_ROOT=/evil'\n",
        ],
    )
    def test_a_quoted_name_or_equals_sign_is_a_command_not_an_assignment(self, text):
        # dash runs such a word as a command named `STYLUS_ROOT=/evil`: it assigns nothing
        with pytest.raises(ConfigError, match="is a command|exports something that is not a name"):
            roots.assignments(text)

    def test_dash_agrees_on_what_is_an_assignment(self, tmp_path):
        text = "export A='/x y'\nB=\"/q\"'r'\nC=/c; export C\n"
        script = tmp_path / "env"
        script.write_text(text)
        shell = subprocess.run(
            ["dash", "-c", '. "$1"; printf "%s|%s|%s" "$A" "$B" "$C"', "dash", str(script)],
            capture_output=True, text=True, check=True,
        )  # fmt: skip
        found = roots.assignments(text)
        assert shell.stdout == "|".join([found["A"], found["B"], found["C"]]) == "/x y|/qr|/c"

    def test_crlf_line_ends_are_refused_not_read_as_plain_ones(self, fs):
        # dash keeps the `\r` in the value: `/persistent/spectro\r` is not the root meant
        fs.create_file(roots.STYLUS_ENVIRONMENT, contents=b"STYLUS_ROOT=/persistent/spectro\r\n")
        with pytest.raises(ConfigError, match=r"/etc/spectro/environment:1: '\\r', which the shell"):
            LocalNode(environ={}).stylus_root()

    @pytest.mark.parametrize(
        "text",
        [
            pytest.param(b"# " + b"x" * (1 << 20) + b"\nSTYLUS_ROOT=/persistent/spectro\n", id="comments-then-it"),
            pytest.param(b"STYLUS_ROOT=/persistent/spectro\n" * 2500, id="past-64k"),
        ],
    )  # fmt: skip
    def test_a_file_too_large_to_read_whole_is_refused_not_cut(self, fs, text):
        fs.create_file(roots.STYLUS_ENVIRONMENT, contents=text)
        with pytest.raises(ConfigError, match="cannot read: larger than 65536 bytes; not read in part"):
            LocalNode(environ={}).stylus_root()

    def make(self, tmp_path, mode=0o644, owner=0):
        directory = tmp_path / "spectro"
        directory.mkdir(mode=0o755)
        path = directory / "environment"
        path.write_text("STYLUS_ROOT=/persistent/spectro\n")
        path.chmod(mode)
        os.chown(path, owner, owner)
        return path

    def test_roots_file_is_read(self, tmp_path):
        assert fsio.read_trusted(str(self.make(tmp_path)), 65536) == b"STYLUS_ROOT=/persistent/spectro\n"

    @pytest.mark.parametrize(
        "mode, owner, why",
        [
            (0o666, 65534, "owned by uid 65534, not root"),
            (0o644, 65534, "owned by uid 65534, not root"),
            (0o666, 0, r"writable by other users \(mode 0666\)"),
            (0o664, 1000, "owned by uid 1000"),
        ],
    )
    def test_a_file_another_user_could_have_written_is_refused(self, tmp_path, mode, owner, why):
        with pytest.raises(OSError, match=why):
            fsio.read_trusted(str(self.make(tmp_path, mode, owner)), 65536)

    def test_a_link_another_user_owns_is_refused(self, tmp_path):
        target = self.make(tmp_path)
        link = tmp_path / "spectro" / "link"
        link.symlink_to(target)
        os.lchown(link, 65534, 65534)
        with pytest.raises(OSError, match="a link owned by uid 65534"):
            fsio.read_trusted(str(link), 65536)

    def test_a_directory_another_user_controls_is_refused(self, tmp_path):
        path = self.make(tmp_path)
        os.chown(path.parent, 65534, 65534)
        with pytest.raises(OSError, match="belongs to uid 65534"):
            fsio.read_trusted(str(path), 65536)

    def test_a_fifo_is_refused_at_once(self, tmp_path):
        (tmp_path / "spectro").mkdir()
        os.mkfifo(tmp_path / "spectro" / "environment")
        start = time.monotonic()
        with pytest.raises(OSError, match="not a regular file"):
            fsio.read_trusted(str(tmp_path / "spectro" / "environment"), 65536)
        assert time.monotonic() - start < 1


class TestDropInsReadWholeInLinearTime:
    """Issue 26, class 0b: another tool's drop-in is applied as RKE2 applies it, all of it,
    or the boot is refused; many drop-ins cost linear time."""

    def test_a_drop_in_over_the_limit_refuses_the_boot_instead_of_a_cut(self, tmp_path):
        paths = Paths(str(tmp_path))
        os.makedirs(paths.drop_in_dir)
        # a cut at 1 MiB would read `data-dir: /tmp/redte`, a data dir RKE2 never uses
        text = "# " + "x" * ((1 << 20) - 14) + "\ndata-dir: /tmp/redteam\n"
        Path(paths.drop_in_dir, "50_big.yaml").write_text(text)
        with pytest.raises(ConfigError, match="50_big.yaml: larger than 1048576 bytes; not read in part"):
            LocalNode(environ={}).facts(paths)

    def test_twenty_thousand_drop_ins_merge_in_linear_time(self):
        def merge(count):
            drop_ins = [
                DropIn(f"{i:06d}.yaml", {"node-label+": [f"n{i}=x"], f"k{i}": i, "same": i})
                for i in range(count)
            ]
            start = time.process_time()
            merged, _ = with_drop_ins({"debug": True}, drop_ins, "/d")
            return time.process_time() - start, merged

        small, _ = merge(2000)
        large, merged = merge(20000)
        assert len(merged["node-label"]) == 20000 and merged["same"] == 19999
        assert large < 10 * small * 3  # linear (ten times the work) with room for noise; was 60x


class TestTheUpgradeSaysWhatHappened:
    """Issue 26, class 0c: a recovery reports what the node holds, not what it meant to do; a
    busy lock is a refusal; neither a full disk nor a forged journal fails a boot."""

    NEW = "#!/bin/sh\necho 'rke2 version v1.31.2+rke2r1 (go1.22)'\n"

    def interrupted(self, tmp_path, stub_bin):
        """An upgrade killed while it waited for v1.31.2, its rollback set removed since."""
        paths = Paths(str(tmp_path / "root"))
        os.makedirs(os.path.dirname(paths.binary))
        Path(paths.binary).write_text(self.NEW)
        Path(paths.binary).chmod(0o755)
        os.makedirs(paths.state_dir, mode=0o700)
        journal = {
            "phase": "waiting for readiness", "role": "worker", "unit": "rke2-agent.service", "was_active": True,
            "from": "v1.30.5+rke2r1", "to": "v1.31.2+rke2r1", "snapshot": "", "files": ["bin/rke2"],
            "added": [],
        }  # fmt: skip
        Path(paths.upgrade_journal).write_text(json.dumps(journal))
        stub_bin("systemctl")
        return paths

    def cli(self, paths, stub_bin, *args):
        return subprocess.run(
            [sys.executable, "-m", "provider_rke2", *args, "--stylus-root", paths.root],
            capture_output=True, text=True, cwd=ROOT, timeout=60, env={**os.environ, "PATH": stub_bin.path},
        )  # fmt: skip

    def events(self, paths):
        text = Path(paths.events_log).read_text() if os.path.exists(paths.events_log) else ""
        return [json.loads(line) for line in text.splitlines()]

    def test_a_removed_rollback_set_is_a_failure_not_a_rollback(self, tmp_path, stub_bin):
        paths = self.interrupted(tmp_path, stub_bin)
        done = self.cli(paths, stub_bin, "status")
        assert done.returncode == 3, done.stderr
        assert "could not be rolled back" in done.stderr and "is back" not in done.stderr
        assert "is v1.31.2+rke2r1 after the previous files were put back, not v1.30.5+rke2r1" in done.stderr
        kinds = [event["type"] for event in self.events(paths)]
        assert kinds == ["error"] and "rke2_rolled_back" not in kinds
        assert os.path.exists(paths.upgrade_journal), "the journal is kept for the next try"
        assert "systemctl start rke2-agent.service" not in stub_bin.calls(), "v1.31.2 is never started"

    def test_a_second_upgrade_turned_away_by_the_lock_is_a_refusal(self, tmp_path, stub_bin):
        paths = self.interrupted(tmp_path, stub_bin)  # the first one's journal, as while it runs
        (tmp_path / "artifacts").mkdir()
        holder = subprocess.Popen(
            [sys.executable, "-c", "import sys, time; from provider_rke2.machine.fsio import node_lock\n"
             "with node_lock(sys.argv[1], 0, 'upgrade'):\n print('held', flush=True); time.sleep(60)",
             paths.lock_file],
            cwd=ROOT, stdout=subprocess.PIPE, text=True,
        )  # fmt: skip
        try:
            assert holder.stdout.readline() == "held\n"
            done = self.cli(
                paths, stub_bin, "upgrade", "--artifacts", str(tmp_path / "artifacts"), "--role", "worker"
            )
        finally:
            holder.kill()
            holder.wait()
        assert done.returncode == 1 and "not upgraded, nothing changed" in done.stdout
        assert "could NOT be rolled back" not in done.stdout
        assert os.path.exists(paths.upgrade_journal) and stub_bin.calls() == []

    def test_a_full_disk_under_the_lock_file_fails_nothing_by_itself(self, tmp_path, monkeypatch):
        def full(*args):
            raise OSError(28, "No space left on device")

        monkeypatch.setattr(os, "pwrite", full)
        monkeypatch.setattr(os, "ftruncate", full)
        entered = []
        with fsio.node_lock(str(tmp_path / "state" / "lock"), 0, "boot"):
            entered.append(True)
        assert entered

    def test_a_journal_nested_past_json_limits_only_warns_at_boot(self, tmp_path):
        paths = Paths(str(tmp_path / "root"))
        os.makedirs(paths.state_dir, mode=0o700)
        Path(paths.upgrade_journal).write_text("[" * 100_000 + "]" * 100_000)
        answer, code, stderr = provider("agent.boot", boot_payload(tmp_path), tmp_path / "root")
        assert code == 0 and answer["state"] == "success", answer
        assert "is not one this provider wrote" in answer["log"] and "Traceback" not in stderr


RELEASE = {
    "bin/rke2": b"#!/bin/sh\necho 'rke2 version v1.31.2+rke2r1 (abc)'\n",
    "lib/systemd/system/rke2-server.service": b"[Service]\nExecStart=/usr/local/bin/rke2 server\n",
    "share/rke2/LICENSE.txt": b"license",
}


def release_dir(tmp_path, members=RELEASE, body=None):
    import hashlib

    from helpers import make_tarball

    artifacts = tmp_path / "artifacts"
    artifacts.mkdir(exist_ok=True)
    body = make_tarball(members) if body is None else body
    (artifacts / "rke2.linux-amd64.tar.gz").write_bytes(body)
    (artifacts / "sha256sum-amd64.txt").write_text(
        f"{hashlib.sha256(body).hexdigest()}  rke2.linux-amd64.tar.gz\n"
    )
    return str(artifacts)


def foreign_link(at: Path, tmp_path) -> Path:
    """A link at `at`, owned by uid 65534, to a directory of theirs outside the root."""
    outside = tmp_path / "theirs"
    outside.mkdir(exist_ok=True)
    os.chown(outside, 65534, 65534)
    at.parent.mkdir(parents=True, exist_ok=True)
    at.symlink_to(outside)
    os.lchown(at, 65534, 65534)
    return outside


class TestInstallAndUpgradeWriteOnlyWhereRootAloneWrites:
    """Issue 26, class 2: init.provider.install and upgrade put binaries, units and scripts
    that root runs: never through a link another user owns, never into a directory another
    user can write, never through a link at a script's name."""

    def install(self, tmp_path, members=RELEASE):
        from provider_rke2.agent.imagebuild import InstallRequest, install

        root = tmp_path / "root"
        request = InstallRequest(
            release_dir(tmp_path, members), str(root / "usr/local"), str(root), "amd64", ""
        )
        return install(request, lambda binary: None)

    @pytest.mark.parametrize("where", ["usr/local/bin", "usr/local/lib/systemd/system", "usr/local/share"])
    def test_a_release_directory_that_is_another_users_link_is_refused(self, tmp_path, where):
        from provider_rke2.machine.release import InstallError

        outside = foreign_link(tmp_path / "root" / where, tmp_path)
        with pytest.raises(InstallError, match="is a link owned by uid 65534; nothing installed"):
            self.install(tmp_path)
        assert list(outside.iterdir()) == []
        assert not (tmp_path / "root/usr/local/bin/rke2").exists()

    def test_the_scripts_directory_as_another_users_link_is_refused(self, tmp_path):
        outside = foreign_link(tmp_path / "root/opt/rke2/scripts", tmp_path)
        with pytest.raises(OutputError, match="scripts is a link owned by uid 65534"):
            self.install(tmp_path)
        assert list(outside.iterdir()) == []

    @pytest.mark.parametrize("name", ["rke2-uninstall.sh", "rke2-paths.env"])
    def test_a_link_at_a_scripts_name_is_never_written_through(self, tmp_path, name):
        target = planted_target(tmp_path)
        target.chmod(0o600)
        scripts = tmp_path / "root/opt/rke2/scripts"
        scripts.mkdir(parents=True)
        (scripts / name).symlink_to(target)
        with pytest.raises(OutputError, match="exists and is not a regular file; not replaced"):
            self.install(tmp_path)
        assert target.read_text() == "untouched\n" and stat.S_IMODE(target.stat().st_mode) == 0o600

    @pytest.mark.parametrize(
        "mode, owner, why",
        [
            (0o777, 0, "usr/local is writable by other users"),
            (0o755, 1000, "usr/local belongs to uid 1000"),
            (0o775, (0, 1000), "usr/local is writable by other users"),
        ],
    )
    def test_a_prefix_another_user_controls_is_refused(self, tmp_path, mode, owner, why):
        from provider_rke2.machine.release import InstallError

        prefix = tmp_path / "root/usr/local"
        prefix.mkdir(parents=True)
        prefix.chmod(mode)
        uid, gid = owner if isinstance(owner, tuple) else (owner, owner)
        os.chown(prefix, uid, gid)
        with pytest.raises(InstallError, match=why):
            self.install(tmp_path)
        assert sorted(p.name for p in prefix.iterdir()) == []

    @pytest.mark.parametrize(
        "uid, gid, mode, why",
        [
            (65534, 65534, 0o755, "bin belongs to uid 65534"),
            (0, 1000, 0o775, "bin is writable by other users"),
        ],
    )
    def test_a_bin_directory_another_user_controls_is_refused(self, tmp_path, uid, gid, mode, why):
        from provider_rke2.machine.release import InstallError

        binaries = tmp_path / "root/usr/local/bin"
        binaries.mkdir(parents=True)
        binaries.chmod(mode)
        os.chown(binaries, uid, gid)
        with pytest.raises(InstallError, match=why):
            self.install(tmp_path)
        assert list(binaries.iterdir()) == []

    def test_an_upgrade_refuses_a_unit_directory_that_is_another_users_link(self, tmp_path):
        from provider_rke2.machine.swap import SwapError, keep_previous, stage

        paths = Paths(str(tmp_path / "root"))
        Path(paths.binary).parent.mkdir(parents=True)
        Path(paths.binary).write_text("old")
        outside = foreign_link(Path(paths.install_prefix) / "lib/systemd/system", tmp_path)
        archive = os.path.join(release_dir(tmp_path), "rke2.linux-amd64.tar.gz")
        swap = stage(archive, paths.install_prefix, paths.upgrade_dir)
        with pytest.raises(SwapError, match="system is a link owned by uid 65534"):
            keep_previous(swap)
        assert list(outside.iterdir()) == [] and Path(paths.binary).read_text() == "old"


class TestReleaseArchivesReadAsUntrusted:
    """Issue 26, class 3: whatever a release archive holds, a refusal that names the member,
    never an internal error; and an upgrade's own words never carry the node's token."""

    @pytest.mark.parametrize(
        "members, why",
        [
            (
                {**RELEASE, "lib/systemd/system/rke2-agent.service": b"[Service]\nExecStart=\xff\xfe\n"},
                r"lib/systemd/system/rke2-agent.service is not UTF-8 text \(byte 20\)",
            ),
            (
                {**RELEASE, "lib/systemd/system/extra/x.service": b"[Service]\n"},
                "lib/systemd/system/extra is a directory: a unit is a file",
            ),
        ],
    )
    def test_a_unit_no_release_has_is_named(self, tmp_path, members, why):
        from provider_rke2.machine.release import InstallError

        with pytest.raises(InstallError, match=why):
            TestInstallAndUpgradeWriteOnlyWhereRootAloneWrites().install(tmp_path, members)
        assert not (tmp_path / "root/usr/local/bin/rke2").exists()

    def test_a_unit_path_that_is_a_directory_is_named(self, tmp_path):
        import tarfile

        from provider_rke2.agent.imagebuild import InstallRequest, install
        from provider_rke2.machine.release import InstallError

        from helpers import make_tarball

        unit_dir = tarfile.TarInfo("lib/systemd/system/rke2-agent.service")
        unit_dir.type, unit_dir.mode = tarfile.DIRTYPE, 0o755
        body = make_tarball(RELEASE, [unit_dir])
        root = tmp_path / "root"
        request = InstallRequest(
            release_dir(tmp_path, body=body), str(root / "usr/local"), str(root), "amd64", ""
        )
        with pytest.raises(InstallError, match="rke2-agent.service is a directory: a unit is a file"):
            install(request, lambda binary: None)

    def truncated(self, declared, before=True):
        import gzip
        import io
        import tarfile

        buffer = io.BytesIO()
        with tarfile.open(fileobj=buffer, mode="w") as tar:
            if before:
                info = tarfile.TarInfo("bin/rke2")
                info.size = len(RELEASE["bin/rke2"])
                tar.addfile(info, io.BytesIO(RELEASE["bin/rke2"]))
        data = buffer.getvalue().rstrip(b"\0")
        data += b"\0" * (-len(data) % 512)
        big = tarfile.TarInfo("share/rke2/big" if before else "bin/rke2")
        big.size = declared
        return gzip.compress(data + big.tobuf(format=tarfile.PAX_FORMAT) + b"y" * 4096)

    @pytest.mark.parametrize(
        "declared, before, why",
        [
            (2 << 30, True, "more than 1024 MiB"),
            (100 << 20, True, "unexpected end of data"),
            (100 << 20, False, "unexpected end of data"),
        ],
    )
    def test_a_truncated_archive_or_a_member_past_the_bound_is_refused(self, tmp_path, declared, before, why):
        from provider_rke2.agent.imagebuild import InstallRequest, install
        from provider_rke2.machine.release import InstallError, release_listing

        artifacts = release_dir(tmp_path, body=self.truncated(declared, before))
        archive = os.path.join(artifacts, "rke2.linux-amd64.tar.gz")
        with pytest.raises(InstallError, match=why):
            release_listing(archive)  # what a dry run reads
        root = tmp_path / "root"
        with pytest.raises(InstallError, match=why):
            install(
                InstallRequest(artifacts, str(root / "usr/local"), str(root), "amd64", ""), lambda b: None
            )
        assert not (root / "usr/local/bin/rke2").exists()

    @pytest.mark.parametrize("name", ["bin/rk\0e2", "bin/rke2\x1b[2J", "share/a\nb"])
    def test_a_member_name_with_a_control_character_is_named(self, tmp_path, name):
        import gzip
        import io
        import tarfile

        from provider_rke2.machine.release import InstallError, release_listing

        buffer = io.BytesIO()
        with tarfile.open(fileobj=buffer, mode="w", format=tarfile.PAX_FORMAT) as tar:
            info = tarfile.TarInfo("bin/rke2")
            info.size, info.pax_headers = 3, {"path": name}
            tar.addfile(info, io.BytesIO(b"abc"))
        archive = os.path.join(
            release_dir(tmp_path, body=gzip.compress(buffer.getvalue())), "rke2.linux-amd64.tar.gz"
        )
        with pytest.raises(InstallError, match="a control character in its name"):
            release_listing(archive)


class TestTheImagesWaitHoldsItsBound:
    """Issue 26, class 4: the wait for image archives is bounded by the clock, even when one
    listing of the directory takes longer than the whole bound (100,000 archives)."""

    def test_a_listing_slower_than_the_bound_is_cut_at_the_bound(self, tmp_path, stub_bin):
        from provider_rke2.core import steps

        images = tmp_path / "images"
        images.mkdir()
        (images / "a.tar").write_bytes(b"x")
        stub_bin("find", 'echo "$$" > "${0%/*}/find.pid"; sleep 30')  # a listing of a huge tree
        start = time.monotonic()
        done = subprocess.run(
            ["dash", "-c", steps.wait_for_images(str(images), 3).commands[0]],
            env={**os.environ, "PATH": stub_bin.path}, capture_output=True, timeout=20,
        )  # fmt: skip
        took = time.monotonic() - start
        assert done.returncode == 0 and took < 4.5, took  # the bound, a second of date's rounding
        assert len([c for c in stub_bin.calls() if c.startswith("find")]) == 1
        pid = int((tmp_path / "stub-bin" / "find.pid").read_text())
        assert (
            not Path(f"/proc/{pid}").exists() or "zombie" in Path(f"/proc/{pid}/status").read_text().lower()
        )


SERVER = """import http.server, sys
class H(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        if sys.argv[2] != "-":
            self.send_response(302); self.send_header("Location", sys.argv[2]); self.end_headers(); return
        self.send_response(200); self.end_headers(); self.wfile.write(b"ok")
    def log_message(self, *args): pass
server = http.server.HTTPServer(("127.0.0.1", 0), H)
print(server.server_port, flush=True)
server.serve_forever()
"""


class TestReadinessNoLocalUserCanFake:
    """Issue 26, class 4: ready is what root's RKE2 answers: not any process a local user
    runs on the kubelet's port while the kubelet is down, not where a redirect points, and a
    wait on a cluster CA that is a FIFO still ends at its deadline."""

    def serve(self, uid=0, redirect="-"):
        # the distribution's python: another user cannot run this machine's pyenv
        process = subprocess.Popen(
            ["/usr/bin/python3", "-c", SERVER, "x", redirect], stdout=subprocess.PIPE, text=True,
            preexec_fn=(lambda: os.setuid(uid)) if uid else None,
        )  # fmt: skip
        return process, int(process.stdout.readline())

    def watch(self, tmp_path, stub_bin, *args):
        stub_bin("systemctl", "echo active")
        start = time.monotonic()
        done = subprocess.run(
            [sys.executable, "-m", "provider_rke2", "wait-ready", "--stylus-root", str(tmp_path / "root"),
             "--timeout", "2", "--max-interval", "0.2", "--after", "started", *args],
            capture_output=True, text=True, cwd=ROOT, timeout=30, env={**os.environ, "PATH": stub_bin.path},
        )  # fmt: skip
        log = tmp_path / "root/var/log/provider-rke2/events.jsonl"
        kinds = [json.loads(line)["type"] for line in log.read_text().splitlines()] if log.exists() else []
        return done, kinds, time.monotonic() - start

    def watch_a_kubelet_run_by(self, uid, tmp_path, stub_bin):
        process, port = self.serve(uid)
        try:
            done, kinds, _ = self.watch(
                tmp_path, stub_bin, "--role", "worker", "--kubelet-url", f"http://127.0.0.1:{port}/healthz"
            )
        finally:
            process.kill()
            process.wait()
        return done, kinds

    def test_another_users_process_on_the_kubelets_port_is_not_the_kubelet(self, tmp_path, stub_bin):
        done, kinds = self.watch_a_kubelet_run_by(65534, tmp_path, stub_bin)
        assert done.returncode == 1 and "answered by a process of uid 65534, not root's" in done.stdout
        assert "cluster_ready" not in kinds and "error" in kinds

    def test_roots_own_answer_is_ready(self, tmp_path, stub_bin):
        done, kinds = self.watch_a_kubelet_run_by(0, tmp_path, stub_bin)
        assert done.returncode == 0 and "cluster_ready" in kinds, done.stdout

    def test_a_redirect_is_not_followed(self, tmp_path, stub_bin):
        good, port = self.serve()
        moved, other = self.serve(redirect=f"http://127.0.0.1:{port}/healthz")
        try:
            done, kinds, _ = self.watch(
                tmp_path, stub_bin, "--role", "worker", "--kubelet-url", f"http://127.0.0.1:{other}/healthz"
            )
        finally:
            for process in (good, moved):
                process.kill()
                process.wait()
        assert (
            done.returncode == 1
            and f"HTTP 302 to 'http://127.0.0.1:{port}/healthz', not followed" in done.stdout
        )
        assert "cluster_ready" not in kinds

    def test_a_cluster_ca_that_is_a_fifo_never_holds_the_wait_past_its_deadline(self, tmp_path, stub_bin):
        from provider_rke2.core.paths import server_ca

        ca = Path(server_ca(Paths(str(tmp_path / "root")).data_dir))
        ca.parent.mkdir(parents=True)
        os.mkfifo(ca)
        (tmp_path / "healthz").write_text("ok")
        done, kinds, took = self.watch(
            tmp_path, stub_bin, "--role", "init", "--kubelet-url", f"file://{tmp_path}/healthz",
            "--supervisor-url", "https://127.0.0.1:9/ping",
        )  # fmt: skip
        assert done.returncode == 1 and took < 6, took
        assert f"cannot use the cluster CA at {ca}: not a regular file" in done.stdout


class TestTheEventLogUnderLoadAndForgery:
    """Issue 26, class 5: a fleet manager tailing the event log gets every record, whatever
    the rate, rotation or truncation; any line anyone appended leaves every reader working."""

    def log(self, tmp_path):
        path = tmp_path / "root/var/log/provider-rke2/events.jsonl"
        path.parent.mkdir(parents=True)
        path.parent.chmod(0o700)
        return path

    def follow(self, tmp_path):
        # Into a file, as a fleet manager's collector drains it: a test thread reading a pipe
        # while this process writes would measure the test's GIL, not the follower.
        out = (tmp_path / "followed").open("w")
        process = subprocess.Popen(
            [sys.executable, "-m", "provider_rke2", "events", "--follow", "--json", "--stylus-root", str(tmp_path / "root")],
            stdout=out, stderr=subprocess.DEVNULL, text=True, cwd=ROOT,
        )  # fmt: skip
        time.sleep(1.5)  # it has read what was there and holds the file
        return process

    def received(self, process, count, within=30):
        followed = process.args and Path(process.args[-1]).parent / "followed"
        deadline = time.monotonic() + within
        while time.monotonic() < deadline and len(followed.read_text().splitlines()) < count:
            time.sleep(0.2)
        process.kill()
        process.wait()
        return [json.loads(line)["message"] for line in followed.read_text().splitlines()]

    def test_a_burst_across_several_rotations_loses_nothing(self, tmp_path):
        from provider_rke2.machine import eventlog

        path = self.log(tmp_path)
        fsio.append_record(str(path), b'{"type": "config_updated", "message": "before"}\n', eventlog.LIMIT)
        process = self.follow(tmp_path)
        writer = (  # 4 MB: four rotations of a 1 MiB log, from another process as fast as it can
            "import json, sys\nfrom provider_rke2.machine import eventlog, fsio\n"
            "for n in range(4000):\n"
            "    entry = json.dumps({'type': 'config_updated', 'message': f'{n} ' + 'x' * 1000})\n"
            "    fsio.append_record(sys.argv[1], entry.encode() + b'\\n', eventlog.LIMIT)\n"
        )
        subprocess.run([sys.executable, "-c", writer, str(path)], cwd=ROOT, check=True, timeout=60)
        messages = self.received(process, 4001)
        assert messages[0] == "before" and [int(m.split()[0]) for m in messages[1:]] == list(range(4000))

    def test_a_log_emptied_by_hand_loses_none_of_the_next_records(self, tmp_path):
        path = self.log(tmp_path)
        path.write_text(
            "".join(json.dumps({"type": "error", "message": f"old {n}"}) + "\n" for n in range(50))
        )
        process = self.follow(tmp_path)
        path.write_text("")  # `: > events.jsonl`
        time.sleep(1)
        for n in range(3):
            fsio.append_record(
                str(path), json.dumps({"type": "error", "message": f"new {n}"}).encode() + b"\n", 1 << 20
            )
        assert self.received(process, 53)[50:] == ["new 0", "new 1", "new 2"]

    FORGED = (
        '{"type": ["config_updated"], "message": "a list"}',
        '{"type": {"a": 1}, "message": "an object"}',
        '{"type": "error", "nested": ' + "[" * 10000 + "]" * 10000 + "}",
        '{"type": "error", "message": "nan", "n": NaN}',
        '{"type": "error", "message": "inf", "n": -Infinity}',
        '{"type": 7}',
    )

    @pytest.mark.parametrize("args", [("status",), ("status", "--json"), ("events",), ("events", "--json")])
    def test_forged_records_leave_every_reader_working(self, tmp_path, stub_bin, args):
        path = self.log(tmp_path)
        good = json.dumps({"type": "cluster_ready", "message": "real", "time": "2026-12-06T08:00:00Z"})
        path.write_text("\n".join([*self.FORGED, good]) + "\n")
        stub_bin("systemctl", "echo inactive")
        done = subprocess.run(
            [sys.executable, "-m", "provider_rke2", *args, "--stylus-root", str(tmp_path / "root")],
            capture_output=True, text=True, cwd=ROOT, timeout=60, env={**os.environ, "PATH": stub_bin.path},
        )  # fmt: skip
        assert done.returncode == 0 and "Traceback" not in done.stderr and "internal error" not in done.stderr
        assert "real" in done.stdout and "a list" not in done.stdout and "NaN" not in done.stdout
        if args == ("events", "--json"):
            assert [json.loads(line)["message"] for line in done.stdout.splitlines()] == ["real"]
            assert f"skipped {len(self.FORGED)} unreadable line(s)" in done.stderr
        if args == ("status", "--json"):
            assert json.loads(done.stdout)["last_events"]["cluster_ready"]["message"] == "real"

    @pytest.mark.parametrize("args", [("status", "--json"), ("events", "--json"), ("paths",)])
    def test_a_closed_stdout_is_no_traceback(self, tmp_path, stub_bin, args):
        stub_bin("systemctl", "echo inactive")
        done = subprocess.run(
            ["sh", "-c", 'exec "$@" >&-', "sh", sys.executable, "-m", "provider_rke2", *args, "--stylus-root", str(tmp_path / "root")],
            capture_output=True, text=True, cwd=ROOT, timeout=60, env={**os.environ, "PATH": stub_bin.path},
        )  # fmt: skip
        assert done.returncode == 0 and "Traceback" not in done.stderr, done.stderr


class TestSmallerDefects:
    """Issue 26, class 6: each once a real defect."""

    def test_a_lone_surrogate_in_a_record_is_written_and_read_back(self, tmp_path):
        from provider_rke2.machine import eventlog

        path = str(tmp_path / "log" / "events.jsonl")
        entry = eventlog.record(eventlog.ERROR, "cluster.role: '\udc80' is not one of init")
        eventlog.append(path, entry, str(tmp_path / "no-journal"))
        assert eventlog.read_events(path)[0]["message"] == entry["message"]
        assert b"\\udc80" in eventlog.journal_message(entry)

    @pytest.mark.parametrize(
        "config, shown",
        [
            ("token: !SECRETTOKEN1234 x\n", "for the tag '<16 characters, not shown>'"),
            ("token: *SECRETTOKEN5678\n", "found undefined alias '<15 characters, not shown>'"),
        ],
    )
    def test_a_token_in_a_yaml_error_reaches_no_log(self, tmp_path, config, shown):
        payload = boot_payload(tmp_path, config=config)
        answer, _, _ = provider("agent.boot", payload, tmp_path / "root")
        assert answer["state"] == "error" and shown in answer["error"]
        logs = tmp_path / "root/var/log/provider-rke2"
        for text in [json.dumps(answer), *(p.read_text() for p in logs.iterdir())]:
            assert "SECRETTOKEN" not in text

    def test_a_cloud_config_tag_holding_a_token_is_not_quoted_either(self, tmp_path):
        text = "#cloud-config\ncluster:\n  role: init\n  cluster_token: !K10abcdef0123456789::server:pass\n"
        answer, _, _ = provider("agent.boot", {"config": text}, tmp_path / "root")
        assert answer["state"] == "error" and "K10abcdef" not in json.dumps(answer)

    def test_an_env_name_holding_credentials_is_never_echoed(self, tmp_path):
        payload = boot_payload(tmp_path, env={"http://u:SECRETPASS99@proxy.lan": "x"})
        answer, _, _ = provider("agent.boot", payload, tmp_path / "root")
        assert "cluster.env.http://u:<redacted>@proxy.lan: ignored" in answer["log"]
        assert "SECRETPASS99" not in (tmp_path / "root/var/log/provider-rke2/provider-rke2.log").read_text()

    @pytest.mark.parametrize("recorded", ["/usr", "/", "/var/lib"])
    def test_paths_env_refuses_a_recorded_data_dir_a_reset_would_wreck(self, tmp_path, recorded):
        state = tmp_path / "root/var/lib/provider-rke2"
        state.mkdir(parents=True)
        (state / "data-dir").write_text(recorded + "\n")
        done = subprocess.run(
            [sys.executable, "-m", "provider_rke2", "paths", "--env", "--stylus-root", str(tmp_path / "root")],
            capture_output=True, text=True, cwd=ROOT, timeout=60,
        )  # fmt: skip
        assert done.returncode == 1 and done.stdout == ""
        assert f"RKE2_DATA_DIR is '{recorded}': a reset would act on a system directory" in done.stderr

    def test_a_laid_paths_file_naming_a_system_directory_is_refused_too(self, tmp_path):
        scripts = Paths(str(tmp_path / "root")).scripts_env
        Path(scripts).parent.mkdir(parents=True)
        Path(scripts).write_text("RKE2_DATA_DIR=/usr\nRKE2_KUBELET_DIR=/x/kubelet\n")
        done = subprocess.run(
            [sys.executable, "-m", "provider_rke2", "paths", "--env", "--stylus-root", str(tmp_path / "root")],
            capture_output=True, text=True, cwd=ROOT, timeout=60,
        )  # fmt: skip
        assert done.returncode == 1 and "RKE2_DATA_DIR is '/usr'" in done.stderr

    def test_a_sender_that_never_closes_stdin_gets_an_answer(self, tmp_path):
        program = "import sys\nfrom provider_rke2 import cli\ncli.STDIN_DEADLINE = 2.0\nsys.exit(cli.main(['agent.boot']))"
        process = subprocess.Popen(
            [sys.executable, "-c", program], stdin=subprocess.PIPE, stdout=subprocess.PIPE, cwd=ROOT,
            env={**os.environ, "STYLUS_ROOT": str(tmp_path / "root")},
        )  # fmt: skip
        start = time.monotonic()
        process.stdin.write(b'{"name": "agent.boot", "data": ')
        process.stdin.flush()  # and never closed
        try:
            import select

            assert select.select([process.stdout], [], [], 10)[0], "no answer within 10 s"
            answer = json.loads(process.stdout.readline())
        finally:
            process.kill()
            process.wait()
            process.stdin.close()
        assert time.monotonic() - start < 10
        assert answer["state"] == "error"
        assert answer["error"] == "no whole event on stdin within 2 s: the sender never closed it"
