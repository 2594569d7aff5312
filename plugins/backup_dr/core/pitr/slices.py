"""An oplog slice on the wire and on disk: reading ``(start, end]`` from the server, the file format.

File format: the slice's oplog entries as concatenated raw BSON documents (exactly the bytes
the server returned, oldest first), compressed as one gzip or zstd stream. Stock tools read
it: ``zcat oplog.bson.gz > oplog.bson`` is what ``mongorestore --oplogReplay --oplogFile``
and ``bsondump`` take.

Reading: the end position comes from ``hello`` on the member the read preference picks
(``lastWrite``: the smaller of the last applied and the majority-committed position, so a
slice never holds a write a failover could roll back, and on mongod never reads past an
oplog hole). The entries are then read with ``ts > start and ts <= end`` from THE SAME member
(checked through the cursor's address in a replica-set topology: another, lagging secondary
could silently lack part of the range). Whether the oplog still reaches back to ``start``
is the caller's check (:func:`oldest_position`), before and after the read.
"""

from __future__ import annotations

import io
import logging
import re
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO, Iterator

from bson.raw_bson import RawBSONDocument
from bson.timestamp import Timestamp

from backup_dr.core.errors import IntegrityError, SourceError
from backup_dr.core.mongo.codecs import SUFFIX, decompressed_reader
from backup_dr.core.mongo.oplog import RAW, oldest_ts, oplog_collection, touches
from backup_dr.core.pitr.points import ts_text
from backup_dr.core.progress import Progress

log = logging.getLogger(__name__)

SLICE_FORMAT = "bson-oplog"
_INT32_MAX = 16 * 1024 * 1024 + 16 * 1024  # a BSON document (oplog entry) is at most 16 MB + overhead


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


def end_position(client, read_preference) -> tuple[Timestamp, str | None]:
    """The position a slice read now can safely cover up to, and the member it belongs to."""
    hello = client.admin.command("hello", read_preference=read_preference)
    last_write = hello.get("lastWrite") or {}
    candidates = [ts for ts in ((last_write.get("opTime") or {}).get("ts"), (last_write.get("majorityOpTime") or {}).get("ts"))
                  if isinstance(ts, Timestamp)]
    if candidates:
        return min(candidates), hello.get("me")
    doc = oplog_collection(client, read_preference).find_one({}, {"ts": 1}, sort=[("$natural", -1)])
    if doc is None:
        raise SourceError("the server's oplog (local.oplog.rs) is empty: there is no position to archive up to",
                          hint="point-in-time recovery needs a replica set member with an oplog")
    return doc["ts"], hello.get("me")


def oldest_position(client, read_preference) -> Timestamp | None:
    return oldest_ts(client, read_preference)


def in_order(previous: Timestamp, ts: Timestamp, end: Timestamp, first: bool) -> bool:
    """Oplog order inside a window: increasing, except that the operations of one transaction
    share one ``ts`` on SecantusDB (mongod logs them as one applyOps entry instead)."""
    return ts <= end and (previous < ts or (ts == previous and not first))


def _single_server(client) -> bool:
    try:
        return client.topology_description.topology_type_name == "Single"
    except AttributeError:  # pragma: no cover - very old pymongo
        return True


def copy_entries(client, database: str, start: Timestamp, end: Timestamp, out: BinaryIO, *, read_preference,
                 member: str | None, label: str = "oplog slice") -> ReadResult:
    """Write every entry of ``(start, end]`` that concerns ``database`` to ``out``; see the module doc."""
    result = ReadResult(member=member)
    if end <= start:
        return result
    query = {"ts": {"$gt": start, "$lte": end}, "ns": {"$in": [re.compile("^" + re.escape(database) + r"\."), "admin.$cmd"]}}
    coll = oplog_collection(client, read_preference).with_options(codec_options=RAW)
    progress = Progress(label, unit="entries", logger=log)
    cursor = coll.find(query, sort=[("$natural", 1)])
    previous, first = start, True
    for entry in cursor:
        ts = entry["ts"]
        if not in_order(previous, ts, end, first):
            raise IntegrityError(f"the oplog returned {ts_text(ts)} out of order (after {ts_text(previous)}, window ends {ts_text(end)})",
                                 hint="the server's oplog order is not what a replay needs; report this with the server version")
        previous, first = ts, False
        if not touches(entry, database):
            continue
        raw = entry.raw
        out.write(raw)
        result.entries += 1
        result.bytes += len(raw)
        result.first_ts = result.first_ts or ts
        result.last_ts = ts
        progress.add(1, len(raw))
    address = cursor.address
    if member and address and not _single_server(client) and f"{address[0]}:{address[1]}" != member:
        raise SourceError(
            f"the oplog was read from {address[0]}:{address[1]} but its end position came from {member}",
            detail="with several secondaries the driver may pick different members; a lagging one could lack part of the range",
            hint="the task retries; pin the read to one member (readPreferenceTags or a direct connection) if this repeats",
        )
    progress.done()
    return result


def iter_slice(path: str | Path, *, codec: str | None = None, where: str = "oplog slice") -> Iterator[RawBSONDocument]:
    """The entries of a slice file, oldest first (raw, never decoded)."""
    with open(path, "rb") as raw, decompressed_reader(raw, expect=codec, where=where) as stream:
        yield from _iter_bson(stream, where)


def _iter_bson(stream: io.BufferedIOBase | BinaryIO, where: str) -> Iterator[RawBSONDocument]:
    offset = 0
    while True:
        head = stream.read(4)
        if not head:
            return
        size = int.from_bytes(head, "little", signed=True) if len(head) == 4 else -1
        if size < 5 or size > _INT32_MAX:
            raise IntegrityError(f"{where}: malformed BSON at byte {offset} (document length {size})",
                                 hint="the slice is corrupt; restore from another store's copy")
        body = stream.read(size - 4)
        if len(body) != size - 4 or body[-1:] != b"\x00":
            raise IntegrityError(f"{where}: truncated BSON document at byte {offset}", hint="restore from another store's copy")
        offset += size
        yield RawBSONDocument(head + body)


def check_slice(path: str | Path, *, codec: str, start: Timestamp, end: Timestamp, entries: int, where: str) -> int:
    """Read a whole slice once and prove it is what its manifest says: the entry count, and
    every ``ts`` strictly increasing inside ``(start, end]``. Done before a restore touches its target."""
    n, previous = 0, start
    for entry in iter_slice(path, codec=codec, where=where):
        ts = entry.get("ts")
        if not isinstance(ts, Timestamp) or not in_order(previous, ts, end, n == 0):
            raise IntegrityError(f"{where}: entry {n} has ts {ts!r} outside ({ts_text(start)}, {ts_text(end)}] or out of order",
                                 hint="the slice does not match its manifest; restore from another store's copy")
        previous = ts
        n += 1
    if n != entries:
        raise IntegrityError(f"{where}: holds {n} oplog entries, its manifest says {entries}",
                             hint="restore from another store's copy")
    return n
