"""Extract a tar archive without letting it write anywhere but the destination.

Two layers, because a restore must hold even against an archive that matches its manifest
but was crafted (or written by a buggy tool):

1. :class:`StrictMembers` refuses, before anything is written for that member: absolute
   names, ``..`` components, hard links and special files (backup_dr never writes them),
   symlinks to absolute paths or out of the tree, duplicate names, and any name that goes
   *through* a symlink extracted earlier (the trick behind the 2025 tarfile filter
   bypasses, e.g. CVE-2025-4517; this Python may predate those fixes).
2. Python's own ``tarfile.data_filter`` then checks the real paths on disk.

Unlike the bare data filter, permission bits of files and directories are kept (minus
setuid/setgid/sticky): a restored config directory must come back with its modes. Exact
mtimes come from the pax ``mtime`` record (nanoseconds) rather than tarfile's float.
"""

from __future__ import annotations

import gzip
import os
import posixpath
import tarfile
from dataclasses import dataclass
from decimal import InvalidOperation
from pathlib import Path

import zstandard
from isal import isal_zlib

from backup_dr.core.errors import IntegrityError
from backup_dr.core.files.tarstream import decompressing, pax_to_ns


class UnsafeArchiveError(IntegrityError):
    """The archive holds a member that would write outside the target (or another forbidden member)."""


@dataclass
class ExtractStats:
    files: int = 0
    bytes: int = 0
    directories: int = 0
    symlinks: int = 0


def _member_problem(member: tarfile.TarInfo, seen: set[str], symlinks: set[str]) -> str | None:
    name = member.name
    if name.startswith("/"):
        return "absolute path"
    parts = name.rstrip("/").split("/")
    if ".." in parts:
        return "path contains '..'"
    if name.rstrip("/") in ("", "."):
        return "names the target directory itself"
    if member.islnk():
        return "hard link (backup_dr archives never contain hard links)"
    if not (member.isreg() or member.isdir() or member.issym()):
        return "device, FIFO or other special file"
    norm = "/".join(p for p in parts if p not in ("", "."))
    if norm in seen:
        return "appears twice in the archive"
    for i in range(1, len(parts)):
        through = "/".join(p for p in parts[:i] if p not in ("", "."))
        if through in symlinks:
            return f"path goes through the symlink {through!r}"
    if member.issym():
        link = member.linkname
        if link.startswith("/"):
            return f"symlink to the absolute path {link!r}"
        resolved = posixpath.normpath(posixpath.join(posixpath.dirname(norm), link))
        if resolved == ".." or resolved.startswith("../"):
            return f"symlink to {link!r} points outside the target"
        symlinks.add(norm)
    seen.add(norm)
    return None


class StrictMembers:
    """A tarfile extraction filter (callable ``(member, dest) -> member``) that also tallies."""

    def __init__(self) -> None:
        self.seen: set[str] = set()
        self.symlinks: set[str] = set()
        self.stats = ExtractStats()

    def __call__(self, member: tarfile.TarInfo, dest_path: str) -> tarfile.TarInfo:
        problem = _member_problem(member, self.seen, self.symlinks)
        if problem is None:
            try:
                filtered = tarfile.data_filter(member, dest_path)
            except tarfile.FilterError as e:
                problem = str(e)
        if problem is not None:
            raise UnsafeArchiveError(
                f"archive member {member.name!r} is unsafe: {problem}; the restore was stopped",
                hint="this archive was not written by backup_dr or was tampered with; restore another backup",
            )
        if member.isreg() or member.isdir():
            filtered = filtered.replace(mode=member.mode & 0o777, deep=False)
        if member.isreg():
            self.stats.files += 1
            self.stats.bytes += member.size
        elif member.isdir():
            self.stats.directories += 1
        else:
            self.stats.symlinks += 1
        return filtered


class _ExactTimeTarFile(tarfile.TarFile):
    """Sets mtimes to the nanosecond from the pax record when there is one."""

    def utime(self, tarinfo: tarfile.TarInfo, targetpath: str) -> None:
        exact = (tarinfo.pax_headers or {}).get("mtime")
        if exact:
            try:
                ns = pax_to_ns(exact)
            except (InvalidOperation, ValueError):
                ns = None
            if ns is not None:
                try:
                    os.utime(targetpath, ns=(ns, ns), follow_symlinks=False)
                    return
                except OSError as e:
                    raise tarfile.ExtractError("could not change modification time") from e
        super().utime(tarinfo, targetpath)


def extract_archive(path: str | os.PathLike, codec: str, dest: Path) -> ExtractStats:
    """Extract every member of the archive at ``path`` into the existing directory ``dest``.

    Raises :class:`UnsafeArchiveError` on a forbidden member and :class:`IntegrityError` on
    an unreadable archive; either way ``dest`` may hold a partial tree (callers extract into
    a staging directory and delete it).
    """
    strict = StrictMembers()
    try:
        with decompressing(path, codec) as stream:
            with _ExactTimeTarFile.open(fileobj=stream, mode="r|", errorlevel=2) as tar:
                tar.extractall(dest, filter=strict)
    except tarfile.ExtractError:
        raise  # the destination could not be written: not the archive's fault
    except (tarfile.TarError, zstandard.ZstdError, EOFError, gzip.BadGzipFile, isal_zlib.error) as e:
        raise IntegrityError(f"archive {Path(path).name} is unreadable: {type(e).__name__}: {e}",
                             hint="restore another backup or another store's copy") from e
    return strict.stats
