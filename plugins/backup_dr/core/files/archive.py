"""Back up a directory as one compressed tar archive, streamed straight into the store.

::

    writer = ArtifactWriter(local_store, BackupId.new("configuration", "app_config", "files", run_after),
                            source_type="files", retention=cls.retention)
    manifest = backup_files(policy.sources["app_config"], writer)

The archive is read from the source exactly once and never copied: walk -> tar headers ->
zstd/gzip -> the store's hashing writer. Memory stays bounded (1 MiB chunks; files up to
:data:`SMALL_FILE` are read whole so they can be re-read if they change).

A file that changes while it is read never becomes a corrupt entry:

* small file (<= 4 MiB): read whole, then checked against ``fstat`` before and after;
  re-read up to 3 times if it changed; one that keeps shrinking is skipped with a reason,
  one that keeps growing or changing is stored as read and listed under
  ``changed_while_read``;
* large file: its size at open time goes into the header and exactly that many bytes
  follow. Growth (an active log) is fine: its first N bytes are stored and it is listed
  under ``changed_while_read``. If it shrinks, a header is already out, so the whole
  archive is discarded (no manifest) and a retryable :class:`SourceError` raised;
* vanished between listing and reading: skipped with a reason.
"""

from __future__ import annotations

import errno
import logging
import os
import stat
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Iterator

from backup_dr.core.artifacts.layout import utc
from backup_dr.core.artifacts.manifest import Manifest, iso
from backup_dr.core.artifacts.writer import ArtifactWriter
from backup_dr.core.durations import format_duration
from backup_dr.core.errors import NotFoundError, SourceError
from backup_dr.core.files.selection import MAX_LISTED, Candidate, Selection, SourceUnreadableError, display_path
from backup_dr.core.files.tarstream import (
    CODECS, ShortReadError, TarStreamWriter, archive_suffix, compressing, make_tarinfo,
)
from backup_dr.core.policy_model import FilesSource
from backup_dr.core.progress import Progress

log = logging.getLogger(__name__)

SMALL_FILE = 4 * 1024 * 1024
CHUNK = 1024 * 1024
READ_ATTEMPTS = 3
_EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)
_OPEN_FLAGS = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0)

# Indirections so tests can make a real file change at an exact moment (fault injection).
_open = os.open
_read = os.read


def archive_file_name(source: FilesSource) -> str:
    """``<source>.tar.zst`` or ``<source>.tar.gz``."""
    return f"{source.name}.{archive_suffix(source.compression)}"


def source_root(source: FilesSource) -> Path:
    """The source directory, or a clear error naming the path and the policy field."""
    field = f"sources.{source.name}.path"
    root = Path(source.path)
    if not root.exists():
        raise NotFoundError(
            f"files source {source.name!r}: directory {root} does not exist ({field})",
            hint=f"create it, mount it on this worker, or correct {field} in the policy file",
        )
    if not root.is_dir():
        raise NotFoundError(
            f"files source {source.name!r}: {root} is not a directory ({field})",
            hint=f"{field} must name a directory; its contents are archived",
        )
    return root


def _check_writer(writer: ArtifactWriter) -> None:
    if writer.bid.kind != "files" or writer.source_type != "files":
        raise ValueError(f"backup_files needs a writer for kind 'files' and source_type 'files', got "
                         f"{writer.bid.kind!r}/{writer.source_type!r}")


def backup_files(source: FilesSource, writer: ArtifactWriter, *, now: datetime | None = None) -> Manifest:
    """Archive ``source.path`` into ``writer``'s backup and commit its manifest.

    :param source: the policy's files source (path, include/exclude globs, modified_within, compression).
    :param writer: an :class:`ArtifactWriter` for a ``files`` backup id; ``begin``/``commit``/``abort``
        are called here. A retry after success returns the existing manifest untouched.
    :param now: the reference time of ``modified_within`` (default: the current time).
    :return: the committed manifest (counts: files, bytes, directories, symlinks, skipped).
    """
    _check_writer(writer)
    if source.compression not in CODECS:
        raise ValueError(f"sources.{source.name}.compression: {source.compression!r} is not one of {', '.join(CODECS)}")
    done = writer.existing()
    if done is not None:
        log.info("backup %s already complete; nothing to do", writer.bid)
        return done
    root = source_root(source)
    now = utc(now or datetime.now(timezone.utc))
    cutoff = now - source.modified_within if source.modified_within else None
    cutoff_ns = None
    if cutoff is not None:
        cutoff_ns = (cutoff - _EPOCH) // timedelta(microseconds=1) * 1000
    selection = Selection(root, include=source.include, exclude=source.exclude, modified_after_ns=cutoff_ns)
    name = archive_file_name(source)
    writer.begin()
    try:
        builder = _ArchiveBuilder(selection, label=f"archive {source.name}")
        with writer.open_file(name, codec=source.compression, format="tar") as out:
            with compressing(out, source.compression) as sink:
                builder.run(TarStreamWriter(sink))
        root_st = root.stat()
        details = {
            "source_path": display_path(str(root)),
            "archive": name,
            "include": list(source.include),
            "exclude": list(source.exclude),
            "modified_within": format_duration(source.modified_within) if source.modified_within else None,
            "modified_after": iso(cutoff),
            "root": {"mode": oct(stat.S_IMODE(root_st.st_mode)), "mtime_ns": root_st.st_mtime_ns},
            "top_level": builder.top_level[:MAX_LISTED],
            "skipped": selection.skipped,
            "changed_while_read": builder.changed,
        }
        manifest = writer.commit(counts=builder.counts(selection), details=details)
    except BaseException:
        writer.abort()
        raise
    return manifest


