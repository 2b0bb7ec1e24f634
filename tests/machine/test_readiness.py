"""`wait-ready` against stand-ins on the loopback: a kubelet, and a supervisor serving TLS
signed by a cluster CA made for the test, as the readiness watcher meets them."""

import json
import os
import subprocess
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, HTTPServer

import pytest

from helpers import ROOT, cloud_config

# --- wait-ready against stand-ins on the loopback ----------------------------------------------------


class Kubelet(BaseHTTPRequestHandler):
    ready_after = 0  # requests answered "not ready" first
    seen = 0

    def do_GET(self):
        type(self).seen += 1
        body = b"ok" if type(self).seen > type(self).ready_after else b"[-]ping failed"
        self.send_response(200 if body == b"ok" else 500)
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


@pytest.fixture
def kubelet():
    handler = type("K", (Kubelet,), {"seen": 0, "ready_after": 0})
    server = HTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield handler, f"http://127.0.0.1:{server.server_port}/healthz"
    server.shutdown()


def wait_ready(tmp_path, url, timeout, *extra, role="worker"):
    """`wait-ready` as the watcher runs it (with --after: `unchanged` unless `extra` says)."""
    root = tmp_path / "root"
    extra = extra if "--after" in extra else ("--after", "unchanged", *extra)
    started = time.monotonic()
    result = subprocess.run(
        [sys.executable, "-m", "provider_rke2", "wait-ready", "--role", role, "--stylus-root", str(root),
         "--timeout", str(timeout), "--kubelet-url", url, "--max-interval", "0.2", *extra],
        capture_output=True, text=True, cwd=ROOT, timeout=60, env={**os.environ, "HTTP_PROXY": "http://10.255.255.1:9"},
    )  # fmt: skip
    log = root / "var/log/provider-rke2/events.jsonl"
    records = [json.loads(line) for line in log.read_text().splitlines()] if log.exists() else []
    return result.returncode, [r["type"] for r in records], records, time.monotonic() - started


def test_ready_at_once(tmp_path, kubelet):
    handler, url = kubelet
    code, types, records, _ = wait_ready(tmp_path, url, 5, "--after", "started")
    assert code == 0 and types == ["rke2_started", "cluster_ready"]
    assert records[1]["role"] == "worker" and "'ok'" in records[1]["message"]


def test_ready_after_a_delay(tmp_path, kubelet):
    handler, url = kubelet
    handler.ready_after = 3
    code, types, _, _ = wait_ready(tmp_path, url, 10, "--after", "restarted")
    assert code == 0 and types == ["rke2_restarted", "cluster_ready"]
    assert handler.seen == 4


def test_never_ready_is_an_error_after_the_bound(tmp_path, kubelet):
    handler, url = kubelet
    handler.ready_after = 10**6
    code, types, records, elapsed = wait_ready(tmp_path, url, 2, "--after", "unchanged")
    assert code == 1 and types == ["error"]
    assert records[0]["message"].startswith("RKE2 was not ready after 2 s:")
    assert 1.5 < elapsed < 20


def test_a_server_waits_for_its_cluster_ca(tmp_path, kubelet):
    code, types, records, _ = wait_ready(
        tmp_path, kubelet[1], 1, "--supervisor-url", "https://127.0.0.1:1/ping", role="init"
    )
    assert code == 1 and types == ["error"]
    assert "waiting for the cluster CA at" in records[0]["message"]


