"""The readiness watcher behind `wait-ready`: records what the boot stage did, waits, records the outcome."""

from __future__ import annotations

from typing import Any, Optional, TextIO

from provider_rke2 import eventlog
from provider_rke2.errors import ProviderError
from provider_rke2.paths import Paths, server_ca, unit_for
from provider_rke2.readiness import checks, probes, wait

_AFTER = {
    "started": (eventlog.RKE2_STARTED, "the boot stage started {unit}"),
    "restarted": (eventlog.RKE2_RESTARTED, "the boot stage restarted {unit}: its configuration changed"),
    "failed": (eventlog.ERROR, "the boot stage could not start {unit} (see `journalctl -u {unit}`)"),
}


def wait_ready(options: Any, node: Any, stderr: TextIO, stdout: Optional[TextIO] = None) -> int:
    """0 when RKE2 became ready within the bound, 1 when it did not."""
    root = node.stylus_root()
    paths = Paths(root.path)
    unit = unit_for(options.role)

    def emit(kind: str, message: str) -> None:
        try:
            node.emit(paths.events_log, eventlog.record(kind, message, options.role, "wait-ready"))
        except ProviderError as err:
            stderr.write(f"wait-ready: event lost: {kind} ({err})\n")

    if options.after in _AFTER:
        kind, text = _AFTER[options.after]
        emit(kind, text.format(unit=unit))
    ca = server_ca(options.data_dir or paths.data_dir)
    found = checks(options.role != "worker", ca, options.kubelet_url or "", options.supervisor_url or "")
    outcome = wait(probes(found), options.timeout, options.max_interval)
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
