"""What operators read of a node: its mode and the evidence for it (`mode`), its paths
(`paths`), its state (`status`) and its event log (`events`).

The mode is decided by the root alone (STYLUS_ROOT, see provider_rke2.core.root); the
evidence is what the Stylus seed looks at, shown so an operator can see whether the
two agree: agent mode by the `spectro-palette-agent-*` units and
/etc/spectro/environment, appliance mode by `cos-img` on the kernel command line and
the `cos-setup-*` units of an immutable Kairos boot.
"""

from __future__ import annotations

import fnmatch
import json
import os
import subprocess
from datetime import datetime
from typing import Any, Dict, List, Optional, TextIO, Tuple

from provider_rke2.core.errors import printable
from provider_rke2.core.paths import SYSTEMD_DIRS, UNITS, Paths, located
from provider_rke2.core.record import record
from provider_rke2.core.root import STYLUS_ENVIRONMENT, Root
from provider_rke2.core.timespec import record_time
from provider_rke2.machine import eventlog
from provider_rke2.machine.fsio import open_regular


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

    if follow:
        records, skipped, later = eventlog.read_and_follow(path)
    else:
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
            for batch in later:
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
    """The node's state as `status --json` prints it (docs/operating.md: status --json)."""
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
    width = max(map(len, report["last_events"]), default=0)
    for kind, entry in report["last_events"].items():
        lines.append(
            printable(f"  {kind:{width}}  {entry.get('time', '')!s}  {entry.get('message', '')!s}")
            if entry
            else f"  {kind:{width}}  never"
        )
    return "\n".join(lines) + "\n"


def _last_upgrade_line(upgrade: Optional[Dict[str, Any]]) -> str:
    if not upgrade:
        return "last upgrade: none recorded"
    when, what = upgrade.get("time", ""), upgrade.get("message", "")
    return printable(f"last upgrade: {upgrade['outcome']} at {when!s}: {what!s}")


def last_upgrade(records: List[Dict[str, Any]]) -> Optional[Dict[str, Any]]:
    """The last record an upgrade left (upgrade.outcome: upgraded, rolled_back, refused, failed)."""
    for entry in reversed(records):
        details = entry.get("upgrade")
        if isinstance(details, dict) and details.get("outcome"):
            return {**entry, "outcome": str(details["outcome"])}
    return None


def _recorded_data_dir(paths: Paths) -> str:
    try:
        with open_regular(paths.data_dir_state) as handle:
            return handle.read(4096).decode("utf-8", errors="replace").strip()
    except OSError:
        return ""


def _unit_states() -> Dict[str, str]:
    states = {}
    for unit in UNITS:
        try:
            # systemctl from PATH: its location differs between distributions.
            argv = ["systemctl", "is-active", unit]
            done = subprocess.run(argv, capture_output=True, text=True, timeout=10)  # noqa: S603
            states[unit] = done.stdout.strip() or "unknown"
        except (OSError, subprocess.TimeoutExpired):
            states[unit] = "unknown (no systemctl)"
    return states


# --- `mode` and `paths` ------------------------------------------------------------------

AGENT_UNITS = "spectro-palette-agent-*"
APPLIANCE_UNITS = "cos-setup-*"
UNIT_DIRS = (*SYSTEMD_DIRS, "/usr/lib/systemd/system", "/lib/systemd/system")
PATTERNS = (AGENT_UNITS, APPLIANCE_UNITS)
SYSTEMD_RUNNING = "/run/systemd/system"  # sd_booted(3): systemd is the init here


@record
class Evidence:
    """What `mode` saw of the node: the boot's command line, the environment file, the units."""

    cmdline: Optional[str]  # None: unreadable
    env_file: bool
    units_from: str  # where the unit names were looked up
    agent_units: Tuple[str, ...]
    appliance_units: Tuple[str, ...]


