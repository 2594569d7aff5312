"""A dependency-free terminal progress bar fed by :mod:`backup_dr.core.progress`.

When stderr is a terminal, every core ``Progress`` update redraws one status line::

    fetch korea_public_data.archive.gz from s3  [##########----------]  51%  6.2/12.1 MB  8.3 MB/s  ETA 1s

and the periodic progress LOG lines are held back (the bar says the same thing, live);
finished steps leave their final line behind. When stderr is not a terminal (scripts,
cron, CI), nothing changes: the usual log lines are written, as in the Airflow task logs.
"""

from __future__ import annotations

import logging
import shutil
import threading
import time
from datetime import timedelta
from typing import TextIO

from backup_dr.core import progress as core_progress
from backup_dr.core.durations import format_duration

_WIDTH = 20
_REFRESH = 0.1
_active: "TerminalBar | None" = None


def clear_active() -> None:
    """Erase a half-drawn bar before something else is written to the terminal (stdout output)."""
    if _active is not None:
        _active.clear()


def _fraction(p: core_progress.Progress) -> float | None:
    if p.total_bytes:
        return min(p.bytes / p.total_bytes, 1.0)
    if p.total_items:
        return min(p.items / p.total_items, 1.0)
    return None


def render(p: core_progress.Progress, width: int) -> str:
    """One status line for ``p``, cut to ``width`` columns."""
    el = p.elapsed
    frac = _fraction(p)
    parts = [p.label]
    if frac is not None:
        filled = int(frac * _WIDTH)
        parts.append(f"[{'#' * filled}{'-' * (_WIDTH - filled)}] {frac * 100:3.0f}%")
    if p.total_bytes:
        parts.append(f"{p.bytes / 1e6:.1f}/{p.total_bytes / 1e6:.1f} MB")
    else:
        if p.items:
            parts.append(f"{p.items}" + (f"/{p.total_items}" if p.total_items else "") + f" {p.unit}")
        parts.append(f"{p.bytes / 1e6:.1f} MB")
    parts.append(f"{p.bytes / 1e6 / el:.1f} MB/s")
    eta = p.eta()
    if eta is not None:
        parts.append(f"ETA {format_duration(timedelta(seconds=eta))}")
    line = "  ".join(parts)
    return line if len(line) <= width else line[: max(width - 1, 10)] + "…"


class TerminalBar:
    """The listener that draws the bar; also the log handler that keeps log lines off it."""

    def __init__(self, stream: TextIO):
        self.stream = stream
        self._lock = threading.RLock()
        self._drawn = False
        self._last_draw = 0.0

    def _width(self) -> int:
        return max(shutil.get_terminal_size((100, 20)).columns - 1, 20)

    def clear(self) -> None:
        with self._lock:
            if self._drawn:
                self.stream.write("\r\x1b[K")
                self.stream.flush()
                self._drawn = False

    def __call__(self, p: core_progress.Progress, final: bool) -> None:
        now = time.monotonic()
        with self._lock:
            if final:
                self.clear()
                self.stream.write(f"{p.line(final=True)}\n")
                self.stream.flush()
                return
            if now - self._last_draw < _REFRESH:
                return
            self._last_draw = now
            self.stream.write("\r\x1b[K" + render(p, self._width()))
            self.stream.flush()
            self._drawn = True


class BarAwareHandler(logging.StreamHandler):
    """Writes log records below the bar: drops periodic progress lines, clears the bar first."""

    def __init__(self, bar: TerminalBar):
        super().__init__(bar.stream)
        self.bar = bar

    def emit(self, record: logging.LogRecord) -> None:
        if getattr(record, "backup_dr_progress", False):
            return  # the bar shows it live; the final line is written by the bar itself
        with self.bar._lock:
            self.bar.clear()
            super().emit(record)


def install(stream: TextIO, formatter: logging.Formatter, level: int) -> TerminalBar:
    """Draw bars on ``stream`` (a TTY) and route logging through the bar-aware handler."""
    bar = TerminalBar(stream)
    handler = BarAwareHandler(bar)
    handler.setFormatter(formatter)
    root = logging.getLogger()
    for h in list(root.handlers):
        root.removeHandler(h)
    root.addHandler(handler)
    root.setLevel(level)
    core_progress.add_listener(bar)
    global _active
    _active = bar
    return bar
