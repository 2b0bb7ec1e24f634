"""The machine-readable event log the fleet manager tails, and its copy in the journal.

One JSON object per line in <root>/var/log/provider-rke2/events.jsonl (schema:
event.schema.json): records built (pure), appended whole and rotated (fsio.append_record),
copied to journald, read back and followed across rotation. The node decides when.
"""

from __future__ import annotations

import json
import os
import time

from provider_rke2 import __version__
from provider_rke2.fsio import append_record, open_regular

TYPE_CHECKING = False  # typing costs milliseconds of every boot: annotations only
if TYPE_CHECKING:
    from typing import Any, Dict, Iterator, List, Optional, Tuple

CONFIG_UPDATED = "config_updated"
RKE2_STARTED = "rke2_started"
RKE2_RESTARTED = "rke2_restarted"
RKE2_RESTART_DEFERRED = "rke2_restart_deferred"
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
    RKE2_RESTART_DEFERRED,
    CLUSTER_READY,
    CLUSTER_RESET,
    DATA_DIR_KEPT,
    RKE2_UPGRADED,
    RKE2_ROLLED_BACK,
    ERROR,
)

JOURNAL_SOCKET = "/run/systemd/journal/socket"
IDENTIFIER = "provider-rke2"
LIMIT = 1024 * 1024  # bytes before a log (this one, provider-rke2.log) is rotated to .1


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


def append(path: str, entry: Dict[str, Any], journal_socket: str = JOURNAL_SOCKET) -> None:
    """One record onto the log (whole or not at all); a copy to the journal when there is one."""
    append_record(path, line(entry), LIMIT)
    if os.path.exists(journal_socket):
        import socket

        try:
            with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as journal:
                journal.sendto(journal_message(entry), journal_socket)
        except OSError:
            pass  # the journal's copy is best effort; the event log has the record


def read_events(path: str) -> List[Dict[str, Any]]:
    """Every record of the log and its rotated predecessor, oldest first; unreadable lines skipped."""
    return read_log(path)[0]


def read_log(path: str) -> Tuple[List[Dict[str, Any]], int]:
    """The records, and how many lines were skipped (torn by a full disk, or not a record)."""
    records: List[Dict[str, Any]] = []
    skipped = 0
    for name in (path + ".1", path):
        try:
            with open_regular(name) as handle:
                lines = handle.read(64 << 20).decode("utf-8", errors="replace").splitlines()
        except OSError:
            continue
        parsed = [_parse(line) for line in lines if line.strip()]
        records += [r for r in parsed if r]
        skipped += sum(1 for r in parsed if not r)
    return records, skipped


def _parse(line: str) -> Optional[Dict[str, Any]]:
    try:
        record = json.loads(line)
    except ValueError:
        return None
    return record if isinstance(record, dict) and "type" in record else None


def follow(path: str, interval: float = 0.5) -> Iterator[List[Dict[str, Any]]]:
    """New records as they are appended, across rotation (the file is renamed to .1)."""
    position = _size(path)
    inode = _inode(path)
    while True:
        time.sleep(interval)
        if _inode(path) != inode:  # rotated: finish the old file (now .1), then start the new one
            yield _read_from(path + ".1", position)
            inode, position = _inode(path), 0
        if _size(path) > position:
            batch = _read_from(path, position)
            position = _size(path)
            yield batch


def _read_from(path: str, offset: int) -> List[Dict[str, Any]]:
    try:
        with open_regular(path) as handle:
            handle.seek(offset)
            text = handle.read(64 << 20).decode("utf-8", errors="replace")
    except OSError:
        return []
    return [r for r in (_parse(line) for line in text.splitlines()) if r]


def _size(path: str) -> int:
    try:
        return os.stat(path).st_size
    except OSError:
        return 0


def _inode(path: str) -> Optional[int]:
    try:
        return os.stat(path).st_ino
    except OSError:
        return None