class _ArchiveBuilder:
    def __init__(self, selection: Selection, *, label: str):
        self.selection = selection
        self.progress = Progress(label, unit="files")
        self.files = self.bytes = self.directories = self.symlinks = 0
        self.top_level: list[str] = []
        self.changed: list[dict[str, str]] = []
        self.tar: TarStreamWriter | None = None

    def counts(self, selection: Selection) -> dict[str, int]:
        return {"files": self.files, "bytes": self.bytes, "directories": self.directories,
                "symlinks": self.symlinks, "skipped": selection.skipped_count}

    def run(self, tar: TarStreamWriter) -> None:
        self.tar = tar
        for cand in self.selection.walk():
            if cand.is_dir:
                self._written(cand)
                tar.add(make_tarinfo(cand.relpath, cand.st))
                self.directories += 1
            elif cand.is_symlink:
                self._written(cand)
                tar.add(make_tarinfo(cand.relpath, cand.st, linkname=cand.linkname))
                self.symlinks += 1
            else:
                self._add_file(cand)
        tar.close()
        self.progress.done()

    def _written(self, cand: Candidate) -> None:
        if "/" not in cand.relpath and len(self.top_level) < MAX_LISTED:
            self.top_level.append(display_path(cand.relpath))

    def _changed(self, relpath: str, reason: str) -> None:
        shown = display_path(relpath)
        log.warning("%s %s", shown, reason)
        if len(self.changed) < MAX_LISTED:
            self.changed.append({"path": shown, "reason": reason})

    def _add_file(self, cand: Candidate) -> None:
        for attempt in range(1, READ_ATTEMPTS + 1):
            try:
                fd = _open(cand.path, _OPEN_FLAGS)
            except FileNotFoundError:
                self.selection.skip(cand.relpath, "vanished before it could be read")
                return
            except PermissionError as e:
                raise SourceUnreadableError(
                    f"cannot read {display_path(cand.path)}: permission denied", detail=str(e),
                    hint="give the backup worker read access to it, or add it to the source's `exclude` globs",
                ) from e
            except OSError as e:
                if e.errno == errno.ELOOP:
                    self.selection.skip(cand.relpath, "was replaced by a symlink while being archived")
                    return
                raise SourceError(f"cannot open {display_path(cand.path)}: {e.strerror}") from e
            try:
                st = os.fstat(fd)
                if not stat.S_ISREG(st.st_mode):
                    self.selection.skip(cand.relpath, "is no longer a regular file")
                    return
                if st.st_size > SMALL_FILE:
                    self._stream_large(fd, cand, st)
                    return
                if self._add_small(fd, cand, st, last_attempt=attempt == READ_ATTEMPTS):
                    return
            finally:
                os.close(fd)
            log.info("%s changed while being read; reading it again (attempt %d)", cand.relpath, attempt + 1)

    def _add_small(self, fd: int, cand: Candidate, st: os.stat_result, *, last_attempt: bool) -> bool:
        """Read the whole file and write it if it held still; False asks for another attempt."""
        data = b"".join(_read_upto(fd, st.st_size))
        after = os.fstat(fd)
        complete = len(data) == st.st_size
        still = complete and after.st_size == st.st_size and after.st_mtime_ns == st.st_mtime_ns
        if not still and not last_attempt:
            return False
        if not complete:
            self.selection.skip(cand.relpath, f"shrank while being read ({READ_ATTEMPTS} attempts)")
            return True
        if not still:
            self._changed(cand.relpath, f"kept changing while being read; stored its first {st.st_size} bytes")
        self._written(cand)
        self.tar.add(make_tarinfo(cand.relpath, st, size=st.st_size), [data])
        self.files += 1
        self.bytes += st.st_size
        self.progress.add(1, st.st_size)
        return True

    def _stream_large(self, fd: int, cand: Candidate, st: os.stat_result) -> None:
        self._written(cand)
        try:
            self.tar.add(make_tarinfo(cand.relpath, st, size=st.st_size), _read_upto(fd, st.st_size, self.progress))
        except ShortReadError as e:
            raise SourceError(
                f"{display_path(cand.path)} shrank from {e.expected} to {e.got} bytes while being archived",
                detail="a tar entry cannot be taken back once its header is written, so this archive was "
                       "discarded and no manifest written",
                hint="a retry normally succeeds (log rotation, a rewrite); if the file is rewritten constantly, "
                     "exclude it or archive a snapshot of the directory",
            ) from None
        after = os.fstat(fd)
        if after.st_size != st.st_size or after.st_mtime_ns != st.st_mtime_ns:
            self._changed(cand.relpath, f"changed while being read (now {after.st_size} bytes); stored its first {st.st_size} bytes")
        self.files += 1
        self.bytes += st.st_size
        self.progress.add(1, 0)


def _read_upto(fd: int, size: int, progress: Progress | None = None) -> Iterator[bytes]:
    """Up to ``size`` bytes from ``fd`` in chunks; stops early at end of file."""
    left = size
    while left:
        chunk = _read(fd, min(CHUNK, left))
        if not chunk:
            return
        left -= len(chunk)
        if progress is not None:
            progress.add(0, len(chunk))
        yield chunk
