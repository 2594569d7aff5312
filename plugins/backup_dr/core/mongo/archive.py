"""The mongodump ``--archive`` format: writer and streaming reader.

Byte layout (mongo-tools ``common/archive``: ``spec.md``, ``prelude.go``, ``multiplexer.go``,
``demultiplexer.go``, ``parser.go``)::

    magic 6d e2 99 81
    header      {concurrent_collections: int32, version: "0.1", server_version, tool_version}
    prelude     one {db, collection, metadata: <canonical ext JSON>, size, type} per namespace
    ff ff ff ff
    blocks      {db, collection, EOF: false, CRC: int64 0} + BSON documents + ff ff ff ff
                {db, collection, EOF: true,  CRC: int64 crc64} + ff ff ff ff   (once per namespace)

The CRC is CRC-64/XZ (Go's ``crc64.ECMA``) over all document bytes of the namespace, stored as
a signed int64. ``mongodump --oplog`` puts the oplog window under ``db: "", collection: "oplog"``
with an empty metadata string. Stock mongodump interleaves blocks of several namespaces and
writes a namespace header followed directly by a terminator for an empty view/collection;
the reader accepts all of that (and an EOF block alone). Our writer writes namespaces one after
another and one block per namespace, as ``mongodump --numParallelCollections=1`` does: for the
same data its body is byte-identical to stock's (tests/integration/mongo/test_stock_interop.py).
"""

from __future__ import annotations

import struct
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import BinaryIO, Iterator

import bson
from bson import Timestamp
from bson.int64 import Int64

from backup_dr.core.errors import IntegrityError
from backup_dr.core.mongo.codecs import ARCHIVE_MAGIC
from backup_dr.core.mongo.crc64 import Crc64

FORMAT_VERSION = "0.1"
TERMINATOR = b"\xff\xff\xff\xff"
OPLOG_DB, OPLOG_COLLECTION = "", "oplog"
MAX_DOC = 16 * 1024 * 1024 + 16 * 1024  # BSONObjMaxInternalSize: oplog entries may exceed 16 MB a little
_INT32 = struct.Struct("<i")
_READ_CHUNK = 1 << 20


@dataclass(frozen=True)
class PreludeEntry:
    """One collection-metadata document of the prelude."""

    db: str
    collection: str
    metadata: str = ""  # canonical Extended JSON v2, as in <coll>.metadata.json
    size: int = 0
    type: str = ""

    @property
    def ns(self) -> str:
        return f"{self.db}.{self.collection}"

    @property
    def is_oplog(self) -> bool:
        return self.db == OPLOG_DB and self.collection == OPLOG_COLLECTION


def placeholder_oplog_entry(ts: Timestamp | None, database: str) -> bytes:
    """The one entry of an oplog section whose window holds no write of the database.

    WHY: stock ``mongorestore --oplogReplay`` fails on an oplog section with no document
    ("error demultiplexing archive; archive io error") and then builds no secondary index.
    Stock mongodump never writes one: its window ``[start, end]`` includes the entry at
    ``start``. Ours is ``(start, end]`` filtered to the database, so a quiet database gets this
    no-op (``op: "n"``, shaped like mongod's own no-ops), which mongorestore and our applier skip.
    """
    ts = ts or Timestamp(0, 1)  # an empty oplog (never on a replica set) has no position to name
    return bson.encode({"op": "n", "ns": "", "o": {"msg": f"backup-dr: no write to {database} during the dump"},
                        "ts": ts, "wall": datetime.fromtimestamp(ts.time, timezone.utc)})


def ns_header(db: str, collection: str, *, eof: bool = False, crc: int = 0) -> bytes:
    # Go struct order and types: db, collection, EOF (bool), CRC (int64 even when 0)
    return bson.encode({"db": db, "collection": collection, "EOF": eof, "CRC": Int64(crc)})


