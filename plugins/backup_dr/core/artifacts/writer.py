"""Build one backup in the local (staging) store: data files first, ``manifest.json`` last.

Used by every engine (MongoDB, Redis, files, git)::

    writer = ArtifactWriter(local_store, bid, source_type="mongodb", retention=cls.retention)
    done = writer.existing()            # a retry after success: nothing to redo
    if done is None:
        writer.begin()                  # takes the lock, clears a failed attempt's leftovers
        with writer.open_file("dump.archive.gz", codec="gzip", format="mongodump-archive") as out:
            engine.dump(out)
        manifest = writer.commit(consistent_point=..., counts=...)

While a backup is being written an exclusive ``flock`` is held on a lock file inside its
directory, so two attempts of the same task (a zombie and its retry) cannot interleave
their files: the second one fails fast with a retryable error.
"""

from __future__ import annotations

import fcntl
import logging
import os
import shutil
from contextlib import contextmanager
from datetime import datetime, timezone
from typing import Any, Iterator

from backup_dr.core.artifacts.layout import MANIFEST, BackupId
from backup_dr.core.artifacts.manifest import FileEntry, Manifest, iso, retention_block
from backup_dr.core.errors import IntegrityError, StoreError
from backup_dr.core.policy_model import Retention
from backup_dr.core.stores.local import HashingWriter, LocalStore

log = logging.getLogger(__name__)

_LOCK = ".tmp-lock"


class ArtifactWriter:
    def __init__(self, store: LocalStore, bid: BackupId, *, source_type: str, retention: Retention | None = None,
                 run_after: datetime | None = None):
        self.store = store
        self.bid = bid
        self.source_type = source_type
        self.retention = retention
        self.run_after = run_after or bid.stamp
        self.files: list[FileEntry] = []
        self.started_at: datetime | None = None
        self._lock_fd: int | None = None

    @property
    def directory(self):
        return self.store.path(self.bid.prefix)

    def existing(self) -> Manifest | None:
        """The manifest of a previous successful attempt, if any (makes retries idempotent)."""
        info = self.store.stat(self.bid.manifest_key)
        if info is None:
            return None
        return Manifest.from_json(self.store.get_bytes(self.bid.manifest_key), where=f"{self.store.name}:{self.bid.manifest_key}")

    def begin(self) -> None:
        """Lock the backup directory and delete leftovers of a failed attempt."""
        self.directory.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.directory / _LOCK, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            raise StoreError(
                f"backup {self.bid} is being written by another attempt right now",
                hint="two runs of the same task overlap; this one will retry after the other finishes",
            ) from None
        self._lock_fd = fd
        if (self.directory / MANIFEST).exists():
            raise StoreError(f"backup {self.bid} completed meanwhile in another attempt", hint="nothing to do; the retry will find it")
        for child in self.directory.iterdir():
            if child.name != _LOCK:
                log.info("removing leftover of an earlier attempt: %s", child)
                child.unlink() if child.is_file() else shutil.rmtree(child, ignore_errors=True)
        self.files = []
        self.started_at = datetime.now(timezone.utc)

    def _release(self) -> None:
        if self._lock_fd is not None:
            fcntl.flock(self._lock_fd, fcntl.LOCK_UN)
            os.close(self._lock_fd)
            self._lock_fd = None

    @contextmanager
    def open_file(self, name: str, *, codec: str = "none", format: str = "", expected_size: int | None = None) -> Iterator[HashingWriter]:
        """A hashing stream for one data file; recorded in the manifest when closed cleanly."""
        if self._lock_fd is None:
            raise RuntimeError("call begin() before writing files")
        with self.store.open_write(self.bid.key(name), expected_size=expected_size) as w:
            yield w
        self.add_entry(FileEntry(name=name, size=w.size, sha256=w.sha256, codec=codec, format=format))

    def add_entry(self, entry: FileEntry) -> None:
        self.files = [f for f in self.files if f.name != entry.name] + [entry]

    def commit(self, *, consistent_point: dict[str, Any] | None = None, counts: dict[str, int] | None = None,
               details: dict[str, Any] | None = None, previous_id: str | None = None) -> Manifest:
        """Check every file is on disk with its recorded size, then write the manifest LAST."""
        if self._lock_fd is None:
            raise RuntimeError("call begin() before commit()")
        try:
            if not self.files:
                raise IntegrityError(f"backup {self.bid} has no data files; refusing to write a manifest")
            for f in self.files:
                info = self.store.stat(self.bid.key(f.name))
                if info is None or info.size != f.size:
                    raise IntegrityError(
                        f"backup {self.bid}: {f.name} is {'missing' if info is None else f'{info.size} bytes'}, "
                        f"expected {f.size} bytes; refusing to write a manifest"
                    )
            finished = datetime.now(timezone.utc)
            manifest = Manifest(
                backup_id=str(self.bid),
                backup_class=self.bid.backup_class,
                source=self.bid.source,
                source_type=self.source_type,
                kind=self.bid.kind,
                run_after=iso(self.run_after),
                started_at=iso(self.started_at or finished),
                finished_at=iso(finished),
                files=tuple(self.files),
                consistent_point=consistent_point or {},
                counts=counts or {},
                retention=retention_block(self.retention.text, self.retention.keep_within, self.bid.stamp) if self.retention else {},
                details=details or {},
                previous_id=previous_id,
            )
            with self.store.open_write(self.bid.manifest_key) as w:
                w.write(manifest.to_json())
            log.info("backup %s committed: %d file(s), %.1f MB", self.bid, len(self.files), manifest.total_size / 1e6)
            return manifest
        finally:
            self._release()

    def abort(self) -> None:
        """Remove everything this attempt wrote (no manifest was written)."""
        try:
            if not (self.directory / MANIFEST).exists():
                self.store.delete_tree(self.bid.prefix)
        finally:
            self._release()
