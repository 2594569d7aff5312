"""THE oplog reader: positions, and the entries of ``(start, end]`` that concern one database.

One reader, used by the dump's window (:mod:`.dump`) and by the PITR slices
(:mod:`backup_dr.core.pitr.slices`), with one set of checks, so the two cannot drift:

* **positions** come from the member read (callers pin one, :mod:`.member`):
  :func:`safe_position` is the smaller of the member's last applied and its majority-committed
  opTime (``hello.lastWrite``): a position a failover cannot roll back, and on mongod never
  inside an oplog hole (writes with a smaller ``ts`` still in flight). :func:`wait_for_position`
  waits until that position reaches a point (a dump's end must cover everything its scans saw).
* **order**: every ``ts`` inside ``(start, end]`` and strictly increasing. The one exception is
  a FORM, not a server: consecutive entries of one transaction (same ``lsid`` and
  ``txnNumber``) may share a ``ts``, as a server that logs a transaction's operations as
  separate entries does (SecantusDB; mongod wraps them in one ``applyOps``). Any other equal or
  decreasing ``ts`` is refused.
* **rollover / gaps**: the oplog must still hold ``start`` after the read (its oldest entry only
  moves forward, so if it is still ``<= start`` afterwards nothing of the window was truncated
  before or during the read).
* **which entries**: CRUD on ``<db>.*``, commands on ``<db>.$cmd``, and on ``admin.$cmd``:
  ``applyOps`` with an inner operation on the database, EVERY entry of a multi-entry
  transaction (``partialTxn`` / ``prepare`` / a ``prevOpTime`` link), and every
  ``commitTransaction`` / ``abortTransaction``. A transaction whose last entry only touches
  other databases still commits the operations its earlier entries made on ours; keeping the
  whole chain lets the applier apply it whole or refuse loudly (:mod:`.transactions`).
"""

from __future__ import annotations

import re
import time
from datetime import datetime, timezone
from typing import Any, Iterable, Iterator, Mapping

from bson import Timestamp
from bson.codec_options import CodecOptions
from bson.raw_bson import RawBSONDocument

from backup_dr.core.errors import IntegrityError, SourceError

OPLOG_NS = ("local", "oplog.rs")
RAW = CodecOptions(document_class=RawBSONDocument)
_TXN_END = ("commitTransaction", "abortTransaction")


def ts_dict(ts: Timestamp | None) -> dict[str, int] | None:
    return {"t": ts.time, "i": ts.inc} if ts is not None else None


def ts_from(value: Any) -> Timestamp | None:
    """A Timestamp from a manifest's ``{"t":..,"i":..}`` (or a Timestamp)."""
    if value is None or isinstance(value, Timestamp):
        return value
    return Timestamp(int(value["t"]), int(value["i"]))


def ts_time(ts: Timestamp) -> datetime:
    return datetime.fromtimestamp(ts.time, timezone.utc)


def _ts_text(ts: Timestamp | None) -> str:
    return f"Timestamp({ts.time}, {ts.inc})" if ts is not None else "none"


def oplog_collection(client):
    return client[OPLOG_NS[0]][OPLOG_NS[1]]


def has_oplog(client) -> bool:
    return OPLOG_NS[1] in client[OPLOG_NS[0]].list_collection_names(filter={"name": OPLOG_NS[1]})


# ----------------------------------------------------------------------------- positions


def _last_write(client) -> tuple[Timestamp | None, Timestamp | None, str | None]:
    hello = client.admin.command("hello")
    lw = hello.get("lastWrite") or {}
    applied = (lw.get("opTime") or {}).get("ts")
    majority = (lw.get("majorityOpTime") or {}).get("ts")
    return (applied if isinstance(applied, Timestamp) else None,
            majority if isinstance(majority, Timestamp) else None, hello.get("me"))


def _newest_entry(client) -> Timestamp | None:
    doc = oplog_collection(client).find_one({}, {"ts": 1}, sort=[("$natural", -1)])
    return doc["ts"] if doc else None