@pytest.fixture
def supervisor(tmp_path):
    """An HTTPS stand-in for RKE2's supervisor, its certificate signed by a throwaway cluster CA."""
    import ssl

    certs = tmp_path / "certs"
    certs.mkdir()

    def openssl(*args):
        subprocess.run(["openssl", *args], cwd=certs, check=True, capture_output=True)

    openssl(
        "req",
        "-x509",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-keyout",
        "ca.key",
        "-out",
        "ca.crt",
        "-days",
        "1",
        "-subj",
        "/CN=rke2-server-ca",
    )
    openssl(
        "req", "-newkey", "rsa:2048", "-nodes", "-keyout", "srv.key", "-out", "srv.csr", "-subj", "/CN=rke2"
    )
    (certs / "ext").write_text(
        "subjectAltName=IP:127.0.0.1\nauthorityKeyIdentifier=keyid\nkeyUsage=digitalSignature,keyEncipherment\nextendedKeyUsage=serverAuth\n"
    )
    openssl(
        "x509",
        "-req",
        "-in",
        "srv.csr",
        "-CA",
        "ca.crt",
        "-CAkey",
        "ca.key",
        "-CAcreateserial",
        "-out",
        "srv.crt",
        "-days",
        "1",
        "-extfile",
        "ext",
    )

    class Ping(BaseHTTPRequestHandler):
        def do_GET(self):
            self.send_response(200)
            self.end_headers()
            self.wfile.write(b"pong")

        def log_message(self, *args):
            pass

    server = HTTPServer(("127.0.0.1", 0), Ping)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(certs / "srv.crt", certs / "srv.key")
    server.socket = context.wrap_socket(server.socket, server_side=True)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield certs / "ca.crt", f"https://127.0.0.1:{server.server_port}/ping"
    server.shutdown()


def cluster_ca(tmp_path, pem):
    tls = tmp_path / "root/var/lib/rancher/rke2/server/tls"
    tls.mkdir(parents=True)
    (tls / "server-ca.crt").write_bytes(pem)


def test_a_server_is_ready_when_the_supervisor_answers_over_the_cluster_tls(tmp_path, kubelet, supervisor):
    ca, ping = supervisor
    cluster_ca(tmp_path, ca.read_bytes())
    code, types, records, _ = wait_ready(
        tmp_path, kubelet[1], 10, "--supervisor-url", ping, role="controlplane"
    )
    assert code == 0 and types == ["cluster_ready"]
    assert "'pong'" in records[0]["message"]


def test_a_supervisor_with_a_certificate_from_another_ca_is_not_ready(tmp_path, kubelet, supervisor):
    _, ping = supervisor
    other = tmp_path / "other-ca.crt"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", str(tmp_path / "o.key"),
         "-out", str(other), "-days", "1", "-subj", "/CN=another-ca"],
        check=True, capture_output=True,
    )  # fmt: skip
    cluster_ca(tmp_path, other.read_bytes())
    code, types, records, _ = wait_ready(tmp_path, kubelet[1], 1, "--supervisor-url", ping, role="init")
    assert code == 1 and types == ["error"]
    assert "CERTIFICATE_VERIFY_FAILED" in records[0]["message"]


def test_a_users_data_dir_is_where_the_watcher_finds_the_cluster_ca(tmp_path, kubelet, supervisor):
    ca, ping = supervisor
    data_dir = tmp_path / "data" / "rke2"
    (data_dir / "server/tls").mkdir(parents=True)
    (data_dir / "server/tls/server-ca.crt").write_bytes(ca.read_bytes())
    code, types, _, _ = wait_ready(
        tmp_path, kubelet[1], 10, "--supervisor-url", ping, "--data-dir", str(data_dir), role="init"
    )
    assert code == 0 and types == ["cluster_ready"]


def test_the_render_passes_the_users_data_dir_to_the_watcher():
    from provider_rke2.core.render import render

    text = render(cloud_config(role="init", config="data-dir: /data/rke2\n")).text
    assert "wait-ready --role init --stylus-root / --data-dir /data/rke2 --timeout 900" in text


# --- a restart the boot stage left pending while RKE2 was starting ----------------------------------


def pending_node(tmp_path, stub_bin, states, stamp="b" * 64, pending="c" * 64, restart_status=0):
    """A node whose boot left `pending` while the unit started; systemctl answers is-active
    with each of `states` in turn (the last one from then on)."""
    state = tmp_path / "root/var/lib/provider-rke2"
    state.mkdir(parents=True)
    (state / "started").write_text(stamp + "\n")
    if pending:
        (state / "restart-pending").write_text(pending + "\n")
    (tmp_path / "states").write_text("\n".join(states) + "\n")
    stub_bin(
        "systemctl",
        f'if [ "$1" = is-active ]; then s=$(head -n 1 {tmp_path}/states); echo "$s";'
        f' [ "$(wc -l < {tmp_path}/states)" -gt 1 ] && sed -i 1d {tmp_path}/states;'
        f' [ "$s" = active ]; exit; fi; exit {restart_status}',
    )
    return state