class ArchiveWriter:
    """Writes an archive to a (possibly compressing) stream, one namespace at a time."""

    def __init__(self, out: BinaryIO, *, server_version: str, tool_version: str, concurrent_collections: int = 1):
        self._out = out
        self._header = {
            "concurrent_collections": concurrent_collections,
            "version": FORMAT_VERSION,
            "server_version": server_version,
            "tool_version": tool_version,
        }
        self._current: tuple[str, str] | None = None
        self._segment_open = False
        self._crc = Crc64()
        self.bytes_written = 0

    def _w(self, data) -> None:
        self._out.write(data)
        self.bytes_written += len(data)

    def write_prelude(self, entries: list[PreludeEntry]) -> None:
        self._w(ARCHIVE_MAGIC)
        self._w(bson.encode(self._header))
        for e in entries:
            self._w(bson.encode({"db": e.db, "collection": e.collection, "metadata": e.metadata,
                                 "size": e.size, "type": e.type}))
        self._w(TERMINATOR)

    def begin(self, db: str, collection: str) -> None:
        if self._current is not None:
            raise RuntimeError(f"namespace {self._current} still open")
        self._current = (db, collection)
        self._segment_open = False
        self._crc = Crc64()

    def write_docs(self, data) -> None:
        """Append whole BSON documents (concatenated) to the open namespace."""
        if not data:
            return
        if not self._segment_open:
            self._w(ns_header(*self._current))
            self._segment_open = True
        self._crc.update(data)
        self._w(data)

    def end(self) -> int:
        """Close the namespace with its EOF block; returns the signed CRC written.

        A namespace without documents (a view, an empty collection) still gets a header and a
        terminator before its EOF block, byte for byte as mongodump's multiplexer writes it
        (its last flush always goes through ``formatBody``, even when empty)."""
        db, coll = self._current
        if not self._segment_open:
            self._w(ns_header(db, coll))
        self._w(TERMINATOR)
        crc = self._crc.signed
        self._w(ns_header(db, coll, eof=True, crc=crc))
        self._w(TERMINATOR)
        self._current = None
        return crc


@dataclass
class NamespaceStats:
    docs: int = 0
    bytes: int = 0
    crc: int | None = None  # signed CRC from the EOF header once seen


@dataclass
class ArchiveSummary:
    """What a full read of an archive found (every CRC checked)."""

    header: dict
    prelude: list[PreludeEntry]
    namespaces: dict[str, NamespaceStats] = field(default_factory=dict)

    @property
    def databases(self) -> list[str]:
        return sorted({e.db for e in self.prelude if not e.is_oplog})

    def count(self, db: str, collection: str) -> int:
        st = self.namespaces.get(f"{db}.{collection}")
        return st.docs if st else 0


