"""Durations such as `90s` or `25h`, and ISO-8601 times."""

from __future__ import annotations

import re
from datetime import UTC, datetime

_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}
_DURATION = re.compile(r"\s*(\d+)\s*([smhd]?)\s*")


def parse_duration(text: str | int) -> int:
    """Return whole seconds for `90`, `90s`, `2m`, `25h` or `7d`; raise ValueError otherwise."""
    if isinstance(text, int) and not isinstance(text, bool):
        return text
    match = _DURATION.fullmatch(str(text).lower())
    if not match:
        raise ValueError(f"not a duration: {text!r} (use a number with s, m, h or d)")
    return int(match[1]) * _UNITS[match[2] or "s"]


def isoformat(timestamp: float) -> str:
    """Return a Unix time as ISO-8601 UTC with a `Z`, to the second."""
    moment = datetime.fromtimestamp(int(timestamp), UTC)
    return moment.isoformat().replace("+00:00", "Z")


def parse_time(text: str | int) -> int:
    """Return Unix seconds for Unix seconds or an ISO-8601 time (UTC unless it says otherwise)."""
    value = str(text).strip()
    if value.isdigit():
        return int(value)
    try:
        moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise ValueError(f"not a time: {text!r} (use ISO-8601 or Unix seconds)") from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return int(moment.timestamp())
