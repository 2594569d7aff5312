"""Replay oplog entries onto a database: the client-side applier (and the server's applyOps).

mongod has ``applyOps``; SecantusDB does not, so the default is a client-side applier that
turns each entry into ordinary writes: ``i`` -> replace-by-_id with upsert (idempotent), ``d``
-> delete by ``o``, ``u`` -> see :mod:`.oplog_updates`, ``c`` -> the DDL command, ``n`` ->
nothing. CRUD entries are batched per collection into ordered ``bulk_write`` calls; commands
flush the batch first, so order is kept. Transactions: SecantusDB logs them as separate
entries sharing ``ts``/``lsid``/``txnNumber`` (applied as they come); mongod logs one
``applyOps`` command (or a ``partialTxn`` chain, or a ``prepare`` + ``commitTransaction``),
whose inner operations are buffered until the transaction commits.

A restore that renames the database or selects collections applies the same mapping here
(:class:`NamespaceMap`). An entry of a form we do not know raises :class:`UnknownOplogEntry`.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any, Iterable

from bson.raw_bson import RawBSONDocument
from bson.son import SON
from pymongo import DeleteOne, ReplaceOne, UpdateOne
from pymongo import errors as pe

from backup_dr.core.mongo import bsonraw
from backup_dr.core.mongo.metadata import INDEX_INTERNAL_FIELDS
from backup_dr.core.mongo.oplog_updates import UnknownOplogEntry, plan_update

log = logging.getLogger(__name__)

_BATCH = 500
_IGNORED_CODES = {26, 27, 48}  # NamespaceNotFound, IndexNotFound, NamespaceExists: already in that state
_CREATE_SKIP = {"create", "idIndex", "viewPipeline"}
_TXN_COMMANDS = {"commitTransaction", "abortTransaction"}


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
        if db != self.source_db or not self.selected(coll):
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
        return {"entries": self.entries, "applied": dict(self.applied), "skipped": self.skipped,
                "doc_delta": dict(self.doc_delta), "touched": sorted(self.touched),
                "open_transactions": self.open_transactions}


def server_has_apply_ops(client) -> bool:
    """Probe: an empty ``applyOps`` succeeds on mongod and is CommandNotFound on SecantusDB."""
    try:
        client.admin.command("applyOps", [])
        return True
    except pe.OperationFailure as e:
        if e.code == 59:
            return False
        return e.code not in (13,)  # exists but we may not run it: fall back to the client side


class OplogApplier:
    """Apply oplog entries (raw documents, oldest first) to ``client[target_db]``."""

    def __init__(self, client, nsmap: NamespaceMap, *, use_server_apply_ops: bool | None = False,
                 bypass_validation: bool = True):
        self.client = client
        self.map = nsmap
        self.db = client[nsmap.target_db]
        self.stats = ApplyStats()
        self.bypass = bypass_validation
        if use_server_apply_ops is None:
            use_server_apply_ops = server_has_apply_ops(client)
        self.server_apply_ops = use_server_apply_ops
        self._batch: list = []
        self._batch_coll: str | None = None
        self._txns: dict[tuple, list] = {}

    # ---- entry points

    def apply_all(self, entries: Iterable) -> ApplyStats:
        for entry in entries:
            self.apply(entry)
        self.flush()
        self.stats.open_transactions = len(self._txns)
        if self._txns:
            log.warning("%d transaction(s) were not committed inside the oplog window; their writes are not applied", len(self._txns))
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
        if coll.startswith("system.") and coll != "system.js":
            raise UnknownOplogEntry(f"oplog write to {ns}: writes to system collections are not replayed",
                                    hint="restore this database with the stock mongorestore --oplogReplay on mongod")
        op = entry["op"]
        if self.server_apply_ops:
            req = self._server_entry(entry, coll)
        elif op == "i":
            o = entry["o"]
            req = ReplaceOne(bsonraw.build([bsonraw.get(o, "_id")]), o, upsert=True)
        elif op == "d":
            req = DeleteOne(entry["o"])
        else:
            plan = plan_update(entry["o"])
            where = entry.get("o2")
            if where is None:
                raise UnknownOplogEntry(f"update entry without o2 (ts {entry.get('ts')})")
            if plan.replacement is not None:
                req = [ReplaceOne(where, plan.replacement, upsert=True)]
            else:
                req = [UpdateOne(where, u) for u in plan.updates]
        self.stats.count(op)
        if coll != self._batch_coll:
            self.flush()
            self._batch_coll = coll
        self._batch.extend(req if isinstance(req, list) else [req])
        if len(self._batch) >= _BATCH:
            self.flush()

    def _server_entry(self, entry, coll: str) -> SON:
        out = SON([("op", entry["op"]), ("ns", f"{self.map.target_db}.{coll}"), ("o", entry["o"])])
        if entry.get("o2") is not None:
            out["o2"] = entry["o2"]
        return out  # no "ui": the target collection has another UUID

    def flush(self) -> None:
        if not self._batch:
            return
        coll, batch = self._batch_coll, self._batch
        self._batch = []
        self.stats.touched.add(coll)
        if self.server_apply_ops:
            self.client.admin.command("applyOps", batch)
            return
        res = self.db[coll].bulk_write(batch, ordered=True, bypass_document_validation=self.bypass)
        delta = res.upserted_count - res.deleted_count
        self.stats.doc_delta[coll] = self.stats.doc_delta.get(coll, 0) + delta

    # ---- commands

    def _command(self, entry) -> None:
        ns = entry.get("ns", "")
        o = entry["o"]
        name = next(iter(o.keys()), None)
        if name == "applyOps":
            return self._apply_ops(entry, o)
        if name in _TXN_COMMANDS:
            return self._finish_prepared(entry, commit=name == "commitTransaction")
        db = ns.split(".", 1)[0]
        if db != self.map.source_db:
            self.stats.skipped += 1
            return
        handler = getattr(self, f"_cmd_{name}", None)
        if handler is None:
            raise UnknownOplogEntry(
                f"oplog command {name!r} on {ns} is not supported by the replayer",
                detail=repr(dict(o))[:500],
                hint="restore to a point before this command, or use mongorestore --oplogReplay against mongod",
            )
        handler(o)

    def _selected(self, coll: str) -> bool:
        if not self.map.selected(coll):
            self.stats.skipped += 1
            return False
        self.stats.touched.add(coll)
        return True

    def _run(self, cmd: SON) -> None:
        try:
            self.db.command(cmd)
        except pe.OperationFailure as e:
            if e.code not in _IGNORED_CODES:
                raise
            log.debug("replay: %s already in effect (%s)", next(iter(cmd)), e.code)

    def _cmd_create(self, o) -> None:
        coll = o["create"]
        if not self._selected(coll):
            return
        cmd = SON([("create", coll)])
        for k, v in o.items():
            if k not in _CREATE_SKIP:
                cmd[k] = v
        if "viewPipeline" in o:  # SecantusDB's name for a view's pipeline
            cmd["pipeline"] = o["viewPipeline"]
        self._run(cmd)
        self.stats.count("c:create")

    def _cmd_drop(self, o) -> None:
        coll = o["drop"]
        if self._selected(coll):
            self._run(SON([("drop", coll)]))
            self.stats.dropped.add(coll)
            self.stats.count("c:drop")

    def _cmd_dropDatabase(self, o) -> None:
        for coll in self.db.list_collection_names():
            if self._selected(coll):
                self._run(SON([("drop", coll)]))
                self.stats.dropped.add(coll)
        self.stats.count("c:dropDatabase")

    def _create_indexes(self, coll: str, specs: list) -> None:
        clean = [SON((k, v) for k, v in spec.items() if k not in INDEX_INTERNAL_FIELDS) for spec in specs]
        self._run(SON([("createIndexes", coll), ("indexes", clean)]))
        self.stats.created_indexes.setdefault(coll, set()).update(s["name"] for s in clean)
        self.stats.count("c:createIndexes")

    def _cmd_createIndexes(self, o) -> None:
        coll = o["createIndexes"]
        if not self._selected(coll):
            return
        if "indexes" in o:  # SecantusDB: {createIndexes, indexes: [...]}
            self._create_indexes(coll, list(o["indexes"]))
        else:  # mongod: {createIndexes: coll, v, key, name, ...options}
            self._create_indexes(coll, [SON((k, v) for k, v in o.items() if k != "createIndexes")])

    def _cmd_commitIndexBuild(self, o) -> None:  # mongod 4.4+ two-phase index builds
        coll = o["commitIndexBuild"]
        if self._selected(coll):
            self._create_indexes(coll, list(o["indexes"]))

    def _cmd_startIndexBuild(self, o) -> None:
        self.stats.skipped += 1  # the build takes effect at commitIndexBuild

    def _cmd_abortIndexBuild(self, o) -> None:
        self.stats.skipped += 1

    def _cmd_dropIndexes(self, o) -> None:
        coll = o["dropIndexes"]
        if not self._selected(coll):
            return
        index = o.get("index")
        self._run(SON([("dropIndexes", coll), ("index", index)]))
        if isinstance(index, str):
            self.stats.dropped_indexes.setdefault(coll, set()).add(index)
        self.stats.count("c:dropIndexes")

    _cmd_deleteIndexes = _cmd_dropIndexes

    def _cmd_renameCollection(self, o) -> None:
        src_db, _, src = str(o["renameCollection"]).partition(".")
        dst_db, _, dst = str(o["to"]).partition(".")
        if src_db != self.map.source_db or dst_db != self.map.source_db:
            raise UnknownOplogEntry(
                f"renameCollection across databases ({o['renameCollection']} -> {o['to']}) cannot be replayed into one database",
                hint="restore to a point before the rename",
            )
        if not self.map.selected(src):
            self.stats.skipped += 1
            return
        self.map.renamed(src, dst)
        target = self.map.target_db
        cmd = SON([("renameCollection", f"{target}.{src}"), ("to", f"{target}.{dst}"),
                   ("dropTarget", bool(o.get("dropTarget", False)))])
        try:
            self.client.admin.command(cmd)
        except pe.OperationFailure as e:
            if e.code not in _IGNORED_CODES:
                raise
        self.stats.touched.update({src, dst})
        self.stats.renamed[src] = dst
        self.stats.count("c:renameCollection")

    def _cmd_collMod(self, o) -> None:
        coll = o["collMod"]
        if not self._selected(coll):
            return
        self._run(SON((k, v) for k, v in o.items()))
        self.stats.count("c:collMod")

    def _cmd_convertToCapped(self, o) -> None:
        coll = o["convertToCapped"]
        if self._selected(coll):
            self._run(SON((k, v) for k, v in o.items()))
            self.stats.count("c:convertToCapped")

    # ---- transactions (mongod)

    @staticmethod
    def _txn_key(entry) -> tuple | None:
        lsid = entry.get("lsid")
        if lsid is None:
            return None
        return bytes(bsonraw.build([bsonraw.get(lsid, "id")]).raw), int(entry.get("txnNumber", 0))

    def _apply_ops(self, entry, o) -> None:
        inner = list(o["applyOps"])
        key = self._txn_key(entry)
        if key is not None and (o.get("partialTxn") or o.get("prepare") or key in self._txns):
            self._txns.setdefault(key, []).extend(inner)
            if o.get("partialTxn") or o.get("prepare"):
                return
            inner = self._txns.pop(key)
        self._apply_inner(inner)
        self.stats.count("c:applyOps")

    def _finish_prepared(self, entry, *, commit: bool) -> None:
        key = self._txn_key(entry)
        ops = self._txns.pop(key, None) if key is not None else None
        if ops is None:
            self.stats.skipped += 1
            return
        if commit:
            self._apply_inner(ops)
            self.stats.count("c:commitTransaction")

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
