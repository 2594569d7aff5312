"""An oplog slice on the wire and on disk: reading ``(start, end]`` from the server, the file format.

File format: the slice's oplog entries as concatenated raw BSON documents (exactly the bytes
the server returned, oldest first), compressed as one gzip or zstd stream. Stock tools read
it: ``zcat oplog.bson.gz > oplog.bson`` is what ``mongorestore --oplogReplay --oplogFile``
and ``bsondump`` take.

Reading goes through THE oplog reader (:mod:`backup_dr.core.mongo.oplog`), the one the dump's
window uses: one member pinned for the whole slice (:mod:`backup_dr.core.mongo.member`), the
end at that member's majority-committed position, strict order, whole transactions, the
rollover check. A slice file is checked with the same order rule before a restore uses it.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO, Iterator

from bson.raw_bson import RawBSONDocument
from bson.timestamp import Timestamp

from backup_dr.core.errors import IntegrityError
from backup_dr.core.mongo.bsonraw import iter_documents
from backup_dr.core.mongo.codecs import SUFFIX, decompressed_reader
from backup_dr.core.mongo.oplog import OrderCheck, read_window
from backup_dr.core.progress import Progress

log = logging.getLogger(__name__)

SLICE_FORMAT = "bson-oplog"


def slice_codec(compression: str) -> str:
    """gzip or zstd (the source's choice); an uncompressed slice would be mistaken for nothing by the readers."""
    return compression if compression in ("gzip", "zstd") else "zstd"


def slice_file_name(codec: str) -> str:
    return f"oplog.bson{SUFFIX[codec]}"


@dataclass
class ReadResult:
    entries: int = 0
    bytes: int = 0
    first_ts: Timestamp | None = None
    last_ts: Timestamp | None = None
    member: str | None = None


def copy_entries(client, database: str, start: Timestamp, end: Timestamp, out: BinaryIO, *, member: str | None,
                 label: str = "oplog slice") -> ReadResult:
    """Write every entry of ``(start, end]`` that concerns ``database`` to ``out``; ``client`` talks
    to the one member ``member`` (see the module doc)."""
    result = ReadResult(member=member)
    progress = Progress(label, unit="entries", logger=log)
    for entry in read_window(client, database, start, end, where=label):
        raw = entry.raw
        out.write(raw)
        ts = entry["ts"]
        result.entries += 1
        result.bytes += len(raw)
        result.first_ts = result.first_ts or ts
        result.last_ts = ts
        progress.add(1, len(raw))
    progress.done()
    return result


def iter_slice(path: str | Path, *, codec: str | None = None, where: str = "oplog slice") -> Iterator[RawBSONDocument]:
    """The entries of a slice file, oldest first (raw, never decoded)."""
    with open(path, "rb") as raw, decompressed_reader(raw, expect=codec, where=where) as stream:
        yield from iter_documents(stream, where, hint="the slice is corrupt; restore from another store's copy")


def check_slice(path: str | Path, *, codec: str, start: Timestamp, end: Timestamp, entries: int, where: str) -> int:
    """Read a whole slice once and prove it is what its manifest says: the entry count, and
    every ``ts`` inside ``(start, end]`` in the reader's strict order. Done before a restore touches its target."""
    n = 0
    order = OrderCheck(start, end, where)
    for entry in iter_slice(path, codec=codec, where=where):
        order.check(entry)
        n += 1
    if n != entries:
        raise IntegrityError(f"{where}: holds {n} oplog entries, its manifest says {entries}",
                             hint="restore from another store's copy")
    return n