def newest_ts(client) -> Timestamp | None:
    """The member's last applied position (``hello.lastWrite.opTime``; else its newest entry)."""
    applied, _majority, _me = _last_write(client)
    return applied if applied is not None else _newest_entry(client)


def safe_position(client) -> tuple[Timestamp, str | None]:
    """The position a read from this member can safely cover up to now, and the member's name:
    ``min(last applied, majority committed)`` (see the module doc); the newest entry on a server
    whose ``hello`` reports neither."""
    applied, majority, me = _last_write(client)
    known = [ts for ts in (applied, majority) if ts is not None]
    if known:
        return min(known), me
    newest = _newest_entry(client)
    if newest is None:
        raise SourceError("the server's oplog (local.oplog.rs) is empty: there is no position to read up to",
                          hint="point-in-time recovery and consistent dumps need a replica set member with an oplog")
    return newest, me


def wait_for_position(client, at_least: Timestamp, *, timeout: float = 120.0, poll: float = 0.1) -> Timestamp:
    """The member's :func:`safe_position` once it is ``>= at_least``. A majority that stalls
    (secondaries down or lagging) is an error after ``timeout`` seconds, never a guess."""
    deadline = time.monotonic() + timeout
    while True:
        position, me = safe_position(client)
        if position >= at_least:
            return position
        if time.monotonic() >= deadline:
            raise SourceError(
                f"the majority-committed position of {me or 'the member'} stays at {_ts_text(position)}, behind "
                f"{_ts_text(at_least)} that the dump's reads reached",
                detail=f"waited {timeout:.0f}s: a majority of the replica set does not confirm the newest writes",
                hint="check replication (rs.status(): members down or lagging); the retry starts afresh",
            )
        time.sleep(poll)


def oldest_ts(client) -> Timestamp | None:
    doc = oplog_collection(client).find_one({}, {"ts": 1}, sort=[("$natural", 1)])
    return doc["ts"] if doc else None


class OplogRolledOver(SourceError):
    """The oplog no longer holds the start of a range being read: entries of it are lost."""

    def __init__(self, start: Timestamp, oldest: Timestamp | None):
        seen = f"the oldest entry is now {_ts_text(oldest)}" if oldest else "no entry at or after it is left"
        super().__init__(
            "oplog overflow: the oplog rolled over while it was read, so writes made in that time are lost",
            detail=f"the read starts at oplog time {_ts_text(start)}; {seen}",
            hint="enlarge the oplog (replSetResizeOplog) or run at a quieter time; the retry starts afresh",
        )
        self.start, self.oldest = start, oldest


def check_not_rolled_over(client, start: Timestamp) -> None:
    """The oplog must still hold ``start``; otherwise entries of the window are lost."""
    oldest = oldest_ts(client)
    if oldest is not None and oldest > start:
        raise OplogRolledOver(start, oldest)


# ----------------------------------------------------------------------------- which entries


def _db_of(ns: str) -> str:
    return ns.split(".", 1)[0]


def multi_entry_txn(entry: Mapping[str, Any]) -> bool:
    """An entry of a transaction logged as several entries (mongod: ``partialTxn`` chains,
    ``prepare``, the entry that ends them, linked by ``prevOpTime``). A retryable batched
    insert (``multiOpType: 1``) has the link too but is no transaction."""
    if entry.get("op") != "c" or entry.get("lsid") is None or entry.get("multiOpType") == 1:
        return False
    o = entry.get("o") or {}
    if any(k in o for k in _TXN_END) or o.get("partialTxn") or o.get("prepare"):
        return True
    prev = (entry.get("prevOpTime") or {}).get("ts")
    return "applyOps" in o and isinstance(prev, Timestamp) and prev != Timestamp(0, 0)


