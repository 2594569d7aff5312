"""Document counts at a backup's consistent point (``end``), exact; and THE expected counts of a backup.

A dump reads each collection while it is being written; replaying the oplog window
``(start, end]`` over those documents gives the state at ``end``. The counts that state has
are NOT the counts the scans read (``manifest.counts``): a document inserted during the dump
is in the window and maybe in the scan; one deleted may have been read before it went. Every
validator compares restored counts with the backup, so the dump records the counts at
``end`` (``consistent_point.counts``) and :func:`expected_counts` is the one place that says
what a restore of a backup must hold.

How they are computed, exactly and without decoding the hot path (decided here):

* only documents the window touches can differ from what was read; the window is read anyway
  (it goes into the archive) and its entries are few next to the data. :class:`WindowFacts`
  follows it in order, transactions assembled as the applier assembles them (whole, at
  commit), and knows for each touched ``_id`` whether it exists at ``end`` (last write an
  insert or update: yes; a delete: no) and for each collection whether it was created,
  dropped or renamed in the window.
* whether a touched ``_id`` is among the documents read cannot be told from timestamps (a
  write's visibility relative to a scan is not ordered by ``ts`` on a primary). It is read
  back from the dumped data itself, AFTER the dump, for those collections only:
  ``count_at_end = read - (touched ids that were read) + (touched ids that exist at end)``.
* cost: a quiet database touches nothing, so nothing is read back (the cost does not grow
  with the database); with writes during the dump the collections written are read back
  once from the archive just written (decompression and one ``_id`` lookup per document,
  measured by ``benchmarks/mongo_dump.py``). No server feature beyond a plain oplog read is
  used (no snapshot reads, no ``count`` at a cluster time).
* a capped collection's evictions are logged as deletes by mongod (FCV 5.0+,
  ``jstests/replsets/capped_deletes.js``), so they count like any delete. A collection
  renamed in from another database, or converted to capped in the window, carries documents
  the window does not show: its count is ``None`` (not knowable), which validators skip and say so.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Callable, Iterable, Iterator, Mapping

from backup_dr.core.mongo import bsonraw
from backup_dr.core.mongo.transactions import Transactions

log = logging.getLogger(__name__)

DUMPED, EMPTY, UNKNOWN = "dumped", "empty", "unknown"
#: yields (collection, raw document) for the named collections of the data just dumped
DumpedDocuments = Callable[[set[str]], Iterable[tuple[str, bytes]]]


def id_key(doc) -> bytes | None:
    el = bsonraw.get(doc, "_id")
    return None if el is None else bytes([el[1]]) + el[2]


@dataclass
class _State:
    base: str  # DUMPED: the documents read for ``source``; EMPTY: created in the window; UNKNOWN
    source: str | None = None
    present: dict[bytes, bool] = field(default_factory=dict)  # touched _id -> exists at end
    why: str = ""


class WindowFacts:
    """What the window does to the dumped collections; fed every window entry in order."""

    def __init__(self, database: str, dumped: Iterable[str]):
        self.database = database
        self.colls: dict[str, _State] = {name: _State(DUMPED, name) for name in dumped}
        self.txns = Transactions()
        self.entries = 0

    def feed_all(self, entries: Iterable) -> None:
        for entry in entries:
            self.feed(entry)

    def feed(self, entry) -> None:
        self.entries += 1
        op = entry.get("op")
        if op in ("i", "u", "d"):
            self._crud(entry, op)
        elif op == "c":
            self._command(entry)

    def _coll(self, ns: str) -> str | None:
        db, _, coll = str(ns).partition(".")
        return coll if db == self.database and coll and not coll.startswith("system.") else None

    def _crud(self, entry, op: str) -> None:
        coll = self._coll(entry.get("ns", ""))
        if coll is None:
            return
        state = self.colls.get(coll)
        if state is None:  # written without a create in the window: documents from before we cannot see
            state = self.colls[coll] = _State(UNKNOWN, why="written in the window without being dumped or created in it")
        key = id_key(entry["o2"] if op == "u" else entry["o"])
        if key is None:
            state.base, state.why = UNKNOWN, "an oplog entry without _id"
            return
        state.present[key] = op != "d"

    def _command(self, entry) -> None:
        o = entry.get("o") or {}
        name = next(iter(o.keys()), None)
        if name == "applyOps":
            return self._inner(self.txns.apply_ops(entry, o))
        if name in ("commitTransaction", "abortTransaction"):
            return self._inner(self.txns.finish(entry, commit=name == "commitTransaction"))
        if str(entry.get("ns", "")).partition(".")[0] != self.database:
            return
        value = o.get(name)
        if name == "create" and "viewOn" not in o and isinstance(value, str) and not value.startswith("system."):
            self.colls[value] = _State(EMPTY)
        elif name == "drop":
            self.colls.pop(str(value), None)
        elif name == "dropDatabase":
            self.colls.clear()
        elif name == "renameCollection":
            self._rename(str(value), str(o.get("to", "")))
        elif name == "emptycapped":
            self.colls[str(value)] = _State(EMPTY)
        elif name in ("convertToCapped", "cloneCollectionAsCapped"):
            target = str(o.get("toCollection", value)) if name == "cloneCollectionAsCapped" else str(value)
            self.colls[target] = _State(UNKNOWN, why=f"{name} in the window (the size limit may drop documents unlogged)")

    def _rename(self, src: str, dst: str) -> None:
        src_db, _, src_coll = src.partition(".")
        dst_db, _, dst_coll = dst.partition(".")
        moved = self.colls.pop(src_coll, None) if src_db == self.database else None
        if dst_db != self.database:
            return
        if moved is None and src_db != self.database:
            moved = _State(UNKNOWN, why=f"renamed in from {src}")
        if moved is not None:
            self.colls[dst_coll] = moved

    def _inner(self, ops: list) -> None:
        for inner in ops:
            self.feed(inner)
            self.entries -= 1  # inner operations are not window entries

    def reread_needed(self) -> dict[str, set[bytes]]:
        """Dumped collection -> touched ``_id``s whose presence among the documents read decides the count."""
        return {s.source: set(s.present) for s in self.colls.values() if s.base == DUMPED and s.present}

    def counts(self, read: Mapping[str, int], hits: Mapping[str, int]) -> dict[str, int | None]:
        """Counts at ``end``: ``read`` per dumped collection, ``hits`` = touched ids found among them."""
        out: dict[str, int | None] = {}
        for name, s in sorted(self.colls.items()):
            alive = sum(1 for exists in s.present.values() if exists)
            if s.base == DUMPED:
                out[name] = read.get(s.source, 0) - hits.get(s.source, 0) + alive
            elif s.base == EMPTY:
                out[name] = alive
            else:
                log.info("count of %s.%s at the consistent point is not knowable: %s", self.database, name, s.why)
                out[name] = None
        return out


def resolve(facts: WindowFacts, read: Mapping[str, int], documents: DumpedDocuments | None) -> dict[str, int | None]:
    """The counts at ``end`` (see the module doc); reads back only what the window touched."""
    needed = facts.reread_needed()
    hits: dict[str, int] = {}
    if needed:
        if documents is None:
            raise ValueError("the window touched dumped documents but there is no way to read the dump back")
        for coll, doc in documents(set(needed)):
            ids = needed.get(coll)
            if ids and id_key(doc) in ids:
                hits[coll] = hits.get(coll, 0) + 1
        log.info("counts at the consistent point: %d touched document(s) looked up in %d collection(s) of the dump",
                 sum(len(v) for v in needed.values()), len(needed))
    return facts.counts(read, hits)


@dataclass(frozen=True)
class ExpectedCounts:
    """What a restore of one backup must hold, per collection (``None``: not knowable, skipped)."""

    counts: dict[str, int | None]
    source: str

    @property
    def known(self) -> dict[str, int]:
        return {k: v for k, v in self.counts.items() if isinstance(v, int)}


def expected_counts(manifest) -> ExpectedCounts:
    """THE expected document counts of a MongoDB backup, after its oplog window is replayed.

    * recorded by the dump (``consistent_point.counts``): those;
    * an older backup without them whose dump saw no write (an empty window, or no window at
      all: nothing is replayed): the dump's own counts, which are then exact;
    * an older backup with a non-empty window: not knowable from the manifest (empty ``counts``);
      validators then check what the restore itself replayed, and say so.
    """
    point = manifest.consistent_point or {}
    if isinstance(point.get("counts"), dict):
        return ExpectedCounts(dict(point["counts"]), "the backup's counts at its consistent point")
    entries = (manifest.details or {}).get("oplog_entries")
    if not point.get("end") or entries == 0:
        return ExpectedCounts(dict(manifest.counts), "the dump's counts (no write happened during the dump)")
    return ExpectedCounts({}, f"not recorded: backup {manifest.backup_id} predates counts at the consistent point and "
                              f"{entries} oplog entries were written during its dump")


def archive_documents(open_stream: Callable[[], object], source_db: str) -> DumpedDocuments:
    """A :data:`DumpedDocuments` over an archive (``open_stream`` returns a context manager of
    a fresh decompressed stream of it); it stops after the last collection asked for."""
    from backup_dr.core.mongo.archive import ArchiveReader

    def documents(names: set[str]) -> Iterator[tuple[str, bytes]]:
        left = set(names)
        with open_stream() as stream:
            reader = ArchiveReader(stream, where="the archive just written")
            for db, coll, doc in reader.documents():
                if db != source_db or coll not in names:
                    continue
                if doc is None:  # the collection's EOF block
                    left.discard(coll)
                    if not left:
                        return
                    continue
                yield coll, doc

    return documents


def overlay(result, expected: ExpectedCounts | None, collections=None) -> None:
    """Make the backup's expected counts what a restore's validation compares (``result`` is a
    :class:`backup_dr.core.mongo.restore.RestoreResult`); without them (an old backup with a
    window) the restore keeps its own (its archive counts plus what its replay inserted/deleted)."""
    if expected is None or not expected.counts:
        if expected is not None:
            log.warning("document counts cannot be checked against the backup: %s; checking against what the "
                        "restore itself loaded and replayed", expected.source)
        return
    counts = dict(result.expected_counts)
    for name, n in expected.counts.items():
        if name in counts or not collections or name in collections:
            counts[name] = n
    result.expected_counts = counts
