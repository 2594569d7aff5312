"""Typed access to the policy's mappings, recording every problem under its field path.

The readers never raise: a wrong type, an unknown key or name (with a "did you mean"), a
number out of its range, a bad cron expression, an unset ``${VAR}`` become ``(path, reason)``
entries, so one pass reports every problem at once. Messages say what was found exactly
("got an empty string", "item [2] is an integer") and quote values shortened, so a hostile
value cannot blow up a log line.
"""

from __future__ import annotations

import difflib
import functools
import re
from datetime import date, datetime, timedelta
from typing import Any, Callable

from croniter import croniter

from backup_dr.core.durations import format_duration, parse_duration
from backup_dr.core.policy_io import UnsetVariable, _short  # noqa: F401 - _short is shared by the policy readers

_NAME = re.compile(r"^[a-z][a-z0-9_]{0,62}$")
_PRESETS = {
    "@hourly": "0 * * * *",
    "@daily": "0 0 * * *",
    "@weekly": "0 0 * * 0",
    "@monthly": "0 0 1 * *",
    "@yearly": "0 0 1 1 *",
}


#: The longest duration any policy field may hold (retention of a decade is plausible, of a millennium a typo).
MAX_DURATION = timedelta(days=365 * 100)


class _Issues(list):
    """Problems found so far, as (field path, reason); ``causes`` links a knock-on problem to the
    entry whose own problems caused it (see :mod:`backup_dr.core.policy_causes`)."""

    def __init__(self):
        super().__init__()
        self.causes: dict[str, str] = {}

    def add(self, path: str, reason: str, *, caused_by: str | None = None) -> None:
        self.append((path, reason))
        if caused_by:
            self.causes[path] = caused_by

    def under(self, prefix: str) -> bool:
        return any(p == prefix or p.startswith(prefix + ".") or p.startswith(prefix + "[") for p, _ in self)


class _Reader:
    """Typed access to one mapping, recording problems under its path instead of raising."""

    def __init__(self, issues: _Issues, path: str, data: Any, allowed: tuple[str, ...], required: tuple[str, ...] = ()):
        self.issues, self.path = issues, path
        self.ok = isinstance(data, dict)
        self.data = data if self.ok else {}
        if not self.ok:
            issues.add(path, f"must be a mapping, got {_type_name(data)}")
            return
        for key in self.data:
            if key not in allowed:
                close = difflib.get_close_matches(str(key), allowed, n=1)
                hint = f" (did you mean {close[0]!r}?)" if close else f" (allowed: {', '.join(allowed)})"
                issues.add(self._p(_short(key, 40) if not isinstance(key, str) or len(key) > 40 else key), f"unknown key{hint}")
        for key in required:
            if key not in self.data:
                issues.add(self._p(key), "is required")

    def _p(self, key: Any) -> str:
        return f"{self.path}.{key}" if self.path else str(key)

    def has(self, key: str) -> bool:
        return key in self.data

    def get(self, key: str, conv: Callable[[Any], Any], default: Any = None) -> Any:
        if key not in self.data or self.data[key] is None and default is not None:
            return default
        value = self.data[key]
        if _has_unset(value):
            return default  # reported once for the whole document (policy.unset_variable_issues)
        try:
            return conv(value)
        except (TypeError, ValueError, OverflowError) as e:
            self.issues.add(self._p(key), str(e))
            return default

    def str(self, key: str, default: str | None = None) -> str | None:
        return self.get(key, _as_str, default)

    def name_list(self, key: str) -> tuple[str, ...]:
        return self.get(key, _as_str_list, ())


def _has_unset(value: Any) -> bool:
    if isinstance(value, UnsetVariable):
        return True
    return isinstance(value, list) and any(isinstance(x, UnsetVariable) for x in value)


def _type_name(v: Any) -> str:
    """What a value is, in the words of a YAML author."""
    if isinstance(v, str):
        return "an empty string" if not v else "a blank string (only spaces)" if not v.strip() else "a string"
    if isinstance(v, bool):
        return "a boolean"
    if isinstance(v, datetime):
        return "a timestamp"
    if isinstance(v, date):
        return "a date"
    simple = {dict: "a mapping", list: "a list", tuple: "a list of pairs", set: "a set", int: "an integer",
              float: "a number", bytes: "binary data (!!binary)"}
    return simple.get(type(v), "nothing (an empty value)" if v is None else type(v).__name__)


def _as_str(v: Any) -> str:
    if not isinstance(v, str) or not v.strip():
        raise ValueError(f"must be a non-empty string, got {_type_name(v)}")
    return v.strip()


def _as_str_list(v: Any) -> tuple[str, ...]:
    if not isinstance(v, list):
        raise ValueError(f"must be a list of strings, got {_type_name(v)}")
    for i, x in enumerate(v):
        if not isinstance(x, str) or not x.strip():
            raise ValueError(f"must be a list of non-empty strings; item [{i}] is {_type_name(x)}")
    dup = sorted({x for x in v if v.count(x) > 1})
    if dup:
        raise ValueError(f"duplicate name(s): {', '.join(dup)}")
    return tuple(v)


