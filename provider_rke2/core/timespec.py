"""Durations and instants as people write them on the command line."""

from __future__ import annotations

import math
import re
from datetime import datetime, timedelta, timezone

_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}
_DURATION = re.compile(r"(\d+(?:\.\d+)?)([smhd]?)")
_RFC3339 = re.compile(r"(\d{4})-(\d{2})-(\d{2})[Tt ](\d{2}):(\d{2}):(\d{2})(\.\d+)?([Zz]|[+-]\d{2}:\d{2})")

DURATION_FORMS = "a number of seconds, or with a unit: 90s, 15m, 2h, 1d (at most 366d)"
# No wait, and no look back, is longer than a year: anything past that is a slip of the
# keyboard (99999999999d), and would overflow a date.
MAX_DURATION = 366 * 86400
INSTANT_FORMS = (
    "an RFC 3339 time with its offset (2026-11-26T14:00:00Z, 2026-11-26T15:00:00+01:00)"
    " or a time ago (30m, 2h, 1d; at most 366d)"
)


def duration(text: str) -> float:
    """Seconds in `text` ("90", "90s", "15m", "2h", "1d"); ValueError for anything else,
    nan, inf or a negative number included."""
    found = _DURATION.fullmatch(text.strip())
    if not found:
        raise ValueError(f"expected {DURATION_FORMS}, got {text!r}")
    seconds = float(found.group(1)) * _UNITS[found.group(2) or "s"]
    if not math.isfinite(seconds) or seconds > MAX_DURATION:
        raise ValueError(f"expected {DURATION_FORMS}, got {text!r}")
    return seconds


def instant(text: str, now: datetime) -> datetime:
    """The moment `text` names: an RFC 3339 time (its offset honoured) or a duration ago."""
    found = _RFC3339.fullmatch(text.strip())
    if found:
        year, month, day, hour, minute, second = (int(found.group(i)) for i in range(1, 7))
        offset = found.group(8)
        zone = timezone.utc
        if offset not in ("Z", "z"):
            sign = 1 if offset[0] == "+" else -1
            zone = timezone(sign * timedelta(hours=int(offset[1:3]), minutes=int(offset[4:6])))
        try:
            return datetime(year, month, day, hour, minute, second, tzinfo=zone)
        except ValueError:
            raise ValueError(f"expected {INSTANT_FORMS}, got {text!r}") from None
    try:
        return now - timedelta(seconds=duration(text))
    except ValueError:
        raise ValueError(f"expected {INSTANT_FORMS}, got {text!r}") from None


def record_time(text: str) -> datetime:
    """A record's own time (UTC, ending in Z); the epoch when it cannot be read."""
    try:
        return instant(text, datetime.now(timezone.utc))
    except ValueError:
        return datetime.fromtimestamp(0, timezone.utc)
