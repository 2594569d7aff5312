"""Temp directories a killed process cannot leave behind for good.

A restore downloads and verifies gigabytes into a temp directory; ``TemporaryDirectory``
removes it on any exception, but not after a SIGKILL, an OOM kill or a power loss. Every
directory made by :func:`work_dir` holds an ``.owner.lock`` its process keeps an ``flock``
on; :func:`sweep_stale`, run when a restore starts, removes every ``backup-dr-*``
directory whose lock can be taken (its owner is dead, however it died). Directories
without the lock file (e.g. a scratch server left running on purpose with ``--detach``)
are never touched.
"""

from __future__ import annotations

import fcntl
import logging
import os
import shutil
import tempfile
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

from backup_dr.core.locks import is_locked

log = logging.getLogger(__name__)

PREFIX = "backup-dr-"
OWNER_LOCK = ".owner.lock"


class OwnedDir:
    """A directory with an owner lock held by this process until :meth:`release`."""

    def __init__(self, prefix: str, dir: str | os.PathLike | None = None):
        if not prefix.startswith(PREFIX):
            raise ValueError(f"work directory prefix {prefix!r} must start with {PREFIX!r}")
        self.path = Path(tempfile.mkdtemp(prefix=prefix, dir=dir))
        self._fd: int | None = os.open(self.path / OWNER_LOCK, os.O_RDWR | os.O_CREAT, 0o600)
        fcntl.flock(self._fd, fcntl.LOCK_EX)

    def disown(self) -> None:
        """Keep the directory after this process ends (no sweep will remove it)."""
        (self.path / OWNER_LOCK).unlink(missing_ok=True)
        self.release()

    def release(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None

    def remove(self) -> None:
        shutil.rmtree(self.path, ignore_errors=True)
        self.release()


@contextmanager
def work_dir(prefix: str, dir: str | os.PathLike | None = None) -> Iterator[Path]:
    """Like ``tempfile.TemporaryDirectory``, plus the owner lock (see the module doc)."""
    owned = OwnedDir(prefix, dir)
    try:
        yield owned.path
    finally:
        owned.remove()


def sweep_stale(dir: str | os.PathLike | None = None) -> list[str]:
    """Remove the ``backup-dr-*`` work directories of dead processes under ``dir`` (default:
    the system temp dir); returns what was removed."""
    base = Path(dir or tempfile.gettempdir())
    removed = []
    try:
        candidates = [p for p in base.iterdir() if p.name.startswith(PREFIX) and p.is_dir() and not p.is_symlink()]
    except OSError:
        return removed
    for path in candidates:
        lock = path / OWNER_LOCK
        if lock.is_file() and not is_locked(lock):
            shutil.rmtree(path, ignore_errors=True)
            log.warning("removed %s, left behind by a killed process", path)
            removed.append(str(path))
    return removed
