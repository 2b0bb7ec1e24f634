"""Appliance or agent mode, and the evidence for it, for operators.

The mode is decided by the root alone (STYLUS_ROOT, see provider_rke2.root); the
evidence is what the Stylus seed looks at, shown so an operator can see whether the
two agree: agent mode by the `spectro-palette-agent-*` units and
/etc/spectro/environment, appliance mode by `cos-img` on the kernel command line and
the `cos-setup-*` units of an immutable Kairos boot.
"""

from __future__ import annotations

import fnmatch
import os
import subprocess
from dataclasses import dataclass
from typing import List, Optional, Tuple

from provider_rke2.paths import SYSTEMD_DIRS, Paths
from provider_rke2.root import STYLUS_ENVIRONMENT, Root

AGENT_UNITS = "spectro-palette-agent-*"
APPLIANCE_UNITS = "cos-setup-*"
UNIT_DIRS = (*SYSTEMD_DIRS, "/usr/lib/systemd/system", "/lib/systemd/system")
PATTERNS = (AGENT_UNITS, APPLIANCE_UNITS)
SYSTEMD_RUNNING = "/run/systemd/system"  # sd_booted(3): systemd is the init here


@dataclass(frozen=True)
class Evidence:
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
    """`mode --json`: the same report as an object (README: mode --json)."""
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
        "paths": dict(Paths(root.path).table()),
    }
    return json.dumps(report, indent=2) + "\n"


def path_table(root: Root) -> str:
    paths = Paths(root.path)
    rows = paths.table()
    width = max(len(purpose) for purpose, _ in rows)
    lines = [
        f"mode: {'agent' if root.agent_mode else 'appliance'}",
        f"root: {root.path} (from {root.source})",
        "",
        *(f"{purpose.ljust(width)}  {path}" for purpose, path in rows),
    ]
    return "\n".join(lines) + "\n"