def test_a_pending_restart_is_done_once_the_unit_has_finished_starting(
    tmp_path, kubelet, stub_bin, monkeypatch
):
    monkeypatch.setenv("PATH", stub_bin.path)
    _, url = kubelet
    state = pending_node(tmp_path, stub_bin, ["activating", "activating", "active"])
    code, types, records, _ = wait_ready(tmp_path, url, 20, "--after", "deferred")
    assert code == 0, records
    assert types == ["rke2_restart_deferred", "cluster_ready", "rke2_restarted", "cluster_ready"]
    assert "restarted rke2-agent.service once it was ready" in records[2]["message"]
    # Only once the unit is active, a blocking restart (it returns when RKE2 is up again).
    assert stub_bin.calls() == ["systemctl is-active rke2-agent.service"] * 3 + [
        "systemctl restart rke2-agent.service"
    ]
    assert (state / "started").read_text() == "c" * 64 + "\n"
    assert not (state / "restart-pending").exists()


def test_a_watcher_with_nothing_pending_never_touches_the_unit(tmp_path, kubelet, stub_bin, monkeypatch):
    monkeypatch.setenv("PATH", stub_bin.path)
    _, url = kubelet
    pending_node(tmp_path, stub_bin, ["active"], pending="")
    code, types, _, _ = wait_ready(tmp_path, url, 5, "--after", "started")
    assert code == 0 and types == ["rke2_started", "cluster_ready"]
    assert stub_bin.calls() == []


def test_a_pending_restart_already_applied_by_a_later_boot_is_only_forgotten(
    tmp_path, kubelet, stub_bin, monkeypatch
):
    monkeypatch.setenv("PATH", stub_bin.path)
    _, url = kubelet
    state = pending_node(tmp_path, stub_bin, ["active"], stamp="c" * 64, pending="c" * 64)
    code, types, _, _ = wait_ready(tmp_path, url, 5, "--after", "unchanged")
    assert code == 0 and types == ["cluster_ready"]
    assert stub_bin.calls() == [] and not (state / "restart-pending").exists()


@pytest.mark.parametrize(
    ("states", "why"), [(["failed"], "the unit is failed"), (["activating"], "is activating")]
)
def test_a_pending_restart_that_cannot_be_done_is_an_error_and_stays_for_the_next_boot(
    tmp_path, kubelet, stub_bin, monkeypatch, states, why
):
    monkeypatch.setenv("PATH", stub_bin.path)
    _, url = kubelet
    state = pending_node(tmp_path, stub_bin, states)
    code, types, records, elapsed = wait_ready(tmp_path, url, 2, "--after", "deferred")
    assert code == 1 and types == ["rke2_restart_deferred", "cluster_ready", "error"]
    assert why in records[-1]["message"] and "the next boot applies" in records[-1]["message"]
    assert "systemctl restart rke2-agent.service" not in stub_bin.calls()
    assert (state / "restart-pending").read_text() == "c" * 64 + "\n"
    assert (state / "started").read_text() == "b" * 64 + "\n"
    assert elapsed < 20


def test_a_failed_pending_restart_is_an_error_and_keeps_the_old_stamp(
    tmp_path, kubelet, stub_bin, monkeypatch
):
    monkeypatch.setenv("PATH", stub_bin.path)
    _, url = kubelet
    state = pending_node(tmp_path, stub_bin, ["active"], restart_status=1)
    code, types, records, _ = wait_ready(tmp_path, url, 5, "--after", "deferred")
    assert code == 1 and types[-1] == "error" and "failed" in records[-1]["message"]
    assert (state / "started").read_text() == "b" * 64 + "\n"
    assert (state / "restart-pending").exists()


