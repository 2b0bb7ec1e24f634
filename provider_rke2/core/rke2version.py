"""RKE2 release versions, and which steps between them Kubernetes supports.

Kubernetes upgrades one minor version at a time and never downgrades a control plane;
a patch or RKE2 release change is always allowed. Versions read like
`v1.31.2+rke2r1` (`rke2 --version` prints `rke2 version v1.31.2+rke2r1 (<commit>)`).
"""

from __future__ import annotations

import re

from provider_rke2.core.record import record

TYPE_CHECKING = False  # typing costs milliseconds of every boot: annotations only
if TYPE_CHECKING:
    from typing import Optional, Tuple

OUTPUT = re.compile(r"\brke2 version (v\S+)")
_VERSION = re.compile(r"v(\d{1,4})\.(\d{1,4})\.(\d{1,4})(?:-([0-9A-Za-z.-]{1,40}))?(?:\+rke2r(\d{1,4}))?")


@record
class Version:
    """An RKE2 release version, in parts."""

    text: str
    major: int
    minor: int
    patch: int
    pre: str  # "rc1" for a release candidate; empty for a release
    release: int  # the N of +rke2rN

    def key(self) -> Tuple[int, int, int, int, str, int]:
        # A release sorts after its own candidates (v1.31.2-rc1 < v1.31.2).
        return (self.major, self.minor, self.patch, 0 if self.pre else 1, self.pre, self.release)

    def __str__(self) -> str:
        return self.text


def parse(text: str) -> Optional[Version]:
    """The version `text` names (v1.31.2+rke2r1), or None when it is not one."""
    match = _VERSION.fullmatch(text.strip())
    if not match:
        return None
    major, minor, patch, pre, release = match.groups()
    return Version(text.strip(), int(major), int(minor), int(patch), pre or "", int(release or 0))


def of_output(output: Optional[str]) -> Optional[Version]:
    """The version in `rke2 --version`'s output, or None."""
    found = OUTPUT.search(output or "")
    return parse(found.group(1)) if found else None


def step_problem(current: Version, new: Version) -> Optional[str]:
    """Why Kubernetes does not support going from `current` to `new`; None when it does."""
    if new.key() < current.key():
        return f"{new} is older than {current}: Kubernetes does not support downgrades"
    if new.major != current.major:
        return f"{current} -> {new} changes the major version"
    if new.minor > current.minor + 1:
        skipped = ", ".join(f"v{current.major}.{m}" for m in range(current.minor + 1, new.minor))
        return f"{current} -> {new} skips {skipped}: Kubernetes upgrades one minor version at a time"
    return None


def describe_step(current: Version, new: Version) -> str:
    if new.key() == current.key():
        return "the same version"
    if new.key() < current.key():
        return "a downgrade"
    if (new.major, new.minor) != (current.major, current.minor):
        return (
            "a minor upgrade" if new.major == current.major and new.minor == current.minor + 1 else "a jump"
        )
    return "a patch upgrade"
