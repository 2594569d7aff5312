"""The ONE parser for every time a person types: DR params and approval forms, the CLI's
``--at``, operator arguments, the health check's ``as_of``.

Why one, and why strict: a point in time typed during an incident decides what data comes
back. ``14:30`` typed in Seoul is 05:30 UTC; a parser that quietly takes it as UTC restores
to 23:30 KST, *past* the corruption. So there is one rule, everywhere:

* a time WITH an offset (``2026-11-26T14:30:00+09:00``, ``...Z``) means exactly that;
* a time WITHOUT one is refused, with the fix in the message — unless the policy opts in
  with ``defaults.naive_times: policy_timezone``; then it is read in ``defaults.timezone``
  (e.g. ``Asia/Seoul``), and the answer always says which zone was used;
* where an exact oplog position makes sense (point-in-time restores), ``Timestamp(t, i)``.

:func:`parse_user_time` returns a :class:`UserTime` whose :meth:`UserTime.echo` is the line
shown back to the person (log, XCom, report, CLI) BEFORE anything is changed: the text as
typed, how it was read, and the instant in UTC and in the policy's time zone.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from bson.timestamp import Timestamp

from backup_dr.core.errors import RestoreRefused

#: ``defaults.naive_times`` values
REFUSE = "refuse"
POLICY_TIMEZONE = "policy_timezone"
NAIVE_RULES = (REFUSE, POLICY_TIMEZONE)

_TS_TEXT = re.compile(r"^\s*Timestamp\(\s*(\d+)\s*,\s*(\d+)\s*\)\s*$")
_EMPTY = ("", "none", "null")


class BadTimeInput(RestoreRefused):
    """A typed time that cannot be read unambiguously; nothing was changed."""


def zone(name: str) -> ZoneInfo:
    """The IANA zone ``name``; a clear error for a misspelt one (``Asia/Seol``)."""
    try:
        return ZoneInfo(str(name))
    except (ZoneInfoNotFoundError, ValueError):
        raise BadTimeInput(f"time zone {name!r} is not an IANA time zone name",
                           hint="e.g. Asia/Seoul, UTC, Europe/Berlin") from None


@dataclass(frozen=True)
class TimeRule:
    """How naive times are read: refused (the default), or in the policy's time zone."""

    timezone: str = "UTC"
    naive: str = REFUSE

    @classmethod
    def of(cls, policy: Any) -> "TimeRule":
        """The rule of a policy (``defaults.timezone`` / ``defaults.naive_times``); None: refuse, UTC shown."""
        d = getattr(policy, "defaults", None)
        return cls(getattr(d, "timezone", "UTC") or "UTC", getattr(d, "naive_times", REFUSE) or REFUSE)


@dataclass(frozen=True)
class UserTime:
    """A time as typed and as understood. ``at``: an aware UTC datetime, or an exact Timestamp."""

    text: str
    at: datetime | Timestamp
    read_as: str  # "explicit offset +09:00" | "policy time zone Asia/Seoul" | "exact oplog position"
    display_zone: str

    @property
    def utc(self) -> datetime:
        if isinstance(self.at, Timestamp):
            return datetime.fromtimestamp(self.at.time, timezone.utc)
        return self.at

    @property
    def local(self) -> datetime:
        return self.utc.astimezone(zone(self.display_zone))

    def echo(self) -> str:
        """The line that tells the person what their input means, before anything is done with it."""
        utc = self.utc.strftime("%Y-%m-%dT%H:%M:%S") + (f".{self.utc.microsecond:06d}".rstrip("0") if self.utc.microsecond else "")
        local = self.local
        shown = f"{local:%Y-%m-%d %H:%M:%S} {local.tzname()} ({self.display_zone})"
        if isinstance(self.at, Timestamp):
            return f"{self.text.strip()!r} = exact oplog position, in second {utc}Z = {shown}"
        return f"{self.text.strip()!r} read as {self.read_as} = {utc}Z (UTC) = {shown}"

    def as_dict(self) -> dict[str, Any]:
        return {"typed": self.text, "read_as": self.read_as, "utc": self.utc.isoformat().replace("+00:00", "Z"),
                "local": self.local.isoformat(), "timezone": self.display_zone, "echo": self.echo(),
                **({"timestamp": {"t": self.at.time, "i": self.at.inc}} if isinstance(self.at, Timestamp) else {})}


