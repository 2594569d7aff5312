"""Dump one database like ``mongodump --db X --oplog --archive``, streaming raw BSON.

The hot loop is ``for batch in find_raw_batches(): queue.put(batch)``: batches are never
decoded. A writer thread takes them from a small bounded queue, counts documents from their
int32 length prefixes, updates the CRC-64 and compresses/writes them; zstd, isal and the
numpy CRC release the GIL, so compression overlaps with the next network read. Memory is
bounded by the queue (a few server batches), whatever the collection size.

Consistency follows mongodump: metadata first, then the newest oplog timestamp (``start``),
the data, the newest timestamp again (``end``), a check that the oplog still reaches
``start`` (see :func:`.oplog.window`), and the entries in ``(start, end]`` that concern the database go into the
archive's oplog slot. A restore that replays them is consistent at ``end``.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from dataclasses import dataclass, field
from datetime import datetime

from bson import Timestamp
from pymongo import read_preferences

from backup_dr.core.errors import BackupDRError
from backup_dr.core.mongo import oplog as oplog_mod
from backup_dr.core.mongo.archive import OPLOG_COLLECTION, OPLOG_DB, PreludeEntry, placeholder_oplog_entry
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
    metadata_only: bool = False
    seconds: float = 0.0

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
                  progress_every: float = 5.0, secrets: list[str] | None = None) -> DumpResult:
    """Dump ``database`` into ``sink`` (an ArchiveSink or DirectorySink). See the module doc."""
    started = time.monotonic()
    rp = read_preference(read_pref)
    with translate(f"dumping MongoDB database {database!r}", secrets=secrets):
        names = [d for d in client.list_database_names()]
        if database not in names:
            from backup_dr.core.errors import NotFoundError

            raise NotFoundError(
                f"MongoDB database {database!r} does not exist on the source server",
                detail=f"databases there: {', '.join(sorted(names)) or 'none'}",
                hint="fix sources.<name>.database in the policy, or check the connection points at the right server",
            )
        db = client.get_database(database, read_preference=rp)
        metas = read_collections(db, list(collections) if collections else None)
        result = DumpResult(database=database, collections=metas, read_preference=read_pref, metadata_only=metadata_only)
        result.server_version = str(client.server_info().get("version", "unknown"))
        use_oplog = oplog and not metadata_only and oplog_mod.has_oplog(client)
        if oplog and not metadata_only and not use_oplog:
            log.warning("server has no local.oplog.rs (not a replica set): the dump of %s is not point-in-time consistent", database)
        entries = [PreludeEntry(database, m.name, m.to_json(), 0, m.type) for m in metas]
        if use_oplog:
            entries.append(PreludeEntry(OPLOG_DB, OPLOG_COLLECTION))
        writer = _WriterThread(sink)
        writer.start()
        try:
            writer.call(lambda: sink.prelude(entries))
            if use_oplog:
                result.start = oplog_mod.newest_ts(client, rp)
            for meta in metas:
                _dump_collection(db, meta, writer, result, metadata_only, progress_every)
            if use_oplog:
                result.end = oplog_mod.newest_ts(client, rp)
                result.oplog_entries = _dump_oplog(client, database, result, writer, set(collections) if collections else None, rp)
                result.end_time = oplog_mod.ts_time(result.end)
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
    result.crcs = dict(sink.crcs)
    result.seconds = time.monotonic() - started
    log.info("dumped %s: %d collection(s), %d documents, %.1f MB, %d oplog entries in %.1fs",
             database, len(metas), result.docs, result.total_bytes / 1e6, result.oplog_entries, result.seconds)
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


def _dump_oplog(client, database: str, result: DumpResult, writer: _WriterThread, collections, rp) -> int:
    writer.call(lambda: writer.sink.begin(OPLOG_DB, OPLOG_COLLECTION))
    n = 0
    chunk: list[bytes] = []
    size = 0
    for entry in oplog_mod.window(client, database, result.start, result.end, collections=collections, read_preference=rp):
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
