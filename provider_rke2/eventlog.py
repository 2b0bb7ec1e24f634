"""The machine-readable event log the fleet manager tails, and its copy in the journal.

One JSON object per line in <root>/var/log/provider-rke2/events.jsonl (schema:
event.schema.json). Records are built here, pure; writing them is the node's
(append_record: one O_APPEND write each, rotated at LOG_LIMIT).
"""

from __future__ import annotations

import json
import time
from typing import Any, Dict, Optional

from provider_rke2 import __version__

CONFIG_UPDATED = "config_updated"
RKE2_STARTED = "rke2_started"
RKE2_RESTARTED = "rke2_restarted"
CLUSTER_READY = "cluster_ready"
CLUSTER_RESET = "cluster_reset"
DATA_DIR_KEPT = "data_dir_kept"
RKE2_UPGRADED = "rke2_upgraded"
RKE2_ROLLED_BACK = "rke2_rolled_back"
ERROR = "error"
TYPES = (
    CONFIG_UPDATED,
    RKE2_STARTED,
    RKE2_RESTARTED,
    CLUSTER_READY,
    CLUSTER_RESET,
    DATA_DIR_KEPT,
    RKE2_UPGRADED,
    RKE2_ROLLED_BACK,
    ERROR,
)

JOURNAL_SOCKET = "/run/systemd/journal/socket"
IDENTIFIER = "provider-rke2"


def now() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())


def record(
    kind: str,
    message: str,
    role: str = "",
    event: str = "",
    at: Optional[str] = None,
    upgrade: Optional[Dict[str, Any]] = None,
) -> Dict[str, Any]:
    entry: Dict[str, Any] = {
        "type": kind,
        "message": message,
        "time": at or now(),
        "provider_version": __version__,
    }
    if role in ("init", "controlplane", "worker"):
        entry["role"] = role
    if event:
        entry["event"] = event
    if upgrade:  # from, to, took_seconds, snapshot, why, probe: for the fleet manager
        entry["upgrade"] = upgrade
    return entry


def line(entry: Dict[str, Any]) -> bytes:
    return (json.dumps(entry, ensure_ascii=False, separators=(",", ":")) + "\n").encode("utf-8")


def journal_message(entry: Dict[str, Any]) -> bytes:
    """journald's native protocol: KEY=value lines, a length-prefixed value where it has newlines."""
    fields = {
        "MESSAGE": f"{entry['type']}: {entry['message']}",
        "PRIORITY": "3" if entry["type"] == ERROR else "6",
        "SYSLOG_IDENTIFIER": IDENTIFIER,
        "PROVIDER_RKE2_EVENT": entry["type"],
        "PROVIDER_RKE2_VERSION": entry["provider_version"],
    }
    if "role" in entry:
        fields["PROVIDER_RKE2_ROLE"] = entry["role"]
    out = b""
    for key, value in fields.items():
        data = value.encode("utf-8")
        if b"\n" in data:
            out += key.encode() + b"\n" + len(data).to_bytes(8, "little") + data + b"\n"
        else:
            out += key.encode() + b"=" + data + b"\n"
    return out
