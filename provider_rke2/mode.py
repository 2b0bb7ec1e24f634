"""Appliance or agent mode, and the evidence for it, for operators."""

from __future__ import annotations

from typing import List, Optional, Sequence

from provider_rke2.paths import Paths
from provider_rke2.root import STYLUS_ENVIRONMENT, Root

AGENT_UNITS = (
    "/etc/systemd/system/stylus-agent.service",
    "/usr/lib/systemd/system/stylus-agent.service",
    "/lib/systemd/system/stylus-agent.service",
)


def describe(root: Root, cmdline: Optional[str], agent_units: Sequence[str], env_file_exists: bool) -> str:
    """A short report: the mode (decided by the root) and every piece of evidence seen."""
    mode = "agent" if root.agent_mode else "appliance"
    evidence: List[str] = [f"root {root.path} resolved from {root.source}"]
    if cmdline is None:
        evidence.append("/proc/cmdline: unreadable")
    elif "cos-img" in cmdline:
        evidence.append("/proc/cmdline mentions cos-img (an immutable Kairos boot)")
    else:
        evidence.append("/proc/cmdline does not mention cos-img")
    evidence.append(
        f"{STYLUS_ENVIRONMENT}: {'present' if env_file_exists else 'absent'}",
    )
    evidence += [f"Stylus agent unit: {unit}" for unit in agent_units] or ["no Stylus agent unit found"]
    lines = [f"mode: {mode}", *(f"  - {item}" for item in evidence)]
    appliance_boot = cmdline is not None and "cos-img" in cmdline
    if root.agent_mode and appliance_boot:
        lines.append("warning: STYLUS_ROOT is set on what looks like an immutable Kairos boot")
    if not root.agent_mode and (env_file_exists or agent_units):
        lines.append("warning: Stylus agent files are present but no STYLUS_ROOT was found")
    return "\n".join(lines) + "\n"


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
