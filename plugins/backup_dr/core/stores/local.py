"""Local filesystem store: temp name, fsync, atomic rename; the staging area of every backup.

Engines write straight into it through :meth:`LocalStore.open_write`, which hashes while
writing, so a multi-GB dump is read from the source exactly once and never copied.
"""

from __future__ import annotations

import errno
import hashlib
import os
import shutil
import uuid
from contextlib import contextmanager
from datetime import datetime, timezone
from pathlib import Path
from typing import BinaryIO, Iterator

from backup_dr.core.errors import NotFoundError, StoreError, StoreSpaceError
from backup_dr.core.stores.base import CHUNK, ObjectInfo, Store

_TMP = ".tmp-"


class HashingWriter:
    """A write-only binary stream that counts and sha256-hashes what passes through."""

    def __init__(self, raw: BinaryIO):
        self._raw = raw
        self._h = hashlib.sha256()
        self.size = 0

    def write(self, data) -> int:
        self._h.update(data)
        self.size += len(data)
        return self._raw.write(data)

    def flush(self) -> None:
        self._raw.flush()

    def writable(self) -> bool:
        return True

    @property
    def sha256(self) -> str:
        return self._h.hexdigest()


class LocalStore(Store):
    type = "local"

    def __init__(self, root: str | os.PathLike, name: str = "local"):
        self.root = Path(root)
        self.name = name

    def describe(self) -> str:
        return str(self.root)

    def path(self, key: str) -> Path:
        p = (self.root / key).resolve()
        if self.root.resolve() not in p.parents and p != self.root.resolve():
            raise ValueError(f"key {key!r} escapes the store root {self.root}")
        return p

    def _space_error(self, key: str, needed: int | None, e: OSError | None = None, *, written: int | None = None) -> StoreSpaceError:
        free = self.free_bytes()
        if needed:
            need = f"{needed / 1e6:.1f} MB"
        elif written:  # a stream of unknown length: what it had written is a lower bound of what it needs
            need = f"more than {written / 1e6:.1f} MB (the disk filled after {written / 1e6:.1f} MB of this file)"
        else:
            need = "more space"
        return StoreSpaceError(
            f"local store {self.name!r} ({self.root}) is full writing {key}",
            detail=f"needs {need}, {free / 1e6:.1f} MB free" if free is not None else f"needs {need}",
            hint=f"free space under {self.root} or prune old backups (python -m backup_dr prune --dry-run)",
        )

    @contextmanager
    def open_write(self, key: str, *, expected_size: int | None = None) -> Iterator[HashingWriter]:
        """Write ``key`` through a temp file; on clean exit fsync + atomic rename.

        On an exception the temp file is removed and nothing appears under ``key``.
        """
        dest = self.path(key)
        try:
            dest.parent.mkdir(parents=True, exist_ok=True)
        except OSError as e:
            raise StoreError(f"local store {self.name!r}: cannot create {dest.parent}: {e.strerror}") from e
        if expected_size is not None:
            free = self.free_bytes()
            if free is not None and free < expected_size:
                raise self._space_error(key, expected_size)
        tmp = dest.with_name(f"{_TMP}{uuid.uuid4().hex[:12]}-{dest.name}")
        writer: HashingWriter | None = None
        try:
            with open(tmp, "wb") as raw:
                writer = HashingWriter(raw)
                yield writer
                raw.flush()
                os.fsync(raw.fileno())
            os.replace(tmp, dest)
            _fsync_dir(dest.parent)
        except OSError as e:
            tmp.unlink(missing_ok=True)
            if e.errno in (errno.ENOSPC, errno.EDQUOT):
                raise self._space_error(key, expected_size, e, written=writer.size if writer else None) from e
            raise StoreError(f"local store {self.name!r}: writing {key} failed: {e.strerror or e}") from e
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise

    def put(self, key, stream, *, size=None, sha256=None, retain_until=None) -> ObjectInfo:
        with self.open_write(key, expected_size=size) as w:
            for chunk in iter(lambda: stream.read(CHUNK), b""):
                w.write(chunk)
        if sha256 and w.sha256 != sha256:
            self.delete(key)
            from backup_dr.core.errors import IntegrityError

            raise IntegrityError(f"local store {self.name!r}: {key} hashed to {w.sha256}, expected {sha256}")
        return ObjectInfo(key, w.size, datetime.now(timezone.utc), w.sha256)

    def put_file(self, key, path, *, sha256=None, retain_until=None) -> ObjectInfo:
        src = Path(path).resolve()
        if src == self.path(key):
            st = src.stat()
            return ObjectInfo(key, st.st_size, datetime.fromtimestamp(st.st_mtime, timezone.utc), sha256)
        return super().put_file(key, path, sha256=sha256, retain_until=retain_until)

    @contextmanager
    def open(self, key: str) -> Iterator[BinaryIO]:
        try:
            f = open(self.path(key), "rb")
        except FileNotFoundError as e:
            raise NotFoundError(f"{key} not found in local store {self.name!r} ({self.root})") from e
        except OSError as e:
            raise StoreError(f"local store {self.name!r}: cannot read {key}: {e.strerror}") from e
        with f:
            yield f

    def stat(self, key: str) -> ObjectInfo | None:
        try:
            st = self.path(key).stat()
        except FileNotFoundError:
            return None
        return ObjectInfo(key, st.st_size, datetime.fromtimestamp(st.st_mtime, timezone.utc))

    def list(self, prefix: str = "") -> Iterator[ObjectInfo]:
        base = self.root
        # walk only the deepest directory the prefix names
        head = prefix.rsplit("/", 1)[0] if "/" in prefix else ""
        start = base / head if head else base
        if not start.exists():
            return
        found = []
        for dirpath, _dirs, files in os.walk(start):
            for fn in files:
                if fn.startswith(_TMP):
                    continue
                full = Path(dirpath) / fn
                key = full.relative_to(base).as_posix()
                if key.startswith(prefix):
                    found.append(key)
        for key in sorted(found):
            info = self.stat(key)
            if info is not None:
                yield info

    def delete(self, key: str) -> None:
        p = self.path(key)
        try:
            p.unlink()
        except FileNotFoundError:
            return
        except OSError as e:
            raise StoreError(f"local store {self.name!r}: cannot delete {key}: {e.strerror}") from e
        # remove now-empty parent directories up to the root
        parent = p.parent
        root = self.root.resolve()
        while parent != root and root in parent.parents:
            try:
                parent.rmdir()
            except OSError:
                break
            parent = parent.parent

    def delete_tree(self, prefix: str) -> None:
        """Remove a backup directory and any temp files in it (partial work of a failed attempt)."""
        shutil.rmtree(self.path(prefix), ignore_errors=True)

    def free_bytes(self) -> int | None:
        p = self.root
        while not p.exists() and p != p.parent:
            p = p.parent
        return shutil.disk_usage(p).free


def _fsync_dir(path: Path) -> None:
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
