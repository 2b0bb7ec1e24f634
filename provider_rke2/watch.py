"""The readiness watcher behind `wait-ready`: records what the boot stage did, waits, records the outcome."""

from __future__ import annotations

from typing import Any, Optional, TextIO

from provider_rke2 import eventlog
from provider_rke2.errors import ProviderError
from provider_rke2.paths import Paths
from provider_rke2.readiness import KUBELET_HEALTHZ, SUPERVISOR_PING, http_probe, wait

_AFTER = {
    "started": (eventlog.RKE2_STARTED, "the boot stage started {unit}"),
    "restarted": (eventlog.RKE2_RESTARTED, "the boot stage restarted {unit}: its configuration changed"),
    "failed": (eventlog.ERROR, "the boot stage could not start {unit} (see `journalctl -u {unit}`)"),
}


def wait_ready(options: Any, node: Any, stderr: TextIO, stdout: Optional[TextIO] = None) -> int:
    """0 when RKE2 became ready within the bound, 1 when it did not."""
    root = node.stylus_root()
    paths = Paths(root.path)
    unit = "rke2-agent.service" if options.role == "worker" else "rke2-server.service"

    def emit(kind: str, message: str) -> None:
        try:
            node.emit(paths.events_log, eventlog.record(kind, message, options.role, "wait-ready"))
        except ProviderError as err:
            stderr.write(f"wait-ready: event lost: {kind} ({err})\n")

    if options.after in _AFTER:
        kind, text = _AFTER[options.after]
        emit(kind, text.format(unit=unit))
    probes = [http_probe(options.kubelet_url or KUBELET_HEALTHZ, "ok")]
    if options.role != "worker":
        ca = (options.data_dir or paths.data_dir).rstrip("/") + "/server/tls/server-ca.crt"
        probes.append(http_probe(options.supervisor_url or SUPERVISOR_PING, "pong", ca_file=ca))
    outcome = wait(probes, options.timeout, options.max_interval)
    out = stdout or stderr
    if outcome.ready:
        message = f"RKE2 is ready on this node after {outcome.waited:.0f} s ({outcome.detail})"
        emit(eventlog.CLUSTER_READY, message)
        out.write(f"ready: {message}\n")
        return 0
    message = f"RKE2 was not ready after {options.timeout:.0f} s: {outcome.detail}"
    emit(eventlog.ERROR, message)
    out.write(f"not ready: {message}\n")
    return 1
