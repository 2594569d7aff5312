"""Dump one database like ``mongodump --db X --oplog --archive``, streaming raw BSON.

The hot loop is ``for batch in find_raw_batches(): queue.put(batch)``: batches are never
decoded. A writer thread takes them from a small bounded queue, counts documents from their
int32 length prefixes, updates the CRC-64 and compresses/writes them; zstd, isal and the
numpy CRC release the GIL, so compression overlaps with the next network read. Memory is
bounded by the queue (a few server batches), whatever the collection size.

Consistency, as ``mongodump --oplog`` but on ONE member for everything (chosen once by the
read preference, then a direct connection: :mod:`.member`):

1. ``start``: the member's majority-committed position (:func:`.oplog.safe_position`: no
   write at or before it is still in flight, so none can be missed by both the scans and
   the window), taken BEFORE the collections are listed, so a collection created later is
   in the window;
2. metadata, then every collection's documents;
3. ``end``: once the member's majority-committed position has reached the last position the
   scans could have seen (:func:`.oplog.wait_for_position`), so a PITR chain that starts at
   ``end`` never starts at a point the window does not cover, and no write a failover could
   roll back is in the backup;
4. the window ``(start, end]`` read by THE oplog reader (strict order, rollover check) into
   the archive's oplog slot. A transaction whose chain began before ``start`` moves ``start``
   back to its first entry (:func:`extend_for_transactions`), so the window holds it whole.

A restore that replays the window is consistent at ``end``; what it must then hold is
computed from the window here (:mod:`.end_counts`) and resolved by the caller once the dumped
data is readable.
"""

from __future__ import annotations

import logging
import queue
import tempfile
import threading
import time
from dataclasses import dataclass, field
from datetime import datetime
from typing import Callable

from bson import Timestamp
from pymongo import read_preferences

from backup_dr.core.errors import BackupDRError, SourceError
from backup_dr.core.mongo import oplog as oplog_mod
from backup_dr.core.mongo.archive import OPLOG_COLLECTION, OPLOG_DB, PreludeEntry, placeholder_oplog_entry
from backup_dr.core.mongo.bsonraw import iter_documents
from backup_dr.core.mongo.end_counts import WindowFacts
from backup_dr.core.mongo.member import pinned_member
from backup_dr.core.mongo.metadata import CollectionMeta, read_collections
from backup_dr.core.mongo.mongo_errors import translate
from backup_dr.core.mongo.sinks import count_docs
from backup_dr.core.progress import Progress

log = logging.getLogger(__name__)

READ_PREFERENCES = {
    "primary": read_preferences.Primary,
    "primaryPreferred": read_preferences.PrimaryPreferred,
    "secondary": read_preferences.Secondary,
    "secondaryPreferred": read_preferences.SecondaryPreferred,
    "nearest": read_preferences.Nearest,
}
_QUEUE_BATCHES = 3  # bounded: peak memory ~ (queue + 2) server batches
#: Documents per server batch. Left to the server, a batch is up to 16 MB, and pymongo holds
#: several copies of a reply while receiving it: a dump then peaked ~120 MB higher on the
#: 10x dataset than on the demo's (tests/faults/test_scale.py). 1000 documents keep a batch
#: at a few MB for typical documents (the server still caps it at 16 MB) and read no slower.
_BATCH_DOCS = 1000


def read_preference(name: str):
    try:
        return READ_PREFERENCES[name]()
    except KeyError:
        raise BackupDRError(
            f"unknown read preference {name!r}",
            hint=f"use one of: {', '.join(READ_PREFERENCES)} (policy sources.<name>.read_preference)",
        ) from None


@dataclass
class DumpResult:
    database: str
    collections: list[CollectionMeta]
    counts: dict[str, int] = field(default_factory=dict)
    data_bytes: dict[str, int] = field(default_factory=dict)
    crcs: dict[str, int] = field(default_factory=dict)
    start: Timestamp | None = None
    end: Timestamp | None = None
    end_time: datetime | None = None
    oplog_entries: int = 0
    server_version: str = ""
    read_preference: str = "secondaryPreferred"
    member: str = ""  # host:port of the one member read
    member_state: str = ""
    metadata_only: bool = False
    seconds: float = 0.0
    window: WindowFacts | None = None  # what the window does to the documents read (see end_counts)
    counts_at_end: dict[str, int | None] | None = None  # set by the caller: end_counts.resolve

    @property
    def docs(self) -> int:
        return sum(self.counts.values())

    @property
    def total_bytes(self) -> int:
        return sum(self.data_bytes.values())


