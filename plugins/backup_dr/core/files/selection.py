"""Which entries of a source directory go into its archive, in a deterministic order.

Rules (the policy's ``include`` / ``exclude`` / ``modified_within``):

* ``exclude`` globs match a file's or directory's name or its path relative to the
  source root (``fnmatch``; ``*`` also crosses ``/``). An excluded directory is not entered.
* ``include`` globs (same matching) select files and symlinks; directories are always
  entered. No ``include`` means every file.
* ``modified_within`` keeps files whose mtime is newer than ``now - modified_within``
  (the seed's ``find -mtime -30`` is "less than 30 days old").
* With ``include`` or ``modified_within`` set, a directory is written only if something
  below it is selected (``find -name '*.log' | tar -T -`` has no empty directories either);
  without them, empty directories are kept.
* Entries are walked depth-first, sorted by name, so the same tree always gives the same
  archive. Nothing is ever followed: a symlink is stored as a symlink, a symlinked
  directory is not entered, and a symlink whose target leaves the source tree is skipped
  (restores refuse such links, so storing one would make the whole archive unrestorable).
* Sockets, FIFOs and device nodes are skipped with a reason; so is anything that vanishes
  between listing and reading.
"""

from __future__ import annotations

import logging
import os
import posixpath
import stat
from dataclasses import dataclass
from fnmatch import fnmatchcase
from pathlib import Path
from typing import Iterator

from backup_dr.core.errors import BackupDRError

log = logging.getLogger(__name__)

#: Lists kept in a manifest are capped; the counts stay exact.
MAX_LISTED = 1000


class SourceUnreadableError(BackupDRError):
    """A file or directory of the source cannot be read (permissions): retrying will not help."""


@dataclass(frozen=True)
class Candidate:
    relpath: str  # relative to the source root, '/'-separated
    path: str  # absolute path on disk
    st: os.stat_result  # lstat at listing time
    linkname: str = ""  # symlinks only

    @property
    def is_dir(self) -> bool:
        return stat.S_ISDIR(self.st.st_mode)

    @property
    def is_symlink(self) -> bool:
        return stat.S_ISLNK(self.st.st_mode)


def _kind_of_special(mode: int) -> str:
    if stat.S_ISSOCK(mode):
        return "socket"
    if stat.S_ISFIFO(mode):
        return "named pipe (FIFO)"
    if stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
        return "device node"
    return "special file"


def display_path(relpath: str) -> str:
    """A path as it may appear in a manifest (JSON, UTF-8): undecodable bytes become ``\\xNN``."""
    return os.fsencode(relpath).decode("utf-8", "backslashreplace")


def link_escapes(relpath: str, target: str) -> bool:
    """True if a symlink at ``relpath`` pointing to ``target`` leaves the tree (lexically)."""
    if target.startswith("/"):
        return True
    resolved = posixpath.normpath(posixpath.join(posixpath.dirname(relpath), target))
    return resolved == ".." or resolved.startswith("../")


class Selection:
    """Walks ``root`` and yields :class:`Candidate` objects; records what it skipped and why."""

    def __init__(self, root: Path, *, include: tuple[str, ...] = (), exclude: tuple[str, ...] = (),
                 modified_after_ns: int | None = None):
        self.root = root
        self.include = include
        self.exclude = exclude
        self.modified_after_ns = modified_after_ns
        self.keep_empty_dirs = not include and modified_after_ns is None
        self.skipped: list[dict[str, str]] = []
        self.skipped_count = 0
        self._pending: list[Candidate] = []  # directories not yet written (lazy mode)
        self._emitted = 0  # how many of _pending have been written

    def skip(self, relpath: str, reason: str) -> None:
        """Record (and log) an entry left out of the archive."""
        shown = display_path(relpath)
        log.warning("skipping %s: %s", shown, reason)
        self.skipped_count += 1
        if len(self.skipped) < MAX_LISTED:
            self.skipped.append({"path": shown, "reason": display_path(reason)})

    def _matches(self, patterns: tuple[str, ...], relpath: str, name: str) -> bool:
        return any(fnmatchcase(name, p) or fnmatchcase(relpath, p) for p in patterns)

    def _wanted(self, relpath: str, name: str, st: os.stat_result) -> bool:
        if self.include and not self._matches(self.include, relpath, name):
            return False
        if self.modified_after_ns is not None and st.st_mtime_ns <= self.modified_after_ns:
            return False
        return True

    def walk(self) -> Iterator[Candidate]:
        yield from self._walk(str(self.root), "")

    def _flush_pending(self) -> Iterator[Candidate]:
        yield from self._pending[self._emitted:]
        self._emitted = len(self._pending)

    def _list(self, abs_dir: str, rel_dir: str) -> list[os.DirEntry]:
        try:
            with os.scandir(abs_dir) as it:
                return sorted(it, key=lambda e: e.name)
        except FileNotFoundError:
            self.skip(rel_dir or ".", "directory vanished before it could be listed")
        except NotADirectoryError:
            self.skip(rel_dir or ".", "directory was replaced by a file while being listed")
        except PermissionError as e:
            raise SourceUnreadableError(
                f"cannot list directory {abs_dir}: permission denied",
                detail=str(e),
                hint="give the backup worker read access to it, or add it to the source's `exclude` globs",
            ) from e
        return []

    def _walk(self, abs_dir: str, rel_dir: str) -> Iterator[Candidate]:
        for entry in self._list(abs_dir, rel_dir):
            rel = f"{rel_dir}/{entry.name}" if rel_dir else entry.name
            if self.exclude and self._matches(self.exclude, rel, entry.name):
                log.debug("excluded by pattern: %s", rel)
                continue
            try:
                st = entry.stat(follow_symlinks=False)
            except FileNotFoundError:
                self.skip(rel, "vanished before it could be read")
                continue
            mode = st.st_mode
            if stat.S_ISDIR(mode):
                cand = Candidate(rel, entry.path, st)
                if self.keep_empty_dirs:
                    yield cand
                    yield from self._walk(entry.path, rel)
                else:
                    self._pending.append(cand)
                    yield from self._walk(entry.path, rel)
                    self._pending.pop()
                    self._emitted = min(self._emitted, len(self._pending))
                continue
            if not self._wanted(rel, entry.name, st):
                continue
            if stat.S_ISLNK(mode):
                try:
                    target = os.readlink(entry.path)
                except FileNotFoundError:
                    self.skip(rel, "vanished before it could be read")
                    continue
                if link_escapes(rel, target):
                    self.skip(rel, f"symlink to {target!r} points outside the source directory (not followed, not stored)")
                    continue
                cand = Candidate(rel, entry.path, st, linkname=target)
            elif stat.S_ISREG(mode):
                cand = Candidate(rel, entry.path, st)
            else:
                self.skip(rel, f"{_kind_of_special(mode)}: not archived")
                continue
            yield from self._flush_pending()
            yield cand