def _as_int(minimum: int, maximum: int) -> Callable[[Any], int]:
    """An integer in ``[minimum, maximum]``; the range is in the message."""

    def conv(v: Any) -> int:
        if isinstance(v, bool) or not isinstance(v, int):
            what = f"{_type_name(v)} {_short(v)}" if isinstance(v, float) else _type_name(v)
            raise ValueError(f"must be a whole number from {minimum} to {maximum}, got {what}")
        if not minimum <= v <= maximum:
            raise ValueError(f"must be from {minimum} to {maximum}, got {_short(v, 40)}")
        return v

    return conv


def _as_bool(v: Any) -> bool:
    if not isinstance(v, bool):
        raise ValueError(f"must be true or false, got {_type_name(v)}")
    return v


def _as_duration(v: Any) -> timedelta:
    """A duration from 1 second to :data:`MAX_DURATION` (``4h``, ``3 months``, a number of seconds)."""
    if isinstance(v, float) and v != v:
        raise ValueError("must be a duration such as '4h', '30m' or '3 months', got NaN")
    try:
        d = parse_duration(v)
    except OverflowError:
        d = MAX_DURATION * 2
    except ValueError as e:
        if isinstance(v, (str, int, float)) and not isinstance(v, bool):
            raise ValueError(_shorten_quotes(str(e), v)) from None
        raise ValueError(f"must be a duration such as '4h', '30m' or '3 months', got {_type_name(v)}") from None
    if d > MAX_DURATION or d < timedelta(seconds=1):
        raise ValueError(f"{_short(v, 40)} is out of range: a duration must be from 1s to {format_duration(MAX_DURATION)} "
                         "(100 years)")
    return d


def _shorten_quotes(message: str, value: Any) -> str:
    full = repr(value)
    return message.replace(full, _short(value, 40)) if len(full) > 40 else message


def _one_of(*choices: str) -> Callable[[Any], str]:
    def conv(v: Any) -> str:
        try:
            ok = v in choices
        except TypeError:  # an unhashable value compared by `in` on a tuple is fine; anything odd is not ok
            ok = False
        if not ok:
            close = difflib.get_close_matches(v, choices, n=1) if isinstance(v, str) else []
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            raise ValueError(f"{_short(v, 40)} is not one of: {', '.join(choices)}{hint}")
        return v

    return conv


def unknown_name(kind: str, name: Any, defined: Any) -> str:
    """``unknown store 'gsc' (did you mean 'gcs'?); defined stores: gcs, local, s3``."""
    names = sorted(str(n) for n in defined)
    close = difflib.get_close_matches(name, names, n=1) if isinstance(name, str) else []
    hint = f" (did you mean {close[0]!r}?)" if close else ""
    plural = kind + ("es" if kind.endswith("s") else "s")
    return f"unknown {kind} {_short(name, 40)}{hint}; defined {plural}: {', '.join(names) or 'none'}"


_QUEUE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,99}$")


def _as_queue(v: Any) -> str:
    """A Celery queue name as workers take it (``airflow celery worker --queues a,b``)."""
    if not isinstance(v, str) or not _QUEUE.match(v):
        raise ValueError(
            f"{v!r} is not a queue name: use letters, digits, '_', '.', '-' (no spaces or commas: "
            "workers take a comma-separated list, e.g. airflow celery worker --queues default,near_db)"
        )
    return v


def _check_name(issues: _Issues, path: str, name: Any) -> bool:
    if not isinstance(name, str) or not _NAME.match(name):
        issues.add(path, f"name {_short(name, 40)} must be lower-case letters, digits and '_' (it becomes a DAG id and a path)")
        return False
    return True


def _cron_interval(expr: str) -> timedelta:
    """Longest gap between consecutive runs over a year of a cron expression."""
    it = croniter(expr, datetime(2026, 1, 1))
    prev, longest = it.get_next(datetime), timedelta(0)
    for _ in range(600):
        nxt = it.get_next(datetime)
        longest = max(longest, nxt - prev)
        prev = nxt
        if nxt.year > 2026:
            break
    return longest


def cron_expression(text: Any) -> str:
    """Validate a cron expression or preset (without computing its interval); return it."""
    if not isinstance(text, str):
        raise ValueError(f"must be a cron expression string, got {_type_name(text)}")
    expr = _PRESETS.get(text.strip(), text.strip())
    if len(expr) > 200 or len(expr.split()) != 5 or not croniter.is_valid(expr):
        raise ValueError(
            f"{_short(text)} is not a valid cron expression (5 fields: minute hour day-of-month month day-of-week, "
            f"e.g. '0 */4 * * *', or one of {', '.join(_PRESETS)})"
        )
    return expr


@functools.lru_cache(maxsize=256)
def _cached_interval(expr: str) -> timedelta:
    return _cron_interval(expr)


def parse_cron(text: Any) -> tuple[str, timedelta]:
    """Validate a cron expression or preset; return it and its longest interval (a year of runs is
    walked, so the result is cached per expression: every DAG file parses the same policy)."""
    expr = cron_expression(text)
    return expr, _cached_interval(expr)
