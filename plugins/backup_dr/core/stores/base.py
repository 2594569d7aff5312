"""The one interface every backup store implements (local filesystem, S3, GCS).

Keys are relative to the store's root (its local path or bucket prefix) and always use
``/``. Implementations translate vendor exceptions into :mod:`backup_dr.core.errors`
(``StoreError`` for transient I/O, ``StoreSpaceError``, ``NotFoundError``,
``ObjectLockedError``), chained with ``from e``.
"""

from __future__ import annotations

import hashlib
from abc import ABC, abstractmethod
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import BinaryIO, Iterator

from backup_dr.core.errors import BackupDRError, IntegrityError

CHUNK = 1024 * 1024


class ObjectLockedError(BackupDRError):
    """The object is under retention (S3 Object Lock) and cannot be deleted yet."""


@dataclass(frozen=True)
class ObjectInfo:
    key: str
    size: int
    mtime: datetime | None = None
    sha256: str | None = None  # when the store can tell without reading the object
    retain_until: datetime | None = None
    lock_mode: str | None = None


class Store(ABC):
    """put a stream / get a stream / stat / list by prefix / delete."""

    #: policy store name, e.g. "s3"; set by the factory
    name: str = ""
    #: "local" | "s3" | "gcs"
    type: str = ""

    @abstractmethod
    def describe(self) -> str:
        """Where this store is, for messages: ``/backups``, ``s3://bucket/prefix``."""

    @abstractmethod
    def put(self, key: str, stream: BinaryIO, *, size: int | None = None, sha256: str | None = None,
            retain_until: datetime | None = None) -> ObjectInfo:
        """Store the stream under ``key`` (replacing any object there). ``retain_until``
        asks for write-once retention where the store supports it."""

    @abstractmethod
    @contextmanager
    def open(self, key: str) -> Iterator[BinaryIO]:
        """A readable binary stream of the object. Raises NotFoundError if absent."""

    @abstractmethod
    def stat(self, key: str) -> ObjectInfo | None:
        """Object metadata, or None if there is no such object (not found is a value)."""

    @abstractmethod
    def list(self, prefix: str = "") -> Iterator[ObjectInfo]:
        """Every object whose key starts with ``prefix``, in key order."""

    @abstractmethod
    def delete(self, key: str) -> None:
        """Delete the object; ObjectLockedError if retention forbids it. Absent is fine."""

    # ---- conveniences built on the primitives (backends may override for speed)

    def put_bytes(self, key: str, data: bytes, **kw) -> ObjectInfo:
        import io

        return self.put(key, io.BytesIO(data), size=len(data), sha256=hashlib.sha256(data).hexdigest(), **kw)

    def get_bytes(self, key: str) -> bytes:
        with self.open(key) as f:
            return f.read()

    def put_file(self, key: str, path: str | Path, *, sha256: str | None = None, retain_until: datetime | None = None) -> ObjectInfo:
        p = Path(path)
        with open(p, "rb") as f:
            return self.put(key, f, size=p.stat().st_size, sha256=sha256, retain_until=retain_until)

    def get_file(self, key: str, path: str | Path) -> str:
        """Download to ``path``; return the sha256 of the bytes written."""
        h = hashlib.sha256()
        with self.open(key) as src, open(path, "wb") as dst:
            for chunk in iter(lambda: src.read(CHUNK), b""):
                h.update(chunk)
                dst.write(chunk)
        return h.hexdigest()

    def hash_object(self, key: str) -> tuple[int, str]:
        """Read the whole object back and return (size, sha256): client-side verification."""
        h, n = hashlib.sha256(), 0
        with self.open(key) as src:
            for chunk in iter(lambda: src.read(CHUNK), b""):
                h.update(chunk)
                n += len(chunk)
        return n, h.hexdigest()

    def abort_incomplete_uploads(self, prefix: str) -> int:
        """Drop invisible leftovers of crashed uploads under ``prefix`` (S3 multipart); returns how many."""
        return 0

    def free_bytes(self) -> int | None:
        """Free space, where the store has such a notion (local disks); None otherwise."""
        return None

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.name or '?'} {self.describe()}>"


class BucketStore(Store):
    """A store rooted at a key prefix inside an object-store bucket (S3, GCS): maps our keys to
    the bucket's full keys and back, so both clouds name and list objects the same way."""

    prefix: str = ""

    def _k(self, key: str) -> str:
        return f"{self.prefix}/{key}" if self.prefix else key

    def _rel(self, full: str) -> str:
        return full[len(self.prefix) + 1 :] if self.prefix else full

    def _check_sent(self, key: str, reader, size: int | None, sha256: str | None) -> None:
        """The bytes the upload consumed (``reader``: a HashingReader) are the ones the caller meant."""
        if size is not None and reader.size != size:
            raise IntegrityError(f"{self.where}: {key}: the source gave {reader.size} bytes, expected {size}")
        if sha256 and reader.sha256 != sha256:
            raise IntegrityError(f"{self.where}: {key}: the bytes sent hash to {reader.sha256[:16]}…, expected {sha256[:16]}…",
                                 hint="the source file changed or is corrupt; check the local copy with verify")