def test_a_boot_during_the_restart_is_not_kept_waiting_and_its_change_is_applied_next(
    tmp_path, kubelet, stub_bin, monkeypatch
):
    """The lock is not held while RKE2 restarts: a boot (here: taking the node's lock at once)
    goes ahead, and the change it leaves pending meanwhile is applied by a second restart."""
    monkeypatch.setenv("PATH", stub_bin.path)
    _, url = kubelet
    state = pending_node(tmp_path, stub_bin, ["active"])
    lock = state / "lock"  # Paths.lock_file
    grab = (
        f"{sys.executable} -c 'from provider_rke2.machine.fsio import node_lock\n"
        f'with node_lock("{lock}", 0, "agent.boot"): print("boot went ahead")\' >> {tmp_path}/boot.txt 2>&1'
    )
    stub_bin(
        "systemctl",
        f'if [ "$1" = is-active ]; then echo active; exit 0; fi\n'
        f"if [ ! -f {tmp_path}/booted ]; then touch {tmp_path}/booted; cd {ROOT} && {grab};"
        f" echo d{'d' * 63} > {state}/restart-pending; fi",
    )
    code, types, records, _ = wait_ready(tmp_path, url, 20, "--after", "deferred")
    assert code == 0, records
    assert types == [
        "rke2_restart_deferred",
        "cluster_ready",
        "rke2_restarted",
        "cluster_ready",
        "rke2_restarted",
        "cluster_ready",
    ]
    assert (tmp_path / "boot.txt").read_text() == "boot went ahead\n"
    assert (state / "started").read_text() == "d" * 64 + "\n"
    assert not (state / "restart-pending").exists()


def test_a_probe_says_why_in_words_not_an_errno():
    import socket

    from provider_rke2.machine.readiness import http_probe

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]  # bound, never listening: refused
        ok, detail = http_probe(f"http://127.0.0.1:{port}/healthz", "ok")(2)
    assert (ok, detail) == (False, f"http://127.0.0.1:{port}/healthz: connection refused")


def test_run_by_hand_it_only_prints_records_nothing_and_restarts_nothing(
    tmp_path, kubelet, stub_bin, monkeypatch
):
    """A person checking a node: no record in the log the fleet manager reads (an `error`
    there would be a false alarm), no pending restart done."""
    monkeypatch.setenv("PATH", stub_bin.path)
    _, url = kubelet
    state = pending_node(tmp_path, stub_bin, ["active"])
    root = tmp_path / "root"
    for timeout, expected in (("5", "ready: RKE2 is ready"), ("1", None)):
        result = subprocess.run(
            [sys.executable, "-m", "provider_rke2", "wait-ready", "--role", "worker", "--stylus-root", str(root),
             "--timeout", timeout, "--kubelet-url", url if expected else "http://127.0.0.1:1/healthz",
             "--max-interval", "0.2"],
            capture_output=True, text=True, cwd=ROOT, timeout=60,
        )  # fmt: skip
        assert result.returncode == (0 if expected else 1)
        assert result.stdout.startswith(expected or "not ready: RKE2 was not ready after 1 s")
    assert not (root / "var/log/provider-rke2/events.jsonl").exists()
    assert stub_bin.calls() == [] and (state / "restart-pending").exists()


def test_at_a_terminal_a_wait_says_what_it_still_waits_for():
    import io

    from provider_rke2.machine.readiness import progress_at, wait

    class Terminal(io.StringIO):
        def isatty(self):
            return True

    screen, now = Terminal(), [0.0]
    wait([lambda budget: (False, "http://k/healthz: connection refused")], 40, max_interval=5,
         sleep=lambda s: now.__setitem__(0, now[0] + s), clock=lambda: now[0],
         progress=progress_at(screen, every=15))  # fmt: skip
    lines = screen.getvalue().splitlines()
    assert (
        lines
        == [
            "waiting for RKE2 (17 s so far): http://k/healthz: connection refused",  # rounds at 0, 1, 3, 7, 12, 17 s
            "waiting for RKE2 (32 s so far): http://k/healthz: connection refused",
        ]
    )
    assert progress_at(io.StringIO()) is None, "nobody watches a pipe: nothing said"