def describe(root: Root, seen: Evidence) -> str:
    """A short report: the mode (decided by the root) and every piece of evidence seen."""
    mode = "agent" if root.agent_mode else "appliance"
    cos_img = seen.cmdline is not None and "cos-img" in seen.cmdline
    evidence: List[str] = [f"root {root.path} resolved from {root.source}"]
    if seen.cmdline is None:
        evidence.append("/proc/cmdline: unreadable")
    elif cos_img:
        evidence.append("/proc/cmdline mentions cos-img (an immutable Kairos boot)")
    else:
        evidence.append("/proc/cmdline does not mention cos-img")
    evidence.append(f"{STYLUS_ENVIRONMENT}: {'present' if seen.env_file else 'absent'}")
    for pattern, found in ((AGENT_UNITS, seen.agent_units), (APPLIANCE_UNITS, seen.appliance_units)):
        names = ", ".join(found) if found else "none"
        evidence.append(f"{pattern} units ({seen.units_from}): {names}")
    lines = [f"mode: {mode}", *(f"  - {item}" for item in evidence)]
    looks_appliance = cos_img or bool(seen.appliance_units)
    looks_agent = seen.env_file or bool(seen.agent_units)
    if root.agent_mode and looks_appliance:
        lines.append("warning: STYLUS_ROOT is set on what looks like an immutable Kairos boot")
    if not root.agent_mode and looks_agent:
        lines.append("warning: Stylus agent files are present but no STYLUS_ROOT was found")
    return "\n".join(lines) + "\n"


def gather(systemd_running: str = SYSTEMD_RUNNING, unit_dirs: Tuple[str, ...] = UNIT_DIRS) -> Evidence:
    """The evidence on this machine: systemd's own unit list where systemd runs, the unit
    files otherwise (a chroot, an image being built)."""
    listed = _listed_units() if os.path.isdir(systemd_running) else None
    if listed is not None:
        units, source = listed, "systemctl list-units"
    else:
        units, source = _unit_files(unit_dirs), "unit files in " + ", ".join(unit_dirs)
    return Evidence(
        cmdline=_read_or_none("/proc/cmdline"),
        env_file=os.path.exists(STYLUS_ENVIRONMENT),
        units_from=source,
        agent_units=tuple(sorted(u for u in units if fnmatch.fnmatchcase(u, AGENT_UNITS))),
        appliance_units=tuple(sorted(u for u in units if fnmatch.fnmatchcase(u, APPLIANCE_UNITS))),
    )


def _listed_units() -> Optional[List[str]]:
    try:
        done = subprocess.run(  # noqa: S603 - fixed argv; systemctl from PATH, as every step runs it
            ["systemctl", "list-units", "--all", "--plain", "--no-legend", "--no-pager", *PATTERNS],  # noqa: S607
            capture_output=True,
            stdin=subprocess.DEVNULL,
            timeout=10,
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    if done.returncode != 0:
        return None
    text = done.stdout.decode("utf-8", errors="replace")
    return [line.split()[0] for line in text.splitlines() if line.split()]


def _unit_files(unit_dirs: Tuple[str, ...]) -> List[str]:
    found = set()
    for directory in unit_dirs:
        try:
            found.update(os.listdir(directory))
        except OSError:
            continue
    return sorted(found)


def _read_or_none(path: str) -> Optional[str]:
    try:
        with open(path, encoding="utf-8", errors="replace") as handle:
            return handle.read(65536)
    except OSError:
        return None


def describe_json(root: Root, seen: Evidence) -> str:
    """`mode --json`: the same report as an object (docs/operating.md: mode --json)."""
    import json

    warnings = [
        line[len("warning: ") :] for line in describe(root, seen).splitlines() if line.startswith("warning: ")
    ]
    report = {
        "mode": "agent" if root.agent_mode else "appliance",
        "root": {"path": root.path, "source": root.source},
        "evidence": {
            "cmdline_cos_img": None if seen.cmdline is None else "cos-img" in seen.cmdline,
            "stylus_environment": seen.env_file,
            "units_from": seen.units_from,
            "agent_units": list(seen.agent_units),
            "appliance_units": list(seen.appliance_units),
        },
        "warnings": warnings,
    }
    return json.dumps(report, indent=2) + "\n"


def paths_json(root: Root) -> str:
    """`paths --json`: {mode, root: {path, source}, paths: {purpose: path}}."""
    import json

    report = {
        "mode": "agent" if root.agent_mode else "appliance",
        "root": {"path": root.path, "source": root.source},
        "paths": dict(located(root.path, os.path.isfile).table()),
    }
    return json.dumps(report, indent=2) + "\n"


def path_table(root: Root) -> str:
    paths = located(root.path, os.path.isfile)
    rows = paths.table()
    width = max(len(purpose) for purpose, _ in rows)
    lines = [
        f"mode: {'agent' if root.agent_mode else 'appliance'}",
        f"root: {root.path} (from {root.source})",
        "",
        *(f"{purpose.ljust(width)}  {path}" for purpose, path in rows),
    ]
    return "\n".join(lines) + "\n"
