"""Read-side stream helpers shared by the remote stores and replication.

:class:`HashingReader` hashes exactly the bytes an upload consumed, so a store can compare
them with what the server reports (GCS crc32c, S3 ChecksumSHA256) and the caller with
the manifest's sha256. It reports itself NOT seekable: upload libraries then read it
once, front to back (boto3 buffers each part in memory, bounded by its transfer config),
so the hash is of the bytes sent even when a part is retried.
"""

from __future__ import annotations

import base64
import hashlib
from typing import BinaryIO, Callable

import google_crc32c


class HashingReader:
    """Wrap a readable binary stream; count and hash (sha256, optionally crc32c) what is read.

    ``on_error`` turns an exception raised by the wrapped stream into the caller's own
    (replication uses it to name the local file that could not be read).
    """

    def __init__(self, raw: BinaryIO, *, crc32c: bool = False,
                 on_error: Callable[[Exception], Exception] | None = None,
                 on_read: Callable[[int], None] | None = None):
        self._raw = raw
        self._sha = hashlib.sha256()
        self._crc = google_crc32c.Checksum() if crc32c else None
        self._on_error = on_error
        self._on_read = on_read
        self.size = 0

    def read(self, n: int = -1) -> bytes:
        """Up to ``n`` bytes, and fewer ONLY at the end of the stream.

        Upload libraries take a short read for the end (boto3 then does a single PUT of
        what it has; a GCS resumable upload finalizes), so short reads of pipes, sockets
        or slow sources are filled here.
        """
        data = self._read_raw(n)
        if n is not None and n > 0 and 0 < len(data) < n:
            chunks = [data]
            got = len(data)
            while got < n:
                more = self._read_raw(n - got)
                if not more:
                    break
                chunks.append(more)
                got += len(more)
            data = b"".join(chunks)
        if data:
            self._sha.update(data)
            if self._crc is not None:
                self._crc.update(data)
            self.size += len(data)
            if self._on_read is not None:
                self._on_read(len(data))
        return data

    def _read_raw(self, n: int) -> bytes:
        try:
            return self._raw.read(n)
        except Exception as e:  # noqa: BLE001 - re-raised, translated by the caller's hook
            if self._on_error is None:
                raise
            raise self._on_error(e) from e

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return False

    def tell(self) -> int:
        return self.size

    def seek(self, pos: int, whence: int = 0) -> int:
        """Only "stay where you are" is possible: rewinding would make the hash lie.

        (GCS resumable uploads ask for ``tell()``/``seek(tell())``; a real rewind after a
        failed chunk raises, and the whole object is uploaded again by the retry.)
        """
        target = pos if whence == 0 else self.size + pos if whence == 1 else None
        if target != self.size:
            raise OSError(f"cannot seek a one-pass hashing stream (at {self.size}, asked for {pos}, whence {whence})")
        return self.size

    @property
    def sha256(self) -> str:
        return self._sha.hexdigest()

    @property
    def sha256_b64(self) -> str:
        return base64.b64encode(self._sha.digest()).decode("ascii")

    @property
    def crc32c_b64(self) -> str | None:
        return base64.b64encode(self._crc.digest()).decode("ascii") if self._crc is not None else None


def b64_to_hex(value: str | None) -> str | None:
    """A base64 digest as S3/GCS report it, in hex (None if absent or not a whole-object digest)."""
    if not value or "-" in value:  # "xxxx-3": S3 composite checksum of a multipart upload
        return None
    try:
        return base64.b64decode(value).hex()
    except ValueError:
        return None