def is_blank(text: Any) -> bool:
    """An unset templated param renders as '' or 'None'."""
    return text is None or str(text).strip().lower() in _EMPTY


def parse_user_time(text: str, rule: TimeRule | None = None, *, what: str = "time",
                    allow_timestamp: bool = False) -> UserTime:
    """Read a typed time by the one rule (module docstring).

    :param rule: the policy's rule (:meth:`TimeRule.of`); None refuses naive times.
    :param what: how the input is named in messages (``--at``, ``point_in_time``).
    :param allow_timestamp: accept ``Timestamp(t, i)`` (point-in-time restores).
    :raises BadTimeInput: empty, unreadable, naive without the policy's opt-in, or a bad zone.
    """
    rule = rule or TimeRule()
    raw = "" if text is None else str(text)
    if is_blank(raw):
        raise BadTimeInput(f"{what} is empty", hint="give a time such as 2026-11-26T14:30:00+09:00")
    m = _TS_TEXT.match(raw)
    if m:
        if not allow_timestamp:
            raise BadTimeInput(f"{what} {raw!r}: an oplog Timestamp(t, i) is only accepted as a point-in-time restore target",
                               hint="give an ISO 8601 time, e.g. 2026-11-26T14:30:00+09:00")
        t, i = int(m.group(1)), int(m.group(2))
        if t >= 2**32 or i >= 2**32:
            raise BadTimeInput(f"{what} {raw!r}: both numbers of Timestamp(t, i) must be below 2^32")
        return UserTime(raw, Timestamp(t, i), "exact oplog position", rule.timezone)
    cleaned = raw.strip()
    try:
        when = datetime.fromisoformat(cleaned[:-1] + "+00:00" if cleaned[-1:] in ("Z", "z") else cleaned)
    except ValueError:
        forms = "2026-11-26T14:30:00+09:00, 2026-11-26T05:30:00Z" + (" or Timestamp(1795680000, 3)" if allow_timestamp else "")
        raise BadTimeInput(f"{what} {raw!r} is not an ISO 8601 time", hint=f"e.g. {forms}") from None
    if when.tzinfo is not None:
        off = when.utcoffset()
        sign = "-" if off.total_seconds() < 0 else "+"
        mins = int(abs(off.total_seconds()) // 60)
        return UserTime(raw, when.astimezone(timezone.utc), f"explicit offset {sign}{mins // 60:02d}:{mins % 60:02d}",
                        rule.timezone)
    if rule.naive != POLICY_TIMEZONE:
        example = f"{cleaned}+09:00" if rule.timezone == "Asia/Seoul" else f"{cleaned}Z"
        raise BadTimeInput(
            f"{what} {raw!r} has no time zone: it could be UTC or any local time, and a wrong guess restores the wrong data",
            detail=f"the policy's time zone is {rule.timezone}, but defaults.naive_times is {rule.naive!r}",
            hint=f"write the offset (e.g. {example}, or {cleaned}Z for UTC), or set defaults.naive_times: "
                 f"{POLICY_TIMEZONE} in the policy to read times without one in {rule.timezone}")
    tz = zone(rule.timezone)
    local = when.replace(tzinfo=tz)
    # a wall time that does not exist (spring forward) or exists twice (fall back) is not one instant
    back = local.astimezone(timezone.utc).astimezone(tz)
    other = when.replace(tzinfo=tz, fold=1)
    if back.replace(tzinfo=None) != when or other.utcoffset() != local.utcoffset():
        raise BadTimeInput(f"{what} {raw!r} does not name one instant in {rule.timezone} (a daylight-saving change)",
                           hint=f"write the offset explicitly, e.g. {cleaned}{local.strftime('%z')[:3]}:{local.strftime('%z')[3:]}")
    return UserTime(raw, local.astimezone(timezone.utc), f"policy time zone {rule.timezone}", rule.timezone)


def parse_optional(text: Any, rule: TimeRule | None = None, **kw) -> UserTime | None:
    """:func:`parse_user_time`, or None for an unset (blank / 'None') param."""
    return None if is_blank(text) else parse_user_time(str(text), rule, **kw)
