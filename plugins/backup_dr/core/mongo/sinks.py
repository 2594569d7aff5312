"""Where dumped bytes go: one archive stream, or mongodump's directory layout.

Both take the same calls from the dump's writer thread (``prelude``, ``begin``, ``write``,
``end``), so the dump loop does not care which format the policy asked for.
"""

from __future__ import annotations

import base64
import hashlib
import struct
from contextlib import ExitStack
from typing import BinaryIO, Callable, ContextManager
from urllib.parse import quote_plus

from backup_dr.core.errors import IntegrityError
from backup_dr.core.mongo.archive import OPLOG_COLLECTION, OPLOG_DB, ArchiveWriter, PreludeEntry
from backup_dr.core.mongo.codecs import SUFFIX, compressed_writer

_INT32 = struct.Struct("<i")


def server_version(client) -> str:
    """The server's version for the archive header (mongorestore parses it as X.Y.Z)."""
    return str(client.server_info().get("version", "0.0.0"))


def tool_version() -> str:
    from backup_dr import TOOL_NAME, __version__

    return f"{TOOL_NAME} {__version__}"


def count_docs(buf) -> int:
    """Number of BSON documents in a concatenation, from their int32 length prefixes."""
    n = pos = 0
    end = len(buf)
    unpack = _INT32.unpack_from
    while pos < end:
        size = unpack(buf, pos)[0]
        if size < 5:
            raise IntegrityError(f"server returned a malformed batch (document length {size} at byte {pos})")
        pos += size
        n += 1
    if pos != end:
        raise IntegrityError(f"server returned a malformed batch (last document overruns the batch by {pos - end} bytes)")
    return n


class ArchiveSink:
    """A single (compressed) mongodump archive stream."""

    def __init__(self, out: BinaryIO, codec: str, *, server_version: str, tool_version: str):
        self._stack = ExitStack()
        stream = self._stack.enter_context(compressed_writer(out, codec))
        self.writer = ArchiveWriter(stream, server_version=server_version, tool_version=tool_version)
        self.crcs: dict[str, int] = {}

    def prelude(self, entries: list[PreludeEntry]) -> None:
        self.writer.write_prelude(entries)

    def begin(self, db: str, coll: str) -> None:
        self._ns = f"{db}.{coll}"
        self.writer.begin(db, coll)

    def write(self, data) -> None:
        self.writer.write_docs(data)

    def end(self) -> None:
        self.crcs[self._ns] = self.writer.end()

    def close(self) -> None:
        self._stack.close()

    def discard(self) -> None:
        """Drop the compressor without writing a trailer (the caller deletes the file)."""
        self._stack.pop_all()

    @property
    def uncompressed_bytes(self) -> int:
        return self.writer.bytes_written


OpenFile = Callable[[str], ContextManager[BinaryIO]]


def escaped_collection_name(name: str) -> str:
    """A collection's file name stem exactly as mongodump writes it (``mongodump/prepare.go``
    ``outputPath``): Go's ``url.QueryEscape`` (``공지사항`` -> ``%EA%B3%B5...``, space -> ``+``,
    ``/`` -> ``%2F``), and a name whose escaped form exceeds 238 bytes cut to 208 plus ``%24``
    and the unpadded base64url SHA-1 of the name (mongorestore then reads the real name from
    the metadata file). mongorestore unescapes file names, so a raw ``a+b c%d.bson`` breaks it."""
    escaped = quote_plus(name, safe="")
    if len(escaped) > 238:
        digest = base64.urlsafe_b64encode(hashlib.sha1(name.encode("utf-8")).digest()).rstrip(b"=").decode()
        escaped = f"{escaped[:208]}%24{digest}"
    return escaped


def directory_names(db: str, coll: str, codec: str) -> tuple[str, str]:
    """mongodump's file names for a collection: ``<db>/<escaped>.bson<sfx>`` and its
    ``.metadata.json<sfx>``. The oplog is ``oplog.bson`` at the top, without ``.gz`` even when
    gzip-compressed: that is the only name ``mongorestore --dir --gzip --oplogReplay`` looks for
    (a zstd one keeps ``.zst``, so decompressing every file yields ``oplog.bson``)."""
    sfx = SUFFIX[codec]
    if db == OPLOG_DB and coll == OPLOG_COLLECTION:
        return f"oplog.bson{sfx if codec == 'zstd' else ''}", ""
    stem = escaped_collection_name(coll)
    return f"{db}/{stem}.bson{sfx}", f"{db}/{stem}.metadata.json{sfx}"


class DirectorySink:
    """mongodump's directory format: ``<db>/<coll>.bson`` + ``<db>/<coll>.metadata.json`` files.

    Each file is opened through ``open_file`` (the ArtifactWriter's, so each is hashed and
    listed in the manifest) and compressed on its own, as ``mongodump --gzip`` does. Names are
    mongodump's (:func:`directory_names`); a view has only its metadata file, as with mongodump.
    """

    def __init__(self, open_file: OpenFile, codec: str):
        self._open_file, self._codec = open_file, codec
        self._stack: ExitStack | None = None
        self._stream: BinaryIO | None = None
        self._views: set[tuple[str, str]] = set()
        self.crcs: dict[str, int] = {}
        self.uncompressed_bytes = 0

    def _open(self, name: str) -> BinaryIO:
        self._stack = ExitStack()
        raw = self._stack.enter_context(self._open_file(name))
        return self._stack.enter_context(compressed_writer(raw, self._codec))

    def prelude(self, entries: list[PreludeEntry]) -> None:
        for e in entries:
            if e.type == "view":
                self._views.add((e.db, e.collection))
            _bson, meta_name = directory_names(e.db, e.collection, self._codec)
            if meta_name:
                out = self._open(meta_name)
                out.write(e.metadata.encode("utf-8"))
                self._stack.close()
                self._stack = None

    def begin(self, db: str, coll: str) -> None:
        if (db, coll) not in self._views:
            self._stream = self._open(directory_names(db, coll, self._codec)[0])

    def write(self, data) -> None:
        self._stream.write(data)
        self.uncompressed_bytes += len(data)

    def end(self) -> None:
        if self._stack is not None:
            self._stack.close()
        self._stack = self._stream = None

    def close(self) -> None:
        pass

    def discard(self) -> None:
        if self._stack is not None:
            self._stack.pop_all()
