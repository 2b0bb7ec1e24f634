"""`events` and `status`: the event log and the node's state, for operators."""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any, Dict, List, Optional, TextIO

from provider_rke2 import eventlog
from provider_rke2.errors import printable
from provider_rke2.fsio import open_regular
from provider_rke2.paths import Paths
from provider_rke2.root import Root
from provider_rke2.timespec import record_time


def selected(
    records: List[Dict[str, Any]], kind: Optional[str], since: Optional[datetime]
) -> List[Dict[str, Any]]:
    """Compared as instants: `--since` may carry any offset, records are UTC."""
    return [
        r
        for r in records
        if (not kind or r.get("type") == kind)
        and (since is None or record_time(str(r.get("time", ""))) >= since)
    ]


def table(records: List[Dict[str, Any]]) -> str:
    # Escaped for the terminal: a record's text never moves the cursor or forges a row.
    lines = [
        printable(f"{r.get('time', '')!s:20}  {r.get('type', '')!s:14}  {r.get('role', '-')!s:12}  ")
        + printable(str(r.get("message", "")))
        for r in records
    ]
    return "\n".join(lines) + ("\n" if lines else "")


def events(
    root: Root,
    kind: Optional[str],
    since: Optional[datetime],
    as_json: bool,
    follow: bool,
    out: TextIO,
    err: Optional[TextIO] = None,
) -> int:
    path = Paths(root.path).events_log

    def show(records: List[Dict[str, Any]]) -> None:
        chosen = selected(records, kind, since)
        out.write("".join(json.dumps(r) + "\n" for r in chosen) if as_json else table(chosen))
        out.flush()

    records, skipped = eventlog.read_log(path)
    if not records and err is not None and not follow:
        err.write(f"events: no events recorded in {path}\n")
    if skipped and err is not None:
        err.write(
            f"events: skipped {skipped} unreadable line(s) of {path} (torn by a full disk, or not a record)\n"
        )
    show(records)
    if follow:
        try:
            for batch in eventlog.follow(path):
                show(batch)
        except KeyboardInterrupt:
            pass
    return 0


def status(
    root: Root, out: TextIO, unit_state: Optional[Dict[str, str]] = None, as_json: bool = False
) -> int:
    report = status_report(root, unit_state if unit_state is not None else _unit_states())
    out.write(json.dumps(report, indent=2) + "\n" if as_json else status_text(report))
    return 0


def status_report(root: Root, states: Dict[str, str]) -> Dict[str, Any]:
    """The node's state as `status --json` prints it (README: status --json)."""
    paths = Paths(root.path)
    records = eventlog.read_events(paths.events_log)
    roles = [r["role"] for r in records if r.get("role")]
    recorded = _recorded_data_dir(paths)
    last = {r["type"]: r for r in records}
    return {
        "mode": "agent" if root.agent_mode else "appliance",
        "root": {"path": root.path, "source": root.source},
        "role": roles[-1] if roles else None,
        "data_dir": {"path": recorded or paths.data_dir, "recorded": bool(recorded)},
        "units": states,
        "last_events": {kind: last.get(kind) for kind in eventlog.TYPES},
        "last_upgrade": last_upgrade(records),
    }


def status_text(report: Dict[str, Any]) -> str:
    """The same for people; whatever came from a record escaped for the terminal."""
    role = printable(str(report["role"])) if report["role"] else "unknown (no event recorded a role)"
    data_dir = report["data_dir"]
    shown = (
        f"{data_dir['path']} (recorded at the last boot)"
        if data_dir["recorded"]
        else f"{data_dir['path']} (the root's default; no boot recorded one)"
    )
    upgrade = report["last_upgrade"]
    lines = [
        f"mode: {report['mode']}",
        f"root: {report['root']['path']} (from {report['root']['source']})",
        f"role: {role}",
        f"data dir: {printable(shown)}",
        *(f"{unit}: {state}" for unit, state in report["units"].items()),
        _last_upgrade_line(upgrade),
        "last events:",
    ]
    for kind, record in report["last_events"].items():
        lines.append(
            printable(f"  {kind:14}  {record.get('time', '')!s}  {record.get('message', '')!s}")
            if record
            else f"  {kind:14}  never"
        )
    return "\n".join(lines) + "\n"


def _last_upgrade_line(upgrade: Optional[Dict[str, Any]]) -> str:
    if not upgrade:
        return "last upgrade: none recorded"
    when, what = upgrade.get("time", ""), upgrade.get("message", "")
    return printable(f"last upgrade: {upgrade['outcome']} at {when!s}: {what!s}")


def last_upgrade(records: List[Dict[str, Any]]) -> Optional[Dict[str, Any]]:
    """The last record an upgrade left (upgrade.outcome: upgraded, rolled_back, refused, failed)."""
    for record in reversed(records):
        details = record.get("upgrade")
        if isinstance(details, dict) and details.get("outcome"):
            return {**record, "outcome": str(details["outcome"])}
    return None


def _recorded_data_dir(paths: Paths) -> str:
    try:
        with open_regular(paths.data_dir_state) as handle:
            return handle.read(4096).decode("utf-8", errors="replace").strip()
    except OSError:
        return ""


def _unit_states() -> Dict[str, str]:
    import subprocess

    states = {}
    for unit in ("rke2-server.service", "rke2-agent.service"):
        try:
            # systemctl from PATH: its location differs between distributions.
            argv = ["systemctl", "is-active", unit]
            done = subprocess.run(argv, capture_output=True, text=True, timeout=10)  # noqa: S603
            states[unit] = done.stdout.strip() or "unknown"
        except (OSError, subprocess.TimeoutExpired):
            states[unit] = "unknown (no systemctl)"
    return states
