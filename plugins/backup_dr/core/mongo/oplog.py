"""Reading ``local.oplog.rs``: the newest/oldest position and the window a dump must carry.

A dump records the newest oplog timestamp before its first read (``start``) and after its
last (``end``) and stores every entry in ``(start, end]`` that concerns the dumped database:
CRUD on ``<db>.*``, commands on ``<db>.$cmd``, and transactions/applyOps logged on
``admin.$cmd`` whose inner operations touch it. Replaying them over the (fuzzy) data makes
the restore consistent at ``end``, as ``mongodump --oplog`` / ``mongorestore --oplogReplay``.
"""

from __future__ import annotations

import re
from datetime import datetime, timezone
from typing import Any, Iterator, Mapping

from bson import Timestamp
from bson.codec_options import CodecOptions
from bson.raw_bson import RawBSONDocument

from backup_dr.core.errors import SourceError

OPLOG_NS = ("local", "oplog.rs")
RAW = CodecOptions(document_class=RawBSONDocument)


def ts_dict(ts: Timestamp | None) -> dict[str, int] | None:
    return {"t": ts.time, "i": ts.inc} if ts is not None else None


def ts_from(value: Any) -> Timestamp | None:
    """A Timestamp from a manifest's ``{"t":..,"i":..}`` (or a Timestamp)."""
    if value is None or isinstance(value, Timestamp):
        return value
    return Timestamp(int(value["t"]), int(value["i"]))


def ts_time(ts: Timestamp) -> datetime:
    return datetime.fromtimestamp(ts.time, timezone.utc)


def oplog_collection(client, read_preference=None):
    db = client.get_database(OPLOG_NS[0], read_preference=read_preference) if read_preference else client[OPLOG_NS[0]]
    return db[OPLOG_NS[1]]


def has_oplog(client) -> bool:
    return OPLOG_NS[1] in client[OPLOG_NS[0]].list_collection_names(filter={"name": OPLOG_NS[1]})


def newest_ts(client, read_preference=None) -> Timestamp | None:
    """The member's last written oplog timestamp: ``hello.lastWrite.opTime.ts`` (free), else
    the newest oplog entry (a scan on servers without a fast ``$natural: -1``)."""
    hello = client.admin.command("hello", read_preference=read_preference) if read_preference else client.admin.command("hello")
    ts = ((hello.get("lastWrite") or {}).get("opTime") or {}).get("ts")
    if isinstance(ts, Timestamp):
        return ts
    doc = oplog_collection(client, read_preference).find_one({}, {"ts": 1}, sort=[("$natural", -1)])
    return doc["ts"] if doc else None


def oldest_ts(client, read_preference=None) -> Timestamp | None:
    doc = oplog_collection(client, read_preference).find_one({}, {"ts": 1}, sort=[("$natural", 1)])
    return doc["ts"] if doc else None


def _overflow(start: Timestamp, found: Timestamp | None) -> SourceError:
    seen = f"the oldest entry read is {found.time}:{found.inc}" if found else "no entry at or after it is left"
    return SourceError(
        "oplog overflow: the oplog rolled over during the dump, so writes made while it ran are lost",
        detail=f"the dump started at oplog time {start.time}:{start.inc}; {seen}",
        hint="enlarge the oplog (replSetResizeOplog) or dump at a quieter time; the retry starts afresh",
    )


def check_not_rolled_over(client, start: Timestamp, read_preference=None) -> None:
    """The oplog must still hold ``start``; otherwise entries of the window are lost."""
    oldest = oldest_ts(client, read_preference)
    if oldest is not None and oldest > start:
        raise _overflow(start, oldest)


def _db_of(ns: str) -> str:
    return ns.split(".", 1)[0]


def touches(entry: Mapping[str, Any], database: str, collections: set[str] | None = None) -> bool:
    """Does this oplog entry concern ``database`` (and one of ``collections`` when given)?"""
    ns = entry.get("ns", "")
    op = entry.get("op")
    if op == "c" and ns == "admin.$cmd":
        o = entry.get("o") or {}
        if "applyOps" in o:
            return any(touches(inner, database, collections) for inner in o["applyOps"])
        # commit/abort of a prepared transaction: tiny, harmless to keep, needed for the replay
        return "commitTransaction" in o or "abortTransaction" in o
    if _db_of(ns) != database:
        return False
    if collections is None or op == "n":
        return True
    if op == "c":
        return command_collection(entry.get("o") or {}, database) in collections or "applyOps" in (entry.get("o") or {})
    return ns.split(".", 1)[1] in collections


def command_collection(o: Mapping[str, Any], database: str) -> str | None:
    """The collection a DDL command entry acts on (the first field's value)."""
    for key, value in o.items():
        if key == "renameCollection":
            return str(value).split(".", 1)[1] if "." in str(value) else None
        if isinstance(value, str):
            return value
        return None
    return None


def window(client, database: str, start: Timestamp | None, end: Timestamp | None, *,
           collections: set[str] | None = None, read_preference=None) -> Iterator[RawBSONDocument]:
    """Oplog entries in ``(start, end]`` that concern the database, oldest first, as raw BSON.

    No writes since ``start``: nothing to read (and no oplog scan). Otherwise the oplog must
    still reach back to ``start`` AFTER the read; mongodump also checks before, but the oldest
    entry only ever moves forward, so if it is still <= ``start`` afterwards nothing in the
    window was truncated before or during the read (one oplog query saved).
    """
    if end is None or end == start:
        return
    ts_range = {"$gt": start, "$lte": end} if start is not None else {"$lte": end}
    query = {"ts": ts_range, "ns": {"$in": [re.compile("^" + re.escape(database) + r"\."), "admin.$cmd"]}}
    coll = oplog_collection(client, read_preference).with_options(codec_options=RAW)
    for entry in coll.find(query, sort=[("$natural", 1)]):
        if touches(entry, database, collections):
            yield entry
    if start is not None:
        check_not_rolled_over(client, start, read_preference)
