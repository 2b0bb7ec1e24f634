"""`wait-ready`: is RKE2 up on this node, as seen from the node itself? The probes, the
bounded wait, and the watcher that records what the boot stage did and the outcome.

Ready means the kubelet's health endpoint on the loopback answers `ok` (every
role runs a kubelet) and, on server roles, RKE2's supervisor answers `pong`
over TLS signed by the cluster's own CA. Polled with a short back-off, for a
bounded time; the watcher runs as its own transient systemd unit, never inside
the boot stage.
"""

from __future__ import annotations

import signal
import threading
import time
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any, Callable, Iterator, List, Optional, TextIO, Tuple

from provider_rke2.core.record import record
from provider_rke2.machine import eventlog

if TYPE_CHECKING:
    from provider_rke2.core.paths import Paths
    from provider_rke2.machine import Machine

KUBELET_HEALTHZ = "http://127.0.0.1:10248/healthz"
SUPERVISOR_PING = "https://127.0.0.1:9345/ping"

# A probe gets the seconds it may take at most, and answers (passed, what it saw).
Probe = Callable[[float], Tuple[bool, str]]


@record
class Outcome:
    """How a wait for readiness ended."""

    ready: bool
    waited: float
    detail: str


def wait(
    probes: List[Probe],
    timeout: float,
    max_interval: float = 15.0,
    sleep: Callable[[float], None] = time.sleep,
    clock: Callable[[], float] = time.monotonic,
    progress: Optional[Callable[[float, str], None]] = None,
) -> Outcome:
    """Poll every probe until all pass or `timeout` seconds have gone; back-off 1 s doubling
    to max. One deadline for everything: each probe may take only what is left of it.
    `progress` hears (seconds waited, what the round saw) after each round that failed."""
    start = clock()
    deadline = start + timeout
    interval = 1.0
    detail = ""
    while True:
        if detail and clock() >= deadline:  # out of time: what the last round saw
            return Outcome(False, clock() - start, detail)
        results = [probe(max(0.0, deadline - clock())) for probe in probes]
        detail = "; ".join(text for _, text in results)
        if all(ok for ok, _ in results):
            return Outcome(True, clock() - start, detail)
        remaining = deadline - clock()
        if remaining <= 0:
            return Outcome(False, clock() - start, detail)
        if progress:
            progress(clock() - start, detail)
        sleep(min(interval, remaining))
        interval = min(interval * 2, max_interval)


class _Expired(Exception):
    pass