def touches(entry: Mapping[str, Any], database: str, collections: set[str] | None = None) -> bool:
    """Does a reader of ``database`` (and of ``collections`` when given) need this entry?"""
    ns = entry.get("ns", "")
    op = entry.get("op")
    if op == "c" and ns == "admin.$cmd":
        if multi_entry_txn(entry):
            return True
        o = entry.get("o") or {}
        if "applyOps" in o:
            return any(touches(inner, database, collections) for inner in o["applyOps"])
        return False
    if _db_of(ns) != database:
        return False
    if collections is None or op == "n":
        return True
    if op == "c":
        o = entry.get("o") or {}
        return command_collection(o, database) in collections or "applyOps" in o
    coll = ns.split(".", 1)[1]
    return coll in collections or coll == "system.views"


def command_collection(o: Mapping[str, Any], database: str) -> str | None:
    """The collection a DDL command entry acts on (the first field's value)."""
    for key, value in o.items():
        if key == "renameCollection":
            return str(value).split(".", 1)[1] if "." in str(value) else None
        if isinstance(value, str):
            return value
        return None
    return None


# ----------------------------------------------------------------------------- order


class OrderCheck:
    """The strict order rule of the module doc, fed one entry at a time."""

    def __init__(self, start: Timestamp | None, end: Timestamp, where: str):
        self.start, self.end, self.where = start, end, where
        self.previous: Timestamp | None = start
        self._txn: tuple | None = None
        self.count = 0

    @staticmethod
    def _txn_of(entry) -> tuple | None:
        lsid = entry.get("lsid")
        if lsid is None or entry.get("txnNumber") is None:
            return None
        return (bytes(lsid.raw) if isinstance(lsid, RawBSONDocument) else repr(lsid)), int(entry["txnNumber"])

    def check(self, entry) -> Timestamp:
        ts = entry.get("ts")
        txn = self._txn_of(entry)
        if not isinstance(ts, Timestamp):
            raise IntegrityError(f"{self.where}: entry {self.count} has no BSON timestamp (ts {ts!r})",
                                 hint="this is not an oplog entry; restore from another copy")
        if ts > self.end or (self.start is not None and ts <= self.start):
            raise IntegrityError(f"{self.where}: entry {self.count} at {_ts_text(ts)} is outside "
                                 f"({_ts_text(self.start)}, {_ts_text(self.end)}]",
                                 hint="the entries do not match the range they claim to cover; restore from another copy")
        previous = self.previous
        same_txn = self.count > 0 and ts == previous and txn is not None and txn == self._txn
        if previous is not None and not (ts > previous or same_txn):
            what = "repeats" if ts == previous else "goes back before"
            raise IntegrityError(
                f"{self.where}: entry {self.count} at {_ts_text(ts)} {what} the previous entry's {_ts_text(previous)}",
                detail="oplog timestamps are unique and increasing (only the operations of one transaction, logged as "
                       "separate entries, may share one)",
                hint="the oplog read or the file is not in oplog order; a replay would apply writes in the wrong order",
            )
        self.previous, self._txn = ts, txn
        self.count += 1
        return ts


def checked(entries: Iterable, start: Timestamp | None, end: Timestamp, where: str) -> Iterator:
    check = OrderCheck(start, end, where)
    for entry in entries:
        check.check(entry)
        yield entry


def read_window(client, database: str, start: Timestamp | None, end: Timestamp | None, *,
                collections: set[str] | None = None, where: str = "oplog window") -> Iterator[RawBSONDocument]:
    """The entries of ``(start, end]`` a reader of ``database`` needs, oldest first, raw; with the
    order and rollover checks of the module doc. ``client`` talks to ONE member (see :mod:`.member`)."""
    if end is None or (start is not None and end <= start):
        return
    ts_range = {"$gt": start, "$lte": end} if start is not None else {"$lte": end}
    query = {"ts": ts_range, "ns": {"$in": [re.compile("^" + re.escape(database) + r"\."), "admin.$cmd"]}}
    coll = oplog_collection(client).with_options(codec_options=RAW)
    for entry in checked(coll.find(query, sort=[("$natural", 1)]), start, end, where):
        if touches(entry, database, collections):
            yield entry
    if start is not None:
        check_not_rolled_over(client, start)
