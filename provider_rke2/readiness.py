"""`wait-ready`: is RKE2 up on this node, as seen from the node itself?

Ready means the kubelet's health endpoint on the loopback answers `ok` (every
role runs a kubelet) and, on server roles, RKE2's supervisor answers `pong`
over TLS signed by the cluster's own CA. Polled with a short back-off, for a
bounded time; the watcher runs as its own transient systemd unit, never inside
the boot stage.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Callable, List, Optional, Tuple

KUBELET_HEALTHZ = "http://127.0.0.1:10248/healthz"
SUPERVISOR_PING = "https://127.0.0.1:9345/ping"

Probe = Callable[[], Tuple[bool, str]]


@dataclass(frozen=True)
class Outcome:
    ready: bool
    waited: float
    detail: str


def wait(
    probes: List[Probe],
    timeout: float,
    max_interval: float = 15.0,
    sleep: Callable[[float], None] = time.sleep,
    clock: Callable[[], float] = time.monotonic,
) -> Outcome:
    """Poll every probe until all pass or `timeout` seconds have gone; back-off 1 s doubling to max."""
    start = clock()
    interval = 1.0
    while True:
        results = [probe() for probe in probes]
        detail = "; ".join(text for _, text in results)
        if all(ok for ok, _ in results):
            return Outcome(True, clock() - start, detail)
        remaining = timeout - (clock() - start)
        if remaining <= 0:
            return Outcome(False, clock() - start, detail)
        sleep(min(interval, remaining))
        interval = min(interval * 2, max_interval)


def http_probe(url: str, expect: str, ca_file: Optional[str] = None, timeout: float = 5.0) -> Probe:
    """A probe that passes when `url` answers 200 with body `expect` (no proxy, ever: loopback).

    The CA is read at each attempt: on a server it appears only once RKE2 has started.
    """
    import os
    import ssl
    import urllib.request

    def probe() -> Tuple[bool, str]:
        handlers: list = [urllib.request.ProxyHandler({})]
        if ca_file:
            if not os.path.exists(ca_file):
                return False, f"{url}: waiting for the cluster CA at {ca_file}"
            try:
                handlers.append(
                    urllib.request.HTTPSHandler(context=ssl.create_default_context(cafile=ca_file))
                )
            except (OSError, ssl.SSLError) as err:
                return False, f"{url}: cannot use the cluster CA at {ca_file}: {err}"
        try:
            with urllib.request.build_opener(*handlers).open(url, timeout=timeout) as answer:
                body = answer.read(256).decode("utf-8", errors="replace").strip()
        except Exception as err:  # noqa: BLE001 - any failure means "not ready yet"
            return False, f"{url}: {getattr(err, 'reason', None) or err}"
        return (body == expect), f"{url}: {body!r}"

    return probe