class _WriterThread(threading.Thread):
    """Consumes (op, payload) items: the only thread that touches the sink."""

    _STOP = object()

    def __init__(self, sink):
        super().__init__(name="mongo-dump-writer", daemon=True)
        self.sink = sink
        self.q: queue.Queue = queue.Queue(maxsize=_QUEUE_BATCHES)
        self.error: BaseException | None = None
        self.docs = 0
        self.bytes = 0
        self.progress: Progress | None = None

    def run(self) -> None:
        sink = self.sink
        get = self.q.get
        try:
            while True:
                item = get()
                if item is self._STOP:
                    return
                if isinstance(item, (bytes, bytearray, memoryview)):
                    n = count_docs(item)
                    sink.write(item)
                    self.docs += n
                    self.bytes += len(item)
                    if self.progress is not None:
                        self.progress.add(n, len(item))
                else:
                    item()
        except BaseException as e:  # noqa: BLE001 - handed to the producer, which re-raises
            self.error = e
            while True:  # free a producer blocked on a full queue; it then sees .error
                try:
                    self.q.get_nowait()
                except queue.Empty:
                    return

    def put(self, item) -> None:
        while True:
            if self.error is not None:
                raise self.error
            try:
                self.q.put(item, timeout=0.5)
                return
            except queue.Full:
                continue

    def call(self, fn) -> None:
        self.put(fn)

    def finish(self) -> None:
        self.put(self._STOP)
        self.join()
        if self.error is not None:
            raise self.error


def _fetch_totals_later(db, name: str, progress: Progress, delay: float) -> threading.Timer:
    """ETA totals from collStats, fetched only if the collection takes longer than ``delay``.

    WHY lazy: collStats is free on mongod but a full scan on some servers (SecantusDB);
    short collections never print a progress line, so they never pay for it.
    """

    def fetch() -> None:
        try:
            st = db.command("collStats", name)
            progress.total_items, progress.total_bytes = int(st.get("count") or 0), int(st.get("size") or 0)
        except Exception as e:  # noqa: BLE001 - an ETA is a nicety, never a reason to fail
            log.debug("collStats for %s failed: %s", name, e)

    timer = threading.Timer(delay, fetch)
    timer.daemon = True
    timer.start()
    return timer


def dump_database(client, database: str, sink, *, collections: list[str] | tuple[str, ...] | None = None,
                  read_pref: str = "secondaryPreferred", metadata_only: bool = False, oplog: bool = True,
                  progress_every: float = 5.0, secrets: list[str] | None = None,
                  majority_timeout: float = 120.0) -> DumpResult:
    """Dump ``database`` into ``sink`` (an ArchiveSink or DirectorySink). See the module doc."""
    started = time.monotonic()
    rp = read_preference(read_pref)
    with translate(f"dumping MongoDB database {database!r}", secrets=secrets), \
            pinned_member(client, rp, what=f"the dump of {database!r}") as member:
        result = _dump(member.client, database, sink, collections, read_pref, metadata_only, oplog, progress_every,
                       majority_timeout)
        result.member, result.member_state = member.address, member.state
    result.crcs = dict(sink.crcs)
    result.seconds = time.monotonic() - started
    log.info("dumped %s from %s: %d collection(s), %d documents, %.1f MB, %d oplog entries in %.1fs", database,
             result.member, len(result.collections), result.docs, result.total_bytes / 1e6, result.oplog_entries,
             result.seconds)
    return result


def _dump(client, database, sink, collections, read_pref, metadata_only, oplog, progress_every, majority_timeout):
    names = [d for d in client.list_database_names()]
    if database not in names:
        from backup_dr.core.errors import NotFoundError

        raise NotFoundError(
            f"MongoDB database {database!r} does not exist on the source server",
            detail=f"databases there: {', '.join(sorted(names)) or 'none'}",
            hint="fix sources.<name>.database in the policy, or check the connection points at the right server",
        )
    use_oplog = oplog and not metadata_only and oplog_mod.has_oplog(client)
    if oplog and not metadata_only and not use_oplog:
        log.warning("server has no local.oplog.rs (not a replica set): the dump of %s is not point-in-time consistent", database)
    start = oplog_mod.safe_position(client)[0] if use_oplog else None
    db = client.get_database(database)
    metas = read_collections(db, list(collections) if collections else None)
    result = DumpResult(database=database, collections=metas, read_preference=read_pref, metadata_only=metadata_only,
                        start=start)
    result.server_version = str(client.server_info().get("version", "unknown"))
    entries = [PreludeEntry(database, m.name, m.to_json(), 0, m.type) for m in metas]
    if use_oplog:
        entries.append(PreludeEntry(OPLOG_DB, OPLOG_COLLECTION))
    writer = _WriterThread(sink)
    writer.start()
    try:
        writer.call(lambda: sink.prelude(entries))
        for meta in metas:
            _dump_collection(db, meta, writer, result, metadata_only, progress_every)
        if use_oplog:
            seen = oplog_mod.newest_ts(client)  # the newest write the scans could have seen
            result.end = oplog_mod.wait_for_position(client, max(seen, start), timeout=majority_timeout)
            result.end_time = oplog_mod.ts_time(result.end)
            result.window = WindowFacts(database, [m.name for m in metas if not m.is_view])
            result.oplog_entries = _dump_oplog(client, database, result, writer, set(collections) if collections else None)
        writer.finish()
    except BaseException:
        writer.error = writer.error or RuntimeError("dump aborted")
        try:  # let the writer thread end instead of waiting on the queue forever
            writer.q.put_nowait(_WriterThread._STOP)
        except queue.Full:
            pass
        sink.discard()
        raise
    sink.close()
    return result


