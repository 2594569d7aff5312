"""Progress logging for long tasks: items/s, MB/s and ETA, at most every few seconds.

Shared by every engine so a task log always reads the same way::

    collection announcements: 120000/500000 docs (24.0%), 130.2 MB, 11800 docs/s, 12.8 MB/s, ETA 32s

Listeners (:func:`add_listener`) see every update, not only the throttled log lines: the
break-glass CLI draws a terminal progress bar from them. The engines create their
Progress objects deep inside the core, so a process-wide hook is the one place a bar can
attach without threading a callback through every call. Log records carry
``record.backup_dr_progress = True`` so a front end drawing a bar can hold them back.
"""

from __future__ import annotations

import logging
import threading
import time
from typing import Callable

from backup_dr.core.durations import format_duration
from datetime import timedelta


#: fn(progress, final) for every update of every Progress in this process.
Listener = Callable[["Progress", bool], None]
_listeners: list[Listener] = []
_listeners_lock = threading.Lock()
_MARK = {"backup_dr_progress": True}


def add_listener(fn: Listener) -> Listener:
    """Call ``fn(progress, final)`` on every update (``final`` once, from :meth:`Progress.done`)."""
    with _listeners_lock:
        _listeners.append(fn)
    return fn


def remove_listener(fn: Listener) -> None:
    with _listeners_lock:
        if fn in _listeners:
            _listeners.remove(fn)


def _notify(progress: "Progress", final: bool) -> None:
    for fn in list(_listeners):
        try:
            fn(progress, final)
        except Exception:  # noqa: BLE001 - a display must never break a backup or a restore
            logging.getLogger(__name__).debug("progress listener failed", exc_info=True)


class Progress:
    def __init__(self, label: str, *, total_items: int | None = None, total_bytes: int | None = None,
                 unit: str = "items", logger: logging.Logger | None = None, every: float = 5.0,
                 on_update: Listener | None = None):
        self.on_update = on_update
        self.label, self.unit = label, unit
        self.total_items, self.total_bytes = total_items, total_bytes
        self.items = self.bytes = 0
        self.log = logger or logging.getLogger("backup_dr.progress")
        self.every = every
        self.started = self._last = time.monotonic()

    def add(self, items: int = 0, nbytes: int = 0) -> None:
        self.items += items
        self.bytes += nbytes
        now = time.monotonic()
        if now - self._last >= self.every:
            self._last = now
            self.log.info("%s", self.line(), extra=_MARK)
        self._updated(False)

    def _updated(self, final: bool) -> None:
        if self.on_update is not None:
            try:
                self.on_update(self, final)
            except Exception:  # noqa: BLE001 - see _notify
                self.log.debug("progress callback failed", exc_info=True)
        if _listeners:
            _notify(self, final)

    @property
    def elapsed(self) -> float:
        return max(time.monotonic() - self.started, 1e-9)

    def line(self, final: bool = False) -> str:
        el = self.elapsed
        parts = [f"{self.label}: {self.items}" + (f"/{self.total_items}" if self.total_items and not final else "") + f" {self.unit}"]
        if self.total_items and not final:
            parts[0] += f" ({100.0 * self.items / self.total_items:.1f}%)"
        parts.append(f"{self.bytes / 1e6:.1f} MB")
        parts.append(f"{self.items / el:.0f} {self.unit}/s")
        parts.append(f"{self.bytes / 1e6 / el:.1f} MB/s")
        if final:
            parts.append(f"in {el:.1f}s")
        else:
            eta = self.eta()
            if eta is not None:
                parts.append(f"ETA {format_duration(timedelta(seconds=eta))}")
        return ", ".join(parts)

    def eta(self) -> float | None:
        el = self.elapsed
        if self.total_bytes and self.bytes:
            return max(self.total_bytes - self.bytes, 0) / (self.bytes / el)
        if self.total_items and self.items:
            return max(self.total_items - self.items, 0) / (self.items / el)
        return None

    def done(self) -> None:
        self.log.info("%s", self.line(final=True), extra=_MARK)
        self._updated(True)