class ArchiveReader:
    """Streaming reader. ``prelude`` is read on construction; :meth:`documents` yields the body.

    ``documents()`` yields ``(db, collection, doc_bytes)`` for every document in archive order
    and ``(db, collection, None)`` when a namespace's EOF block has been read and its CRC
    verified. Every structural problem raises :class:`IntegrityError` with the position.
    """

    def __init__(self, stream: BinaryIO, *, where: str = "archive"):
        self._in = stream
        self.where = where
        self._buf = b""
        self._pos = 0
        self._offset = 0  # bytes consumed before _buf
        magic = self._take(4, "the magic number")
        if magic != ARCHIVE_MAGIC:
            raise IntegrityError(
                f"{where}: not a mongodump archive (magic {magic.hex(' ')}, expected {ARCHIVE_MAGIC.hex(' ')})",
                hint="the file is not an archive written by mongodump/backup_dr, or it is compressed with an unknown codec",
            )
        header = self._doc_or_terminator("the archive header")
        if header is None:
            raise IntegrityError(f"{where}: archive header missing (terminator right after the magic number)")
        self.header = bson.decode(header)
        if self.header.get("version") != FORMAT_VERSION:
            raise IntegrityError(f"{where}: archive format version {self.header.get('version')!r} is not supported (expected {FORMAT_VERSION})")
        self.prelude: list[PreludeEntry] = []
        while True:
            raw = self._doc_or_terminator("the prelude")
            if raw is None:
                break
            d = bson.decode(raw)
            try:
                self.prelude.append(PreludeEntry(d["db"], d["collection"], d.get("metadata") or "", int(d.get("size") or 0), d.get("type") or ""))
            except KeyError as e:
                raise IntegrityError(f"{where}: prelude entry without {e}: {d!r}") from None

    # ---- low-level buffered parsing

    def _fill(self, need: int) -> bool:
        """Make ``need`` bytes available at _pos; False at a clean end of stream."""
        while len(self._buf) - self._pos < need:
            chunk = self._in.read(max(_READ_CHUNK, need))
            if not chunk:
                return False
            self._offset += self._pos
            self._buf = self._buf[self._pos:] + chunk
            self._pos = 0
        return True

    def _take(self, n: int, what: str) -> bytes:
        if not self._fill(n):
            raise self._truncated(what)
        out = self._buf[self._pos:self._pos + n]
        self._pos += n
        return out

    def _truncated(self, what: str) -> IntegrityError:
        return IntegrityError(
            f"{self.where}: archive is truncated (ended inside {what}, at byte {self._offset + self._pos})",
            hint="the file was cut short (interrupted copy or dump); restore from another store's copy",
        )

    def _doc_length(self, what: str) -> int | None:
        """Length of the document starting at _pos, or None for a terminator."""
        if not self._fill(4):
            raise self._truncated(what)
        (size,) = _INT32.unpack_from(self._buf, self._pos)
        if size == -1:
            return None
        if size < 5 or size > MAX_DOC:
            raise IntegrityError(
                f"{self.where}: corrupt archive: {size} is neither a BSON length nor a terminator "
                f"(in {what}, at byte {self._offset + self._pos})",
                hint="the archive is damaged; restore from another store's copy",
            )
        return size

    def _doc_or_terminator(self, what: str) -> bytes | None:
        size = self._doc_length(what)
        if size is None:
            self._pos += 4
            return None
        doc = self._take(size, what)
        if doc[-1] != 0:
            raise IntegrityError(f"{self.where}: corrupt archive: document in {what} does not end with a null byte")
        return doc

    # ---- body

    def documents(self) -> Iterator[tuple[str, str, bytes | None]]:
        known = {(e.db, e.collection) for e in self.prelude}
        crcs: dict[tuple[str, str], Crc64] = {}
        closed: set[tuple[str, str]] = set()
        while True:
            if not self._fill(4):
                break  # clean end between blocks
            raw = self._doc_or_terminator("a block header")
            if raw is None:
                raise IntegrityError(f"{self.where}: corrupt archive: two terminators in a row (a block without a header)")
            h = bson.decode(raw)
            key = (h.get("db", ""), h.get("collection", ""))
            if not key[1]:
                raise IntegrityError(f"{self.where}: corrupt archive: block header without a collection: {h!r}")
            if key in closed:
                raise IntegrityError(f"{self.where}: corrupt archive: data for {key[0]}.{key[1]} after its EOF block")
            if key not in known:
                raise IntegrityError(f"{self.where}: corrupt archive: block for {key[0]}.{key[1]}, which the prelude does not list")
            crc = crcs.setdefault(key, Crc64())
            if h.get("EOF"):
                if self._doc_length("an EOF block") is not None:
                    raise IntegrityError(f"{self.where}: corrupt archive: EOF block of {key[0]}.{key[1]} carries data")
                self._pos += 4
                expected = int(h.get("CRC", 0))
                if crc.signed != expected:
                    raise IntegrityError(
                        f"{self.where}: CRC mismatch for namespace {key[0]}.{key[1]}: the archive records {expected}, "
                        f"the data gives {crc.signed}",
                        hint="the archive is corrupt; restore from another store's copy",
                    )
                closed.add(key)
                yield key[0], key[1], None
                continue
            yield from self._segment(key, crc)
        missing = sorted(f"{db}.{c}" for db, c in known - closed)
        if missing:
            raise IntegrityError(
                f"{self.where}: archive is truncated: it ended before namespace(s) {', '.join(missing)} were complete",
                hint="the file was cut short (interrupted copy or dump); restore from another store's copy",
            )

    def _segment(self, key: tuple[str, str], crc: Crc64) -> Iterator[tuple[str, str, bytes]]:
        what = f"the data of {key[0]}.{key[1]}"
        while True:
            size = self._doc_length(what)
            if size is None:
                self._pos += 4
                return
            if not self._fill(size):
                raise self._truncated(what)
            # slice every complete document already buffered; CRC them in one call
            start = pos = self._pos
            buf = self._buf
            docs = []
            end_of_segment = False
            while True:
                if buf[pos + size - 1] != 0:
                    raise IntegrityError(f"{self.where}: corrupt archive: a document of {key[0]}.{key[1]} does not end with a null byte")
                docs.append(buf[pos:pos + size])
                pos += size
                if len(buf) - pos < 4:
                    break
                (size,) = _INT32.unpack_from(buf, pos)
                if size == -1:
                    end_of_segment = True
                    break
                if size < 5 or size > MAX_DOC:
                    self._pos = pos
                    self._doc_length(what)  # raises with the position
                if len(buf) - pos < size:
                    break
            crc.update(memoryview(buf)[start:pos])
            self._pos = pos
            for d in docs:
                yield key[0], key[1], d
            if end_of_segment:
                self._pos += 4
                return

    def summarize(self) -> ArchiveSummary:
        """Read the whole body, checking structure and every CRC; nothing is kept in memory."""
        return summarize(self)


def summarize(reader) -> ArchiveSummary:
    """Counts per namespace from a full read of ``reader`` (an archive's or a dump directory's)."""
    summary = ArchiveSummary(reader.header, reader.prelude)
    for db, coll, doc in reader.documents():
        st = summary.namespaces.setdefault(f"{db}.{coll}", NamespaceStats())
        if doc is None:
            st.crc = 0
        else:
            st.docs += 1
            st.bytes += len(doc)
    for e in reader.prelude:
        summary.namespaces.setdefault(e.ns, NamespaceStats())
    return summary
