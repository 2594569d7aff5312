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
their files: the second one fails fast with a retryable error. The lock file is removed
(still locked) once the manifest is written, so a committed backup holds only its data
files and manifest; an attempt arriving later finds the manifest and stops.

With ``encryption=`` (a :class:`backup_dr.core.crypto.BackupEncryption`, from the class's
policy) every file is stored as ciphertext (format in :mod:`backup_dr.core.crypto.stream`):
``open_file`` encrypts while the engine writes, so no plaintext reaches the disk. The
exception are formats in :data:`ENCRYPT_AT_COMMIT`, whose engines check the file they
just wrote with an external tool by path (``redis-check-rdb``, ``git bundle verify``):
they are written plain, checked, and encrypted in place by :meth:`commit` before the
manifest is written (plaintext lives on the staging disk only while the task runs, and a
failed attempt's leftovers are deleted by ``abort``/the retry's ``begin``).
"""

from __future__ import annotations

import fcntl
import logging
import os
import shutil
from contextlib import contextmanager
from dataclasses import replace
from datetime import datetime, timezone
from typing import Any, Iterator

from backup_dr.core.artifacts.layout import MANIFEST, BackupId
from backup_dr.core.artifacts.manifest import FileEntry, Manifest, iso, retention_block
from backup_dr.core.crypto.files import encrypt_file_in_place, encrypting_writer, sealed_metadata
from backup_dr.core.crypto.keys import BackupEncryption
from backup_dr.core.errors import IntegrityError, StoreError
from backup_dr.core.policy_model import Retention
from backup_dr.core.progress import Progress
from backup_dr.core.stores.local import HashingWriter, LocalStore

log = logging.getLogger(__name__)

_LOCK = ".tmp-lock"

#: Formats whose engines re-read the written file by path (see the module doc).
ENCRYPT_AT_COMMIT = frozenset({"rdb", "git-bundle"})


class ArtifactWriter:
    def __init__(self, store: LocalStore, bid: BackupId, *, source_type: str, retention: Retention | None = None,
                 run_after: datetime | None = None, encryption: BackupEncryption | None = None):
        self.store = store
        self.encryption = encryption
        self._encrypt_at_commit: list[str] = []
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
            self._release(remove_lock=True)
            raise StoreError(f"backup {self.bid} completed meanwhile in another attempt", hint="nothing to do; the retry will find it")
        for child in self.directory.iterdir():
            if child.name != _LOCK:
                log.info("removing leftover of an earlier attempt: %s", child)
                child.unlink() if child.is_file() else shutil.rmtree(child, ignore_errors=True)
        self.files = []
        self._encrypt_at_commit = []
        self.started_at = datetime.now(timezone.utc)

    def _release(self, *, remove_lock: bool = False) -> None:
        if self._lock_fd is not None:
            if remove_lock:  # while still holding it: the manifest now tells any later attempt to stop
                (self.directory / _LOCK).unlink(missing_ok=True)
            fcntl.flock(self._lock_fd, fcntl.LOCK_UN)
            os.close(self._lock_fd)
            self._lock_fd = None

    @contextmanager
    def open_file(self, name: str, *, codec: str = "none", format: str = "", expected_size: int | None = None) -> Iterator[HashingWriter]:
        """A hashing (and, for an encrypted class, encrypting) stream for one data file;
        recorded in the manifest when closed cleanly."""
        if self._lock_fd is None:
            raise RuntimeError("call begin() before writing files")
        if self.encryption is None or format in ENCRYPT_AT_COMMIT:
            with self.store.open_write(self.bid.key(name), expected_size=expected_size) as w:
                yield w
            self.add_entry(FileEntry(name=name, size=w.size, sha256=w.sha256, codec=codec, format=format))
            if self.encryption is not None:
                self._encrypt_at_commit.append(name)
            return
        with self.store.open_write(self.bid.key(name), expected_size=expected_size) as w:
            sealer = encrypting_writer(w, self.encryption, str(self.bid), name)
            yield sealer
            sealer.close()
        self.add_entry(FileEntry(name=name, size=w.size, sha256=w.sha256, codec=codec, format=format,
                                 plain_sha256=sealer.plain_sha256, plain_size=sealer.plain_size,
                                 encryption=sealed_metadata(sealer, self.encryption)))

    def _encrypt_staged(self) -> None:
        """Encrypt the files written plain (ENCRYPT_AT_COMMIT) in place, keeping their manifest order."""
        pending = [f for f in self.files if f.name in self._encrypt_at_commit]
        if not pending:
            return
        progress = Progress(f"encrypt {self.bid}", total_items=len(pending), total_bytes=sum(f.size for f in pending),
                            unit="files")
        for plain in pending:
            w, sealer = encrypt_file_in_place(self.store, self.bid.key(plain.name), self.encryption, str(self.bid), plain.name,
                                              on_read=lambda n: progress.add(0, n))
            if (sealer.plain_size, sealer.plain_sha256) != (plain.size, plain.sha256):
                raise IntegrityError(f"backup {self.bid}: {plain.name} changed on disk between writing and encrypting it; "
                                     "refusing to write a manifest")
            sealed = FileEntry(name=plain.name, size=w.size, sha256=w.sha256, codec=plain.codec, format=plain.format,
                               plain_sha256=plain.sha256, plain_size=plain.size,
                               encryption=sealed_metadata(sealer, self.encryption))
            self.files = [sealed if f.name == plain.name else f for f in self.files]
            progress.add(1)
        self._encrypt_at_commit = []
        progress.done()

    def add_entry(self, entry: FileEntry) -> None:
        self.files = [f for f in self.files if f.name != entry.name] + [entry]

    def commit(self, *, consistent_point: dict[str, Any] | None = None, counts: dict[str, int] | None = None,
               details: dict[str, Any] | None = None, previous_id: str | None = None) -> Manifest:
        """Check every file is on disk with its recorded size, then write the manifest LAST."""
        if self._lock_fd is None:
            raise RuntimeError("call begin() before commit()")
        committed = False
        try:
            if not self.files:
                raise IntegrityError(f"backup {self.bid} has no data files; refusing to write a manifest")
            self._encrypt_staged()
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
                details=details or {},
                previous_id=previous_id,
            )
            if self.retention:  # kept (and Object-Locked) for keep_within from when the data was captured
                manifest = replace(manifest, retention=retention_block(self.retention.text, self.retention.keep_within,
                                                                       manifest.captured_at))
            with self.store.open_write(self.bid.manifest_key) as w:
                w.write(manifest.to_json())
            committed = True
            log.info("backup %s committed: %d file(s), %.1f MB", self.bid, len(self.files), manifest.total_size / 1e6)
            return manifest
        finally:
            self._release(remove_lock=committed)

    def abort(self) -> None:
        """Remove everything this attempt wrote (no manifest was written)."""
        try:
            if not (self.directory / MANIFEST).exists():
                self.store.delete_tree(self.bid.prefix)
        finally:
            self._release()
