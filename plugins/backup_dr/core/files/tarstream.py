"""A streaming tar writer and the (de)compressors around it.

Why not ``tarfile.open(mode="w|zst")``: Python 3.11's tarfile has no zstd, its stream mode
re-buffers every write in 10 KiB slices, and ``addfile`` writes the header before it knows
whether the data can be read in full. Writing headers ourselves (``TarInfo.tobuf``) keeps
the format stock POSIX pax (GNU tar, bsdtar and Python all read it) while letting the
archiver decide, per entry, what to do when a file changes under it.

Exact mtimes: the ustar header only holds whole seconds, so a pax ``mtime`` record with
nanoseconds is added whenever the sub-second part is not zero (GNU tar restores it; our
extractor does too, see :mod:`backup_dr.core.files.safe_extract`).
"""

from __future__ import annotations

import grp
import os
import pwd
import stat
import tarfile
from contextlib import contextmanager
from decimal import Decimal
from functools import lru_cache
from typing import BinaryIO, Iterable, Iterator

import zstandard
from isal import igzip

#: zstd level 3 = the zstd CLI default, so the stock tools and we make the same trade-off.
ZSTD_LEVEL = 3
#: One zstd worker thread: python-zstandard holds the GIL while compressing, so a Python
#: thread cannot overlap reading and compressing, but zstd's own worker (native) can, as in
#: ``tar | zstd``. Multi-threaded zstd output does not depend on timing: same tree, same bytes.
ZSTD_THREADS = 1
#: isal level 2 (its default): ~gzip -1 ratio at several times the speed.
GZIP_LEVEL = 2
CODECS = ("zstd", "gzip")
_SUFFIX = {"zstd": "zst", "gzip": "gz"}


def archive_suffix(codec: str) -> str:
    """``tar.zst`` / ``tar.gz``: what ``tar -xf`` and humans expect."""
    return "tar." + _SUFFIX[codec]


@lru_cache(maxsize=256)
def _user(uid: int) -> str:
    try:
        return pwd.getpwuid(uid).pw_name
    except KeyError:
        return ""


@lru_cache(maxsize=256)
def _group(gid: int) -> str:
    try:
        return grp.getgrgid(gid).gr_name
    except KeyError:
        return ""


def ns_to_pax(ns: int) -> str:
    """Nanoseconds since the epoch as the decimal seconds text pax uses."""
    return str(Decimal(ns).scaleb(-9))


def pax_to_ns(text: str) -> int:
    return int(Decimal(text).scaleb(9))


def make_tarinfo(relpath: str, st: os.stat_result, *, size: int = 0, linkname: str = "") -> tarfile.TarInfo:
    """A header for one entry, from its ``lstat`` (no following of symlinks)."""
    info = tarfile.TarInfo(relpath)
    if stat.S_ISDIR(st.st_mode):
        info.type = tarfile.DIRTYPE
    elif stat.S_ISLNK(st.st_mode):
        info.type = tarfile.SYMTYPE
        info.linkname = linkname
    else:
        info.type = tarfile.REGTYPE
        info.size = size
    info.mode = stat.S_IMODE(st.st_mode)
    info.uid, info.gid = st.st_uid, st.st_gid
    info.uname, info.gname = _user(st.st_uid), _group(st.st_gid)
    seconds, frac = divmod(st.st_mtime_ns, 1_000_000_000)
    info.mtime = seconds
    if frac:
        info.pax_headers = {"mtime": ns_to_pax(st.st_mtime_ns)}
    return info


class ShortReadError(Exception):
    """The data source ended before the size announced in the header (file shrank)."""

    def __init__(self, expected: int, got: int):
        super().__init__(f"expected {expected} bytes, got {got}")
        self.expected, self.got = expected, got


class TarStreamWriter:
    """Writes pax-format tar entries to a byte sink, never seeking."""

    def __init__(self, sink: BinaryIO):
        self._sink = sink
        self.offset = 0

    def _write(self, data: bytes) -> None:
        self._sink.write(data)
        self.offset += len(data)

    def add(self, info: tarfile.TarInfo, chunks: Iterable[bytes] = ()) -> None:
        """Header, then exactly ``info.size`` data bytes, then padding to 512.

        Raises :class:`ShortReadError` if ``chunks`` yields fewer bytes than announced; the
        stream is then unusable (a header is out) and the caller must discard the archive.
        """
        self._write(info.tobuf(tarfile.PAX_FORMAT, "utf-8", "surrogateescape"))
        written = 0
        for chunk in chunks:
            if written + len(chunk) > info.size:
                raise ValueError(f"{info.name}: more data than the {info.size} bytes announced")
            self._write(chunk)
            written += len(chunk)
        if written != info.size:
            raise ShortReadError(info.size, written)
        pad = -written % tarfile.BLOCKSIZE
        if pad:
            self._write(tarfile.NUL * pad)

    def close(self) -> None:
        """End-of-archive marker (two zero blocks), padded to a full record like GNU tar."""
        self._write(tarfile.NUL * (2 * tarfile.BLOCKSIZE))
        pad = -self.offset % tarfile.RECORDSIZE
        if pad:
            self._write(tarfile.NUL * pad)


@contextmanager
def compressing(out: BinaryIO, codec: str) -> Iterator[BinaryIO]:
    """A writable stream that compresses into ``out``; the frame is finished only on success.

    gzip gets ``mtime=0`` so the same input always gives the same bytes (and sha256).
    """
    if codec == "zstd":
        writer = zstandard.ZstdCompressor(level=ZSTD_LEVEL, write_checksum=True, threads=ZSTD_THREADS).stream_writer(out, closefd=False)
    elif codec == "gzip":
        writer = igzip.IGzipFile(fileobj=out, mode="wb", compresslevel=GZIP_LEVEL, mtime=0)
    else:
        raise ValueError(f"unknown compression {codec!r}; known: {', '.join(CODECS)}")
    yield writer
    writer.close()  # zstd: ends the frame; gzip: writes the trailer. ``out`` stays open.


@contextmanager
def decompressing(path: str | os.PathLike, codec: str) -> Iterator[BinaryIO]:
    """A readable stream of the tar bytes inside a compressed archive file."""
    if codec == "zstd":
        with open(path, "rb") as raw:
            reader = zstandard.ZstdDecompressor().stream_reader(raw, read_across_frames=True, closefd=False)
            with reader:
                yield reader
    elif codec == "gzip":
        with igzip.open(path, "rb") as reader:
            yield reader
    elif codec == "none":
        with open(path, "rb") as raw:
            yield raw
    else:
        raise ValueError(f"unknown compression {codec!r}; known: {', '.join(CODECS)}")
