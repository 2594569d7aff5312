"""Typed access to the policy's mappings, recording every problem under its field path.

The readers never raise: a wrong type, an unknown key (with a "did you mean"), a bad cron
expression become ``(path, reason)`` entries, so one pass reports every problem at once.
"""

from __future__ import annotations

import difflib
import re
from datetime import datetime, timedelta
from typing import Any, Callable

from croniter import croniter

from backup_dr.core.durations import parse_duration

_NAME = re.compile(r"^[a-z][a-z0-9_]{0,62}$")
_PRESETS = {
    "@hourly": "0 * * * *",
    "@daily": "0 0 * * *",
    "@weekly": "0 0 * * 0",
    "@monthly": "0 0 1 * *",
    "@yearly": "0 0 1 1 *",
}


class _Issues(list):
    """Problems found so far, as (field path, reason)."""

    def add(self, path: str, reason: str) -> None:
        self.append((path, reason))

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
                issues.add(self._p(key), f"unknown key{hint}")
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
        try:
            return conv(self.data[key])
        except (TypeError, ValueError) as e:
            self.issues.add(self._p(key), str(e))
            return default

    def str(self, key: str, default: str | None = None) -> str | None:
        return self.get(key, _as_str, default)

    def name_list(self, key: str) -> tuple[str, ...]:
        return self.get(key, _as_str_list, ())


def _type_name(v: Any) -> str:
    return {dict: "a mapping", list: "a list", str: "a string", bool: "a boolean", int: "an integer", float: "a number"}.get(
        type(v), "nothing" if v is None else type(v).__name__
    )


def _as_str(v: Any) -> str:
    if not isinstance(v, str) or not v.strip():
        raise ValueError(f"must be a non-empty string, got {_type_name(v)}")
    return v.strip()


def _as_str_list(v: Any) -> tuple[str, ...]:
    if not isinstance(v, list) or not all(isinstance(x, str) and x for x in v):
        raise ValueError(f"must be a list of strings, got {_type_name(v)}")
    dup = sorted({x for x in v if v.count(x) > 1})
    if dup:
        raise ValueError(f"duplicate name(s): {', '.join(dup)}")
    return tuple(v)


def _as_int(minimum: int) -> Callable[[Any], int]:
    def conv(v: Any) -> int:
        if isinstance(v, bool) or not isinstance(v, int):
            raise ValueError(f"must be an integer, got {_type_name(v)}")
        if v < minimum:
            raise ValueError(f"must be >= {minimum}, got {v}")
        return v

    return conv


def _as_bool(v: Any) -> bool:
    if not isinstance(v, bool):
        raise ValueError(f"must be true or false, got {_type_name(v)}")
    return v


def _as_duration(v: Any) -> timedelta:
    return parse_duration(v)


def _one_of(*choices: str) -> Callable[[Any], str]:
    def conv(v: Any) -> str:
        if v not in choices:
            raise ValueError(f"{v!r} is not one of: {', '.join(choices)}")
        return v

    return conv


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
        issues.add(path, f"name {name!r} must be lower-case letters, digits and '_' (it becomes a DAG id and a path)")
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


def parse_cron(text: Any) -> tuple[str, timedelta]:
    """Validate a cron expression or preset; return it and its longest interval."""
    if not isinstance(text, str):
        raise ValueError(f"must be a cron expression string, got {_type_name(text)}")
    expr = _PRESETS.get(text.strip(), text.strip())
    if len(expr.split()) != 5 or not croniter.is_valid(expr):
        raise ValueError(
            f"{text!r} is not a valid cron expression (5 fields: minute hour day-of-month month day-of-week, "
            f"e.g. '0 */4 * * *', or one of {', '.join(_PRESETS)})"
        )
    return expr, _cron_interval(expr)
