"""Human durations as written in the seed's tables: ``4h``, ``30 minutes``, ``3 months``, ``4시간``.

Calendar units are fixed lengths (a month is 30 days, a year 365 days) so that every
comparison the policy validator makes (retention vs. schedule interval, RPO vs. frequency)
is exact and reproducible.
"""

from __future__ import annotations

import re
from datetime import timedelta

_UNITS: dict[str, timedelta] = {}
for _names, _delta in (
    (("s", "sec", "secs", "second", "seconds", "초"), timedelta(seconds=1)),
    (("m", "min", "mins", "minute", "minutes", "분"), timedelta(minutes=1)),
    (("h", "hr", "hrs", "hour", "hours", "시간"), timedelta(hours=1)),
    (("d", "day", "days", "일"), timedelta(days=1)),
    (("w", "week", "weeks", "주"), timedelta(weeks=1)),
    (("mo", "month", "months", "개월", "달"), timedelta(days=30)),
    (("y", "yr", "year", "years", "년"), timedelta(days=365)),
):
    for _name in _names:
        _UNITS[_name] = _delta

_PART = re.compile(r"\s*(\d+(?:\.\d+)?)\s*([a-zA-Z가-힣]+)\s*")


def parse_duration(text: str | int | float) -> timedelta:
    """Parse ``'4h'``, ``'1h30m'``, ``'3 months'``, ``'30분'``; a bare number is seconds.

    :raises ValueError: with the accepted units listed, so a policy error can quote it.
    """
    if isinstance(text, bool):
        raise ValueError(f"{text!r} is not a duration")
    if isinstance(text, (int, float)):
        if text < 0:
            raise ValueError(f"{text!r} is negative")
        return timedelta(seconds=text)
    if not isinstance(text, str) or not text.strip():
        raise ValueError(f"{text!r} is not a duration (use e.g. '4h', '30m', '3 months')")
    pos, total, s = 0, timedelta(), text.strip()
    while pos < len(s):
        m = _PART.match(s, pos)
        if not m or m.end() == pos:
            raise ValueError(f"{text!r} is not a duration (use e.g. '4h', '30m', '3 months')")
        unit = _UNITS.get(m.group(2).lower())
        if unit is None:
            raise ValueError(
                f"{text!r}: unknown unit {m.group(2)!r} (use s, m, h, d, w, months, years)"
            )
        total += unit * float(m.group(1))
        pos = m.end()
    if total <= timedelta(0):
        raise ValueError(f"{text!r} must be longer than zero")
    return total


def format_duration(delta: timedelta) -> str:
    """Short human form: ``'4h'``, ``'1d 2h'``, ``'90d'``, ``'45s'``."""
    secs = int(round(delta.total_seconds()))
    sign = "-" if secs < 0 else ""
    secs = abs(secs)
    if secs < 60:
        return f"{sign}{secs}s"
    days, rem = divmod(secs, 86400)
    hours, rem = divmod(rem, 3600)
    minutes, seconds = divmod(rem, 60)
    parts = [f"{v}{u}" for v, u in ((days, "d"), (hours, "h"), (minutes, "m")) if v]
    if seconds and not days:
        parts.append(f"{seconds}s")
    return sign + " ".join(parts)