def _dump_collection(db, meta: CollectionMeta, writer: _WriterThread, result: DumpResult, metadata_only: bool,
                     progress_every: float) -> None:
    name = meta.name
    before_docs, before_bytes = writer.docs, writer.bytes
    progress = Progress(f"collection {db.name}.{name}", unit="docs", every=progress_every, logger=log)
    writer.call(lambda: (writer.sink.begin(db.name, name), setattr(writer, "progress", progress)))
    if not meta.is_view and not metadata_only:
        timer = _fetch_totals_later(db, name, progress, progress_every)
        try:
            put = writer.put
            for batch in db[name].find_raw_batches(batch_size=_BATCH_DOCS):
                put(batch)
        finally:
            timer.cancel()
    done = threading.Event()
    writer.call(lambda: (writer.sink.end(), setattr(writer, "progress", None), done.set()))
    while not done.wait(0.2):
        if writer.error is not None:
            raise writer.error
    result.counts[name] = writer.docs - before_docs
    result.data_bytes[name] = writer.bytes - before_bytes
    if not meta.is_view and not metadata_only:
        progress.done()


def _dump_oplog(client, database: str, result: DumpResult, writer: _WriterThread, collections) -> int:
    """The window into the archive's oplog slot and into ``result.window`` (see the module doc).
    Read into a spool first: a transaction straddling ``start`` is only seen inside the window,
    and its earlier entries must come before everything else."""
    with tempfile.SpooledTemporaryFile(max_size=32 << 20) as spool:
        straddling = []
        for entry in oplog_mod.read_window(client, database, result.start, result.end, collections=collections,
                                           where=f"oplog window of {database}"):
            spool.write(entry.raw)
            if _continues_before(entry, result.start):
                straddling.append(entry)
        spool.seek(0)
        earlier: list = []
        if straddling:
            new_start = extend_for_transactions(straddling, result.start, lambda ts: _entry_at(client, ts))
            earlier = list(oplog_mod.read_window(client, database, new_start, result.start, collections=collections,
                                                 where=f"oplog before the window of {database}"))
            log.info("window of %s starts at %s instead of %s: %d transaction(s) began before it", database, new_start,
                     result.start, len(straddling))
            result.start = new_start
        writer.call(lambda: writer.sink.begin(OPLOG_DB, OPLOG_COLLECTION))
        n = 0
        chunk: list[bytes] = []
        size = 0
        for entry in [*earlier, *iter_documents(spool, "the oplog window spool")]:
            result.window.feed(entry)
            chunk.append(entry.raw)
            size += len(entry.raw)
            n += 1
            if size >= 1 << 20:
                writer.put(b"".join(chunk))
                chunk, size = [], 0
        if chunk:
            writer.put(b"".join(chunk))
        if n == 0:  # never an empty oplog section (stock mongorestore --oplogReplay fails on one)
            writer.put(placeholder_oplog_entry(result.end, database))
        writer.call(lambda: writer.sink.end())
    return n


def _continues_before(entry, start: Timestamp | None) -> bool:
    prev = (entry.get("prevOpTime") or {}).get("ts")
    return (start is not None and oplog_mod.multi_entry_txn(entry) and isinstance(prev, Timestamp)
            and Timestamp(0, 0) < prev <= start)


def _entry_at(client, ts: Timestamp):
    return oplog_mod.oplog_collection(client).with_options(codec_options=oplog_mod.RAW).find_one({"ts": ts})


def extend_for_transactions(straddling: list, start: Timestamp, entry_at: Callable[[Timestamp], object]) -> Timestamp:
    """The position just before the first entry of every transaction chain that ``straddling``
    (entries inside the window) continue from before ``start``: follows ``prevOpTime`` back."""
    first = start
    for entry in straddling:
        current = entry
        while True:
            prev = (current.get("prevOpTime") or {}).get("ts")
            if not isinstance(prev, Timestamp) or prev == Timestamp(0, 0):
                break
            found = entry_at(prev)
            if found is None:
                raise SourceError(f"a transaction in the oplog window continues an entry at {prev} that the oplog no "
                                  "longer holds: it cannot be backed up whole",
                                  hint="enlarge the oplog (replSetResizeOplog); the retry starts afresh")
            current = found
        first = min(first, current["ts"])
    return Timestamp(first.time, first.inc - 1) if first.inc > 0 else Timestamp(first.time - 1, 0xFFFFFFFF)
