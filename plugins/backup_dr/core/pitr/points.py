"""Oplog positions, the time a user asks for, and how the two compare: the whole-second rule.

An oplog position is a BSON ``Timestamp(t, i)``: ``t`` whole UNIX seconds, ``i`` an
increment that orders the entries written within that second. A person asks for a time
such as ``14:30:00``; other tools turn that into ``Timestamp(14:30:00, 0)`` or compare
``ts < 14:30:00`` and so silently drop every write made DURING 14:30:00 (the classic
"one-second-short" replay). Here a time means the WHOLE second: ``14:30:00`` (or
``14:30:00.750``) replays every entry with ``ts.time <= 14:30:00``, i.e. up to
``Timestamp(14:30:00, 2**32 - 1)``. An exact ``Timestamp(t, i)`` replays up to and including
exactly that entry. :func:`upper_bound` is the one place this rule is implemented; typed
times are read by :func:`backup_dr.core.times.parse_user_time` (the one parser).
"""

from __future__ import annotations

import math
from datetime import datetime, timezone
from typing import Any

from bson.timestamp import Timestamp

from backup_dr.core.errors import RestoreRefused

MAX_INC = 0xFFFFFFFF
WHOLE_SECOND = "whole_second"
EXACT = "exact"

def ts_text(ts: Timestamp) -> str:
    return f"Timestamp({ts.time}, {ts.inc})"


def second_iso(seconds: int) -> str:
    return datetime.fromtimestamp(seconds, timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def ts_iso(ts: Timestamp) -> str:
    """The second an oplog position falls in, as ISO text (for messages and reports)."""
    return second_iso(ts.time)


def ts_from_point(value: Any) -> Timestamp | None:
    """A Timestamp from a manifest's ``{"t": .., "i": ..}`` (None when absent or malformed)."""
    if isinstance(value, Timestamp):
        return value
    if isinstance(value, dict) and "t" in value:
        try:
            return Timestamp(int(value["t"]), int(value.get("i", 0)))
        except (TypeError, ValueError):
            return None
    return None


def upper_bound(at: datetime | Timestamp) -> tuple[Timestamp, str]:
    """The last oplog position a restore to ``at`` replays, and the mode (whole second or exact).

    :raises RestoreRefused: a naive datetime (it could be UTC or any local time).
    """
    if isinstance(at, Timestamp):
        return at, EXACT
    if not isinstance(at, datetime):
        raise RestoreRefused(f"restore time {at!r} is neither a datetime nor a bson Timestamp")
    if at.tzinfo is None:
        raise RestoreRefused(f"restore time {at.isoformat()} has no time zone: it could mean UTC or any local time",
                             hint="give an aware datetime, e.g. 2026-11-26T14:30:00+09:00 or ...Z for UTC")
    seconds = math.floor(at.astimezone(timezone.utc).timestamp())
    return Timestamp(seconds, MAX_INC), WHOLE_SECOND


def describe_target(at: datetime | Timestamp) -> str:
    """How a restore target reads in messages: the second (whole) or the exact position."""
    upper, mode = upper_bound(at)
    if mode == EXACT:
        return f"{ts_text(upper)} (exact oplog position, {ts_iso(upper)})"
    return f"{second_iso(upper.time)} (the whole second: every write with ts.time <= {upper.time})"
