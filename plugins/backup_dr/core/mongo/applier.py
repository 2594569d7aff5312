"""Replay oplog entries onto a database: the client-side applier, on any server.

Each entry becomes ordinary writes, so the same code runs on mongod and on the test server
(which has no ``applyOps``): ``i`` -> replace-by-_id with upsert (idempotent), ``d`` ->
delete by ``o``, ``u`` -> by its form (:mod:`.oplog_updates`): a replacement, server-applied
``$set``/``$unset`` for the legacy and change-stream forms, and for mongod's ``$v: 2`` diff
the post-image computed from the stored document exactly as mongod computes it
(:mod:`.mongod_diff`: literal field names, field order, array padding). ``c`` -> the DDL
command (:mod:`.replay_ddl`), writes to ``<db>.system.views`` -> view DDL, ``n`` -> nothing.
CRUD entries are batched per collection into ordered ``bulk_write`` calls (consecutive diff
updates: one read of their pre-images, one bulk replace); commands flush first, so order is
kept. Transactions (:mod:`.transactions`) are applied whole at their commit, on this
database; an incomplete one stops the replay.

WHY no server-side ``applyOps``: it would run only in production (the test server lacks it),
so the path users depend on on the worst day would be the one never exercised; it also needs
a privilege (``applyOps`` on the cluster) a backup user should not hold, and cannot rename
the database. One applier, tested against mongod's own oplog shapes
(``tests/fixtures/mongod_oplog``), replaces it.

A restore that renames the database or selects collections applies the same mapping here
(:class:`NamespaceMap`). An entry of a form we do not know raises :class:`UnknownOplogEntry`.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any, Iterable

from bson.codec_options import CodecOptions
from bson.raw_bson import RawBSONDocument
from pymongo import DeleteOne, ReplaceOne, UpdateOne

from backup_dr.core.mongo import bsonraw
from backup_dr.core.mongo.mongod_diff import apply_diff
from backup_dr.core.mongo.oplog_updates import UnknownOplogEntry, plan_update
from backup_dr.core.mongo.replay_ddl import VIEWS, DdlReplayer
from backup_dr.core.mongo.transactions import Transactions

log = logging.getLogger(__name__)

_BATCH = 500
_TXN_COMMANDS = {"commitTransaction", "abortTransaction"}
_RAW = CodecOptions(document_class=RawBSONDocument)


class NamespaceMap:
    """Which source namespaces replay, and where: ``src_db`` -> ``dst_db``, optional collection set."""

    def __init__(self, source_db: str, target_db: str | None = None, collections: Iterable[str] | None = None):
        self.source_db = source_db
        self.target_db = target_db or source_db
        self.collections = set(collections) if collections else None

    def selected(self, coll: str) -> bool:
        return self.collections is None or coll in self.collections

    def target(self, ns: str) -> str | None:
        db, _, coll = ns.partition(".")
        if db != self.source_db or not (self.selected(coll) or coll == VIEWS):
            return None
        return coll

    def renamed(self, old: str, new: str) -> None:
        if self.collections is not None and old in self.collections:
            self.collections.add(new)


@dataclass
class ApplyStats:
    entries: int = 0
    applied: dict[str, int] = field(default_factory=dict)  # by op kind
    skipped: int = 0  # other databases / collections not selected / no-ops
    missing: int = 0  # diff updates of a document the target does not hold (deleted later in the window)
    doc_delta: dict[str, int] = field(default_factory=dict)  # target collection -> net documents added
    touched: set[str] = field(default_factory=set)  # target collections written or changed
    created_indexes: dict[str, set[str]] = field(default_factory=dict)
    dropped_indexes: dict[str, set[str]] = field(default_factory=dict)
    dropped: set[str] = field(default_factory=set)
    renamed: dict[str, str] = field(default_factory=dict)
    open_transactions: int = 0

    def count(self, kind: str) -> None:
        self.applied[kind] = self.applied.get(kind, 0) + 1

    def as_dict(self) -> dict[str, Any]:
        return {"entries": self.entries, "applied": dict(self.applied), "skipped": self.skipped, "missing": self.missing,
                "doc_delta": dict(self.doc_delta), "touched": sorted(self.touched),
                "open_transactions": self.open_transactions}


def replace_request(where, doc, *, upsert: bool):
    """Replace one document by ``doc`` (raw). A document with a top-level ``$``-prefixed field
    (legal since MongoDB 5.0, e.g. set by ``$setField``) cannot be a replacement document, so it
    goes in as ``$replaceWith: {$literal: doc}``, which keeps its bytes and field order."""
    if any(name.startswith("$") for name, _t, _v in bsonraw.elements(doc)):
        return UpdateOne(where, [{"$replaceWith": {"$literal": doc}}], upsert=upsert)
    return ReplaceOne(where, doc, upsert=upsert)


def _id_key(doc) -> bytes:
    el = bsonraw.get(doc, "_id")
    if el is None:
        raise UnknownOplogEntry("oplog update without _id in its document key (o2)", detail=repr(dict(doc))[:300])
    return bytes([el[1]]) + el[2]


class OplogApplier:
    """Apply oplog entries (raw documents, oldest first) to ``client[target_db]``.

    ``transactions``: the open transactions of an earlier range to continue (PITR after the
    base backup's window), see :meth:`Transactions.adopt`.
    """

    def __init__(self, client, nsmap: NamespaceMap, *, bypass_validation: bool = True,
                 transactions: Transactions | None = None):
        self.client = client
        self.map = nsmap
        self.db = client[nsmap.target_db]
        self.stats = ApplyStats()
        self.bypass = bypass_validation
        self.txns = Transactions()
        if transactions is not None:
            self.txns.adopt(transactions)
        self.ddl = DdlReplayer(self)
        self._batch: list = []
        self._diffs: list[tuple[bytes, Any, RawBSONDocument]] = []  # (_id key, o2, diff) of one collection
        self._batch_coll: str | None = None

    # ---- entry points

    def apply_all(self, entries: Iterable) -> ApplyStats:
        for entry in entries:
            self.apply(entry)
        self.flush()
        self.stats.open_transactions = len(self.txns.open)
        if self.txns.open:
            log.info("%d transaction(s) were not yet committed at the end of the replayed range: not part of the state "
                     "there, so not applied", len(self.txns.open))
        return self.stats

    def apply(self, entry) -> None:
        if not isinstance(entry, RawBSONDocument):
            entry = RawBSONDocument(entry if isinstance(entry, (bytes, bytearray)) else _encode(entry))
        self.stats.entries += 1
        op = entry.get("op")
        if op == "n":
            self.stats.skipped += 1
            return
        if op in ("i", "u", "d"):
            self._crud(entry)
        elif op == "c":
            self.flush()
            self._command(entry)
        else:
            raise UnknownOplogEntry(f"unknown oplog op {op!r} (ts {entry.get('ts')})", detail=repr(dict(entry))[:500])

    # ---- CRUD

    def _crud(self, entry) -> None:
        ns = entry.get("ns", "")
        coll = self.map.target(ns)
        if coll is None:
            self.stats.skipped += 1
            return
        if coll == VIEWS:
            self.flush()
            return self.ddl.view_write(entry)
        if coll.startswith("system.") and coll != "system.js":
            raise UnknownOplogEntry(f"oplog write to {ns}: writes to system collections are not replayed",
                                    hint="restore this database with the stock mongorestore --oplogReplay on mongod")
        op = entry["op"]
        self.stats.count(op)
        if coll != self._batch_coll:
            self.flush()
            self._batch_coll = coll
        if op == "u":
            plan = plan_update(entry["o"])
            where = entry.get("o2")
            if where is None:
                raise UnknownOplogEntry(f"update entry without o2 (ts {entry.get('ts')})")
            if plan.diff is not None:
                self._flush_requests()
                self._diffs.append((_id_key(where), where, plan.diff))
                if len(self._diffs) >= _BATCH:
                    self._flush_diffs()
                return
            reqs = [replace_request(where, plan.replacement, upsert=True)] if plan.replacement is not None else \
                [UpdateOne(where, u) for u in plan.updates]
        elif op == "i":
            o = entry["o"]
            reqs = [replace_request(bsonraw.build([bsonraw.get(o, "_id")]), o, upsert=True)]
        else:
            reqs = [DeleteOne(entry["o"])]
        self._flush_diffs()
        self._batch.extend(reqs)
        if len(self._batch) >= _BATCH:
            self._flush_requests()

    def flush(self) -> None:
        self._flush_diffs()
        self._flush_requests()

    def _flush_requests(self) -> None:
        if not self._batch:
            return
        coll, batch = self._batch_coll, self._batch
        self._batch = []
        self.stats.touched.add(coll)
        res = self.db[coll].bulk_write(batch, ordered=True, bypass_document_validation=self.bypass)
        delta = res.upserted_count - res.deleted_count
        self.stats.doc_delta[coll] = self.stats.doc_delta.get(coll, 0) + delta

    def _flush_diffs(self) -> None:
        """Consecutive diff updates of one collection: read their pre-images once, apply every diff
        in order (several may change one document), write each changed document once."""
        if not self._diffs:
            return
        coll, diffs = self._batch_coll, self._diffs
        self._diffs = []
        self.stats.touched.add(coll)
        ids = list(dict.fromkeys(key for key, _w, _d in diffs))
        query = bsonraw.build([("_id", 0x03, bsonraw.build([("$in", 0x04, bsonraw.build(
            [(str(i), key[0], key[1:]) for i, key in enumerate(ids)]).raw)]).raw)])
        target = self.db[coll].with_options(codec_options=_RAW)
        docs: dict[bytes, RawBSONDocument] = {_id_key(d): d for d in target.find(query)}
        where_of: dict[bytes, Any] = {}
        changed: list[bytes] = []
        for key, where, diff in diffs:
            pre = docs.get(key)
            if pre is None:
                self.stats.missing += 1  # deleted later in the window (the dump saw it gone)
                continue
            docs[key] = apply_diff(pre, diff)
            where_of[key] = where
            if key not in changed:
                changed.append(key)
        if changed:
            target.bulk_write([replace_request(where_of[k], docs[k], upsert=False) for k in changed], ordered=True,
                              bypass_document_validation=self.bypass)

    # ---- commands

    def _command(self, entry) -> None:
        ns = entry.get("ns", "")
        o = entry["o"]
        name = next(iter(o.keys()), None)
        if name == "applyOps":
            self._apply_inner(self.txns.apply_ops(entry, o))
            self.stats.count("c:applyOps")
            return
        if name in _TXN_COMMANDS:
            ops = self.txns.finish(entry, commit=name == "commitTransaction")
            self._apply_inner(ops)
            self.stats.count(f"c:{name}")
            return
        if ns.split(".", 1)[0] != self.map.source_db:
            self.stats.skipped += 1
            return
        self.ddl.command(name, o, ns)

    def _apply_inner(self, ops: list) -> None:
        for inner in ops:
            if inner.get("op") == "c":
                self.flush()
                self._command(inner)
            else:
                self._crud(inner)
        self.flush()


def _encode(doc) -> bytes:
    import bson

    return bson.encode(doc)
