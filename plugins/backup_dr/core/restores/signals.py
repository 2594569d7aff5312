"""Termination signals during a restore become an exception, so the rollback runs before exit.

Without this, SIGTERM (what ``kill``, ``timeout``, ``docker stop`` and Airflow's "mark
failed" send) and SIGHUP (a closed SSH session) end the process at once, in the middle of
writing the target: half of the collections, none of the indexes, no word said. Only
SIGINT raised ``KeyboardInterrupt`` and so reached the restore's ``except`` and rollback.

While :func:`interruptible` is active (main thread only: Python runs signal handlers
there), SIGTERM, SIGINT and SIGHUP raise :class:`RestoreInterrupted` where the main thread
is, which every engine's restore treats like any other failure: roll back from the safety
backup, then raise an error that says so. Two rules keep the rollback itself safe:

* after the first interruption, further signals are only logged until the outermost
  :func:`interruptible` ends (pressing Ctrl-C again must not abandon a rollback half-way);
* :func:`shielded` holds signals off the same way around any rollback, also one caused by
  something else than a signal.

SIGKILL and power loss cannot be caught; the restore journal (:mod:`.journal`) covers them.
Airflow's ``execution_timeout`` raises ``AirflowTaskTimeout`` from its own SIGALRM handler:
an ordinary exception, handled by the same rollback.
"""

from __future__ import annotations

import logging
import signal
import threading
from contextlib import contextmanager
from typing import Iterator

log = logging.getLogger(__name__)

SIGNALS = (signal.SIGTERM, signal.SIGINT, signal.SIGHUP)


class RestoreInterrupted(KeyboardInterrupt):
    """A termination signal arrived during a restore. A KeyboardInterrupt (so a BaseException:
    no ``except Exception`` on the way can swallow it, and code that stops cleanly on Ctrl-C
    stops cleanly on SIGTERM too)."""

    def __init__(self, signum: int):
        self.signum = signum
        super().__init__(f"interrupted by {signal_name(signum)}")

    @property
    def name(self) -> str:
        return signal_name(self.signum)


def signal_name(signum: int) -> str:
    try:
        return signal.Signals(signum).name
    except ValueError:
        return f"signal {signum}"


class _State:
    depth = 0  # nesting of interruptible()
    shield = 0  # nesting of shielded()
    interrupted = False  # one RestoreInterrupted raised already
    what = ""
    previous: dict[int, object] = {}
    held: list[int] = []


_state = _State()


def _handler(signum, frame) -> None:
    if _state.shield or _state.interrupted:
        _state.held.append(signum)
        log.warning("%s received while %s %s: that finishes first (SIGKILL abandons it; `python -m backup_dr "
                    "restore status` then shows the interrupted restore)", signal_name(signum), _state.what or "the restore",
                    "is rolling back" if _state.interrupted else "cannot be interrupted (rolling back or swapping files in)")
        return
    _state.interrupted = True
    log.error("%s received: stopping %s and rolling the target back before exiting", signal_name(signum),
              _state.what or "the restore")
    raise RestoreInterrupted(signum)


def active() -> bool:
    return _state.depth > 0


@contextmanager
def interruptible(what: str) -> Iterator[None]:
    """Inside, SIGTERM / SIGINT / SIGHUP raise :class:`RestoreInterrupted` (see the module doc).
    Re-entrant; outside the main thread it does nothing (signals are not delivered there)."""
    if threading.current_thread() is not threading.main_thread():
        log.debug("%s runs outside the main thread: signals cannot interrupt it here", what)
        yield
        return
    if _state.depth == 0:
        _state.previous = {s: signal.signal(s, _handler) for s in SIGNALS}
        _state.interrupted, _state.held, _state.what = False, [], what
    _state.depth += 1
    try:
        yield
    finally:
        _state.depth -= 1
        if _state.depth == 0:
            for s, prev in _state.previous.items():
                signal.signal(s, prev)
            _state.previous = {}


@contextmanager
def shielded() -> Iterator[None]:
    """Signals arriving inside are logged, not raised, until the outermost guard ends."""
    _state.shield += 1
    try:
        yield
    finally:
        _state.shield -= 1


def interrupted_by(error: BaseException | None) -> int | None:
    """The signal number when ``error`` is a :class:`RestoreInterrupted`, else None."""
    return error.signum if isinstance(error, RestoreInterrupted) else None


def describe_failure(error: BaseException) -> str:
    """How a restore's error message goes on: "was interrupted by SIGTERM" or "failed"."""
    signum = interrupted_by(error)
    return f"was interrupted by {signal_name(signum)}" if signum is not None else "failed"
