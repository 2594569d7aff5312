"""Whole-stream compression of archives: gzip (python-isal, standard gzip output), zstd, none.

gzip is the emergency-compatible choice: the stock ``mongorestore --archive --gzip`` reads it.
isal's ``igzip`` level 1 writes an ordinary RFC 1952 stream 8-20x faster than zlib at stock
mongodump's level 6, for an archive ~1.4x the size of stock's (measured side by side in
``benchmarks/mongo_dump.py``; the README says why that is the default). zstd (single-threaded,
level 3) is smaller at a similar speed but needs our reader (or ``zstd -dc | mongorestore --archive``).

Readers detect the codec from the first bytes, so a file whose manifest says one thing and
whose bytes say another is caught, and an unknown format is refused with a clear message.
"""

from __future__ import annotations

import io
from contextlib import contextmanager
from typing import BinaryIO, Iterator

from backup_dr.core.errors import IntegrityError

CODECS = ("gzip", "zstd", "none")
SUFFIX = {"gzip": ".gz", "zstd": ".zst", "none": ""}

GZIP_MAGIC = b"\x1f\x8b"
ZSTD_MAGIC = b"\x28\xb5\x2f\xfd"
ARCHIVE_MAGIC = b"\x6d\xe2\x99\x81"

_GZIP_LEVEL = 1  # isal levels 0-3: 3 saves ~1% at less than half the speed of 1
_ZSTD_LEVEL = 3


def check_codec(codec: str) -> str:
    if codec not in CODECS:
        raise IntegrityError(
            f"unknown compression {codec!r}",
            hint=f"use one of: {', '.join(CODECS)} (policy sources.<name>.compression)",
        )
    return codec


class _NoClose(io.RawIOBase):
    """Lets a compressor 'close' its output without closing the caller's stream."""

    def __init__(self, raw: BinaryIO):
        self._raw = raw

    def writable(self) -> bool:
        return True

    def write(self, data) -> int:
        self._raw.write(data)
        return len(data)

    def flush(self) -> None:
        self._raw.flush()


@contextmanager
def compressed_writer(raw: BinaryIO, codec: str, *, level: int | None = None) -> Iterator[BinaryIO]:
    """A writable stream that compresses into ``raw``; the trailer is written on clean exit.
    ``level``: the codec's level (default: the measured choice above; benchmarks sweep it)."""
    check_codec(codec)
    if codec == "none":
        yield raw
        return
    if codec == "gzip":
        from isal import igzip

        out = igzip.IGzipFile(fileobj=_NoClose(raw), mode="wb", compresslevel=_GZIP_LEVEL if level is None else level)
    else:
        import zstandard

        out = zstandard.ZstdCompressor(level=_ZSTD_LEVEL if level is None else level).stream_writer(_NoClose(raw), closefd=False)
    try:
        yield out
    except BaseException:
        raise
    else:
        out.close()  # writes the gzip trailer / zstd frame end


def sniff_codec(head: bytes) -> str:
    """The codec of a stream from its first bytes; IntegrityError if it is none we know."""
    if head.startswith(GZIP_MAGIC):
        return "gzip"
    if head.startswith(ZSTD_MAGIC):
        return "zstd"
    if head.startswith(ARCHIVE_MAGIC):
        return "none"
    raise IntegrityError(
        f"unknown compression or not a mongodump archive (first bytes {head[:4].hex(' ') or 'empty'})",
        detail="expected gzip (1f 8b), zstd (28 b5 2f fd) or an uncompressed archive (6d e2 99 81)",
        hint="check that the file is a MongoDB backup archive and was copied completely",
    )


class _TranslatingReader(io.RawIOBase):
    """Turns a decompressor's truncation/corruption exceptions into IntegrityError."""

    def __init__(self, inner, codec: str, where: str):
        self._inner, self._codec, self._where = inner, codec, where

    def readable(self) -> bool:
        return True

    def readinto(self, b) -> int:
        try:
            data = self._inner.read(len(b))
        except (EOFError, OSError, ValueError) as e:
            raise IntegrityError(
                f"{self._where}: the {self._codec} stream is truncated or corrupt ({e})",
                hint="the file was cut short or damaged; restore from another store's copy",
            ) from e
        except Exception as e:  # zstandard.ZstdError has no common base we can import lazily
            if type(e).__name__ == "ZstdError":
                raise IntegrityError(f"{self._where}: the zstd stream is corrupt ({e})",
                                     hint="restore from another store's copy") from e
            raise
        n = len(data)
        b[:n] = data
        return n


@contextmanager
def decompressed_reader(raw: BinaryIO, *, expect: str | None = None, where: str = "archive",
                        allow_plain: bool = False) -> Iterator[BinaryIO]:
    """A readable stream of the decompressed bytes; the codec is taken from the magic bytes.

    ``expect`` (from a manifest) must agree with what the bytes say. ``allow_plain``: bytes
    that are neither gzip nor zstd are read as they are (the files of a dump directory:
    plain BSON or JSON), instead of being refused as "not an archive".
    """
    if expect is not None:
        check_codec(expect)
    buffered = raw if hasattr(raw, "peek") else io.BufferedReader(raw)  # type: ignore[arg-type]
    head = buffered.peek(4)[:4]
    plain = allow_plain and not head.startswith((GZIP_MAGIC, ZSTD_MAGIC))
    codec = "none" if plain else sniff_codec(head)
    if expect is not None and expect != codec:
        raise IntegrityError(
            f"{where}: the manifest says compression {expect!r} but the bytes are {codec!r}",
            hint="the file does not belong to this manifest; restore from another store's copy",
        )
    if codec == "none":
        yield buffered
        return
    if codec == "gzip":
        from isal import igzip

        inner = igzip.IGzipFile(fileobj=buffered, mode="rb")
    else:
        import zstandard

        inner = zstandard.ZstdDecompressor().stream_reader(buffered, read_across_frames=True, closefd=False)
    reader = io.BufferedReader(_TranslatingReader(inner, codec, where), buffer_size=1 << 20)
    try:
        yield reader
    finally:
        inner.close()