@contextmanager
def _at_most(seconds: float) -> Iterator[None]:
    """Interrupt whatever runs inside after `seconds`, even a read that gets a byte at a time
    (a socket timeout bounds each read, not the answer). Main thread only: elsewhere only the
    socket timeout holds."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def expire(signum: int, frame: object) -> None:
        raise _Expired()

    previous = signal.signal(signal.SIGALRM, expire)
    signal.setitimer(signal.ITIMER_REAL, max(seconds, 0.001))
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


def checks(
    server: bool, ca_file: str, kubelet_url: str = "", supervisor_url: str = ""
) -> List[Tuple[str, str, str]]:
    """What "ready" asks of this node: (url, expected answer, CA file or "")."""
    found = [(kubelet_url or KUBELET_HEALTHZ, "ok", "")]
    if server:
        found.append((supervisor_url or SUPERVISOR_PING, "pong", ca_file))
    return found


def probes(found: List[Tuple[str, str, str]]) -> List[Probe]:
    return [http_probe(url, expect, ca_file=ca or None) for url, expect, ca in found]


def http_probe(url: str, expect: str, ca_file: Optional[str] = None, timeout: float = 5.0) -> Probe:
    """A probe that passes when `url` answers 200 with body `expect`: asked directly (no proxy,
    ever: loopback), never redirected (a redirect is not RKE2's answer), and on this node's
    loopback only when root's process answers (any user may listen on the kubelet's port
    while the kubelet is down). A `file://` URL is read as a file (a test's stand-in).

    The CA is read at each attempt: on a server it appears only once RKE2 has started.
    """
    from urllib.parse import urlsplit

    from provider_rke2.core.errors import Terminated

    parts = urlsplit(url)

    def probe(budget: float) -> Tuple[bool, str]:
        limit = min(timeout, budget)
        if limit <= 0:
            return False, f"{url}: no time left to ask"
        try:
            with _at_most(limit):
                body = _file(parts.path) if parts.scheme == "file" else _ask(parts, ca_file, limit)
        except _Expired:
            return False, f"{url}: no whole answer within {limit:.1f} s"
        except Terminated:
            raise  # the provider is told to stop: not an answer of the node's
        except _NotReady as err:
            return False, f"{url}: {err}"
        except Exception as err:  # noqa: BLE001 - any failure means "not ready yet"
            return False, f"{url}: {_why(err)}"
        return (body == expect), f"{url}: {body!r}"

    return probe


class _NotReady(Exception):
    """What a probe saw, in words, that is not readiness."""


def _file(path: str) -> str:
    from provider_rke2.machine.fsio import read_regular

    return read_regular(path, 256, follow=True).decode("utf-8", errors="replace").strip()


def _ask(parts: Any, ca_file: Optional[str], limit: float) -> str:
    """The body of a GET of `parts` (a split URL), once the answering end is known to be root's."""
    import http.client

    if parts.scheme == "https":
        connection: http.client.HTTPConnection = http.client.HTTPSConnection(
            parts.hostname or "", parts.port, timeout=limit, context=_tls(ca_file)
        )
    elif parts.scheme == "http":
        connection = http.client.HTTPConnection(parts.hostname or "", parts.port, timeout=limit)
    else:
        raise _NotReady("not an http, https or file URL")
    try:
        connection.connect()
        uid = _answering_uid(connection.sock)
        if uid is not None and uid != 0:
            raise _NotReady(f"answered by a process of uid {uid}, not root's: not RKE2")
        connection.request("GET", parts.path or "/", headers={"Connection": "close"})
        answer = connection.getresponse()
        if answer.status != 200:
            where = answer.getheader("Location", "")[:200]
            moved = f" to {where!r}, not followed" if 300 <= answer.status < 400 else ""
            raise _NotReady(f"HTTP {answer.status}{moved}")
        return answer.read(256).decode("utf-8", errors="replace").strip()
    finally:
        connection.close()


def _tls(ca_file: Optional[str]) -> Any:
    """TLS that trusts the cluster's CA alone, read as a regular file (never a FIFO's wait)."""
    import ssl

    from provider_rke2.machine.fsio import read_regular

    if not ca_file:
        return ssl.create_default_context()
    try:
        pem = read_regular(ca_file, 1 << 20, follow=True).decode("ascii")
    except FileNotFoundError:
        raise _NotReady(f"waiting for the cluster CA at {ca_file}") from None
    except (OSError, UnicodeDecodeError) as err:
        raise _NotReady(f"cannot use the cluster CA at {ca_file}: {_why(err)}") from None
    try:
        return ssl.create_default_context(cadata=pem)
    except (ssl.SSLError, ValueError) as err:
        raise _NotReady(f"cannot use the cluster CA at {ca_file}: {err}") from None


def _answering_uid(sock: Any) -> Optional[int]:
    """Whose socket answered, when the other end is on this node's loopback (the kernel's
    socket table lists both ends of a local connection, each with its owner); None when the
    other end is elsewhere. A loopback peer the table does not list is nobody's to trust."""
    import socket

    peer, mine = sock.getpeername()[:2], sock.getsockname()[:2]
    if sock.family == socket.AF_INET6:
        packed = socket.inet_pton(socket.AF_INET6, peer[0])
        mapped = packed[:12] == bytes(10) + b"\xff\xff"  # ::ffff:127.0.0.1
        loopback = packed == bytes(15) + b"\1" or (mapped and packed[12] == 127)
        table = "/proc/net/tcp6"
    else:
        loopback, table = peer[0].startswith("127."), "/proc/net/tcp"
    if not loopback:
        return None
    local, remote = _kernel_form(sock.family, *peer), _kernel_form(sock.family, *mine)
    try:
        with open(table, encoding="ascii", errors="replace") as handle:
            for line in handle:
                fields = line.split()
                if len(fields) > 7 and fields[1] == local and fields[2] == remote:
                    return int(fields[7])
    except (OSError, ValueError):
        pass
    raise _NotReady(f"cannot tell whose process answered ({table} does not list it)")


def _kernel_form(family: int, address: str, port: int) -> str:
    """An address as /proc/net/tcp{,6} prints it: 32-bit words in host order, in hex."""
    import socket
    import sys

    packed = socket.inet_pton(family, address)
    words = (int.from_bytes(packed[i : i + 4], sys.byteorder) for i in range(0, len(packed), 4))
    return "".join(f"{word:08X}" for word in words) + f":{port:04X}"


def _why(err: Exception) -> str:
    """A failed probe in words: "connection refused", not "[Errno 111] Connection refused"."""
    reason = getattr(err, "reason", None) or err
    if isinstance(reason, OSError) and reason.strerror:
        return reason.strerror[:1].lower() + reason.strerror[1:]
    return str(reason)


# --- the watcher: `wait-ready` as the boot stage's transient unit runs it ----------------

# What the boot stage did (--after), and the event it is recorded as.
_AFTER = {
    "started": (eventlog.RKE2_STARTED, "the boot stage started {unit}"),
    "restarted": (eventlog.RKE2_RESTARTED, "the boot stage restarted {unit}: its configuration changed"),
    "deferred": (
        eventlog.RKE2_RESTART_DEFERRED,
        "the configuration of {unit} changed while it was still starting: it is restarted once it is ready,"
        " never in the middle of its start (a first server may be bootstrapping etcd)",
    ),
    "failed": (eventlog.ERROR, "the boot stage could not start {unit} (see `journalctl -u {unit}`)"),
}
# How often the watcher asks systemd whether a ready unit has finished starting.
_ACTIVE_POLL = 2.0
# How often a wait says, at a terminal, what it is still waiting for.
PROGRESS_EVERY = 15.0


def progress_at(stream: Any, every: float = PROGRESS_EVERY) -> Optional[Callable[[float, str], None]]:
    """A `progress` for `wait` that tells a person at `stream` (a terminal) what it still
    waits for, every `every` seconds; None where nobody watches (the watcher's unit, a pipe)."""
    try:
        if not stream.isatty():
            return None
    except (AttributeError, OSError, ValueError):
        return None
    said = [0.0]

    def progress(waited: float, detail: str) -> None:
        if waited - said[0] >= every:
            said[0] = waited
            stream.write(f"waiting for RKE2 ({waited:.0f} s so far): {detail}\n")
            stream.flush()

    return progress


def wait_ready(options: Any, node: Machine, stderr: TextIO, stdout: Optional[TextIO] = None) -> int:
    """0 when RKE2 became ready within the bound (a restart the boot stage left pending
    applied once it was), 1 when it did not."""
    from provider_rke2.core.errors import ProviderError
    from provider_rke2.core.paths import Paths, server_ca, unit_for

    root = node.stylus_root()
    paths = Paths(root.path)
    unit = unit_for(options.role)
    deadline = time.monotonic() + options.timeout

    watcher = bool(options.after)  # the readiness watcher; by hand, nothing is recorded or changed

    def emit(kind: str, message: str) -> None:
        if not watcher:
            return
        try:
            node.emit(paths.events_log, eventlog.record(kind, message, options.role, "wait-ready"))
        except ProviderError as err:
            stderr.write(f"wait-ready: event lost: {kind} ({err})\n")

    if options.after in _AFTER:
        kind, text = _AFTER[options.after]
        emit(kind, text.format(unit=unit))
    ca = server_ca(options.data_dir or paths.data_dir)
    found = checks(options.role != "worker", ca, options.kubelet_url or "", options.supervisor_url or "")
    out = stdout or stderr
    while True:
        outcome = wait(
            probes(found),
            max(0.0, deadline - time.monotonic()),
            options.max_interval,
            progress=progress_at(stderr),
        )
        if not outcome.ready:
            message = f"RKE2 was not ready after {options.timeout:.0f} s: {outcome.detail}"
            emit(eventlog.ERROR, message)
            out.write(f"not ready: {message}\n")
            return 1
        message = f"RKE2 is ready on this node after {outcome.waited:.0f} s ({outcome.detail})"
        emit(eventlog.CLUSTER_READY, message)
        out.write(f"ready: {message}\n")
        if not watcher:
            return 0
        applied = _apply_pending(paths, node, unit, deadline, min(_ACTIVE_POLL, options.max_interval))
        if applied is None:
            return 0
        kind, message = applied
        emit(kind, message)
        out.write(f"{'restarted' if kind != eventlog.ERROR else 'not restarted'}: {message}\n")
        if kind == eventlog.ERROR:
            return 1


def _apply_pending(
    paths: Paths, node: Machine, unit: str, deadline: float, poll: float
) -> Optional[Tuple[str, str]]:
    """The restart a boot left pending while the unit was starting, done once the unit is
    active: (event type, message), or None when nothing was pending.

    The node's lock is taken only around reading and recording (so that no upgrade runs
    meanwhile, and a boot is never kept waiting for RKE2 to start again); the restart itself
    blocks until RKE2 is up again, bounded by the watcher's deadline. A boot that leaves
    another change pending meanwhile keeps it: only the fingerprint applied is forgotten."""
    from provider_rke2.core.errors import ProviderError

    wanted = node.read_state(paths.restart_pending)
    if not wanted:
        return None
    if node.read_state(paths.started_stamp) == wanted:  # applied meanwhile (a later boot's restart)
        _forget(node, paths.restart_pending, wanted)
        return None
    while True:
        code, state = node.systemctl("is-active", unit)
        state = state.strip()
        if state == "active":
            break
        if state not in ("activating", "reloading") or time.monotonic() + poll > deadline:
            return eventlog.ERROR, (
                f"the pending restart of {unit} was not done: the unit is {state or 'unknown'}, not active;"
                " the next boot applies the configuration"
            )
        time.sleep(poll)
    try:
        with node.lock(paths.lock_file, min(30.0, max(0.0, deadline - time.monotonic())), "wait-ready"):
            wanted = node.read_state(paths.restart_pending) or wanted
        # A restart systemd has queued goes on if the watcher's time runs out.
        code, output = node.systemctl("restart", unit, timeout=max(1.0, deadline - time.monotonic()))
        if code != 0:
            return eventlog.ERROR, f"the pending restart of {unit} failed: {output or f'status {code}'}"
        with node.lock(paths.lock_file, 30.0, "wait-ready"):
            node.write_state(paths.started_stamp, wanted)
            _forget(node, paths.restart_pending, wanted)
    except ProviderError as err:
        return eventlog.ERROR, f"the pending restart of {unit} was not done: {err}; the next boot applies it"
    return eventlog.RKE2_RESTARTED, (
        f"the readiness watcher restarted {unit} once it was ready:"
        " its configuration changed while it was starting"
    )


def _forget(node: Machine, path: str, applied: str) -> None:
    """Remove the pending restart, unless a boot has left another one there meanwhile."""
    from provider_rke2.core.errors import ProviderError

    if node.read_state(path) != applied:
        return
    try:
        node.remove_file(path)
    except ProviderError:
        pass  # a stale pending restart is harmless: the stamp already matches it
