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
from provider_rke2.core.paths import ROLES
from provider_rke2.machine.fsio import append_record, open_regular

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
# How often a follower looks for new records: a writer at full speed rotates a 1 MiB log every
# 50 ms or so, and a follower misses a file only when three rotations pass between two looks.
POLL = 0.05
MAX_READ = 64 << 20  # bytes of a log read at once: a log grown past its limit by hand


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
    if role in ROLES:
        entry["role"] = role
    if event:
        entry["event"] = event
    if upgrade:  # from, to, took_seconds, snapshot, why, probe: for the fleet manager
        entry["upgrade"] = upgrade
    return entry


def line(entry: Dict[str, Any]) -> bytes:
    text = json.dumps(entry, ensure_ascii=False, separators=(",", ":")) + "\n"
    try:
        return text.encode("utf-8")
    except UnicodeEncodeError:  # a lone surrogate quoted from input: JSON's own escape for it
        return (json.dumps(entry, separators=(",", ":")) + "\n").encode("ascii")


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
        data = value.encode("utf-8", errors="backslashreplace")
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
    records, skipped, held = _read(path, final=True)
    if held is not None:
        held.close()
    return records, skipped


def read_and_follow(
    path: str, interval: float = POLL
) -> Tuple[List[Dict[str, Any]], int, Iterator[List[Dict[str, Any]]]]:
    """read_log, and then every record appended after what it read (follow), none twice."""
    records, skipped, held = _read(path)
    return records, skipped, follow(path, interval, held)


def _read(path: str, final: bool = False) -> Tuple[List[Dict[str, Any]], int, Optional[_Held]]:
    held = _Held.open(path)  # first: what is appended from here on is the follower's to read
    records: List[Dict[str, Any]] = []
    older = _Held.open(path + ".1")
    if older is not None:
        if held is None or older.inode != held.inode:  # (rotated meanwhile: the held file is it)
            records += older.records(final=True)
        older.close()
    if held is not None:
        records += held.records(final)
    skipped = (older.skipped if older else 0) + (held.skipped if held else 0)
    return records, skipped, held


def _parse(line: str) -> Optional[Dict[str, Any]]:
    """A record, or None for a line that is not one this provider could have written: a
    reader of a log anyone with root once appended to takes nothing else (a `type` that is
    a list, JSON nested past what a parser takes, NaN, which no JSON reader would read back)."""
    try:
        record = json.loads(line, parse_constant=_not_json)
    except (ValueError, RecursionError):
        return None
    if not (isinstance(record, dict) and isinstance(record.get("type"), str)):
        return None
    return record


def _not_json(constant: str) -> Any:
    raise ValueError(f"{constant} is not JSON")


def follow(path: str, interval: float = POLL, held: Optional[_Held] = None) -> Iterator[List[Dict[str, Any]]]:
    """Records as they are appended after `held` (else after the end of the file now), every
    one of them: across rotations (the file held open is read to its end before the next one,
    and one rotated in between), a truncation (`: > events.jsonl` reads again from its start)
    and a record still being written (kept until its line ends)."""
    held = held or _Held.open(path, at_end=True)
    while True:
        batch = held.records() if held else []
        if batch:
            yield batch
        now = _inode(path)
        if held is not None and now == held.inode:
            time.sleep(interval)
            continue
        # Rotated, or made at last: once renamed, the held file gets no more records (writers
        # rotate under the lock, then write to the new file). Read it to its end, then a file
        # rotated in between, then the new one from its start.
        rest: List[Dict[str, Any]] = []
        if held is not None:
            rest = held.records(final=True)
            held.close()
            between = _Held.open(path + ".1")
            if between is not None:
                if between.inode not in (held.inode, now):
                    rest += between.records(final=True)
                between.close()
        if rest:
            yield rest
        held = _Held.open(path)
        if held is None:
            time.sleep(interval)


class _Held:
    """An event log held open, read by what was consumed (whole lines), never by its size."""

    def __init__(self, handle: Any) -> None:
        self.handle = handle
        self.inode = os.fstat(handle.fileno()).st_ino
        self.position = 0
        self.partial = b""
        self.skipped = 0

    @classmethod
    def open(cls, path: str, at_end: bool = False) -> Optional[_Held]:
        try:
            held = cls(open_regular(path))
        except OSError:
            return None
        if at_end:
            held.position = os.fstat(held.handle.fileno()).st_size
        return held

    def records(self, final: bool = False) -> List[Dict[str, Any]]:
        """The whole records appended since the last call; `final`: a last line without its end
        counts too (the file gets no more)."""
        fd = self.handle.fileno()
        size = os.fstat(fd).st_size
        if size < self.position:
            # Cut back: a torn record removed (only what was not yet a whole line), or the
            # file emptied by hand: its new records from the start.
            self.position = size if size >= self.position - len(self.partial) else 0
            self.partial = b""
        found: List[Dict[str, Any]] = []
        end = min(size, self.position + MAX_READ)  # the rest at the next call: memory stays bounded
        while self.position < end:
            data = os.pread(fd, min(end - self.position, 1 << 20), self.position)
            if not data:
                break
            self.position += len(data)
            lines = (self.partial + data).split(b"\n")
            self.partial = lines.pop()
            found += self._parsed(lines)
        if final and self.partial:
            found += self._parsed([self.partial])
            self.partial = b""
        return found

    def _parsed(self, lines: List[bytes]) -> List[Dict[str, Any]]:
        parsed = [_parse(line.decode("utf-8", errors="replace")) for line in lines if line.strip()]
        self.skipped += sum(1 for r in parsed if r is None)
        return [r for r in parsed if r]

    def close(self) -> None:
        self.handle.close()


def _inode(path: str) -> Optional[int]:
    try:
        return os.stat(path).st_ino
    except OSError:
        return None
