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

from provider_rke2 import fsio
from provider_rke2.errors import ConfigError, OutputError
from provider_rke2.node import LocalNode
from provider_rke2.paths import Paths
from provider_rke2.render import render
from provider_rke2.root import FROM_ENVIRON, Root

from conftest import ROOT, cloud_config

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
        from provider_rke2 import stages

        paths = Paths(str(tmp_path / "root"))
        os.makedirs(paths.state_dir, mode=0o700)
        target = planted_target(tmp_path)
        os.symlink(target, paths.started_stamp + ".tmp")  # where the old step wrote with `>`
        os.symlink(target, paths.started_stamp)
        stub_bin("systemctl", '[ "$1" = is-active ] && echo inactive; exit 0')
        stub_bin("systemd-run", "exit 0")
        step = stages.start_service(
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
        from provider_rke2 import stages

        paths = Paths(str(tmp_path / "root"))
        os.makedirs(paths.started_stamp)
        stub_bin("systemctl", '[ "$1" = is-active ] && echo inactive; exit 0')
        stub_bin("systemd-run", "exit 0")
        step = stages.start_service("rke2-server.service", paths, "f" * 64, "/x/w")
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
        from provider_rke2.imagebuild import InstallError, InstallRequest, install

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
        from provider_rke2 import eventlog

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
        from provider_rke2 import rke2check

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
