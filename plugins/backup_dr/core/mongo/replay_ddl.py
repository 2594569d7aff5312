"""Replaying DDL oplog entries (``c`` commands, and view definitions) onto the target database.

Commands on ``<db>.$cmd`` become the same command on the target (renamed database, selected
collections): create (options kept; SecantusDB's ``viewPipeline`` is a view's ``pipeline``),
drop, dropDatabase, createIndexes (both forms), two-phase index builds (the index exists at
``commitIndexBuild``), dropIndexes, renameCollection within the database (mongod logs a rename
ACROSS databases as a copy into a temporary collection of the target database, inserts, a
rename within it and a drop of the source: ``rename_collection.cpp``, which replays), collMod,
convertToCapped, emptycapped. A command already in effect (NamespaceNotFound / IndexNotFound /
NamespaceExists) is fine: the data being replayed over is fuzzy.

Views: mongod keeps view definitions as documents of ``<db>.system.views``
(``{_id: "<db>.<view>", viewOn, pipeline, collation?}``) and logs a view's creation, change and
drop as an insert, update and delete there (``jstests/replsets/view_catalog_oplog_entries.js``),
not as commands. Those writes become ``create`` (after dropping an existing view of that name,
so a re-applied or changed definition is exact, collation included) and ``drop`` of the view:
the target's own view catalog is never written directly.
"""

from __future__ import annotations

import logging

from bson.raw_bson import RawBSONDocument
from bson.son import SON
from pymongo import errors as pe

from backup_dr.core.mongo.metadata import INDEX_INTERNAL_FIELDS
from backup_dr.core.mongo.mongod_diff import apply_diff
from backup_dr.core.mongo.oplog_updates import UnknownOplogEntry, plan_update

log = logging.getLogger(__name__)

_IGNORED_CODES = {26, 27, 48}  # NamespaceNotFound, IndexNotFound, NamespaceExists: already in that state
_CREATE_SKIP = {"create", "idIndex", "viewPipeline"}
VIEWS = "system.views"
_VIEW_FIELDS = ("viewOn", "pipeline", "collation")


class DdlReplayer:
    """The command and view handlers of :class:`backup_dr.core.mongo.applier.OplogApplier`."""

    def __init__(self, applier):
        self.a = applier

    @property
    def db(self):
        return self.a.db

    def _selected(self, coll: str) -> bool:
        if not self.a.map.selected(coll):
            self.a.stats.skipped += 1
            return False
        self.a.stats.touched.add(coll)
        return True

    def run(self, cmd: SON) -> None:
        try:
            self.db.command(cmd)
        except pe.OperationFailure as e:
            if e.code not in _IGNORED_CODES:
                raise
            log.debug("replay: %s already in effect (%s)", next(iter(cmd)), e.code)

    def command(self, name: str, o, ns: str) -> None:
        handler = getattr(self, f"_cmd_{name}", None)
        if handler is None:
            raise UnknownOplogEntry(
                f"oplog command {name!r} on {ns} is not supported by the replayer",
                detail=repr(dict(o))[:500],
                hint="restore to a point before this command, or use mongorestore --oplogReplay against mongod",
            )
        handler(o)

    # ---- collections

    def _cmd_create(self, o) -> None:
        coll = o["create"]
        if coll == VIEWS:  # mongod creates its view catalog with the first view; the target makes its own
            self.a.stats.skipped += 1
            return
        if not self._selected(coll):
            return
        cmd = SON([("create", coll)])
        for k, v in o.items():
            if k not in _CREATE_SKIP:
                cmd[k] = v
        if "viewPipeline" in o:  # SecantusDB's name for a view's pipeline
            cmd["pipeline"] = o["viewPipeline"]
        self.run(cmd)
        self.a.stats.count("c:create")

    def _cmd_drop(self, o) -> None:
        coll = o["drop"]
        if coll == VIEWS:  # dropping the view catalog drops every view
            for info in self.db.list_collections(filter={"type": "view"}):
                self._drop_view(info["name"])
            return
        if self._selected(coll):
            self.run(SON([("drop", coll)]))
            self.a.stats.dropped.add(coll)
            self.a.stats.count("c:drop")

    def _cmd_dropDatabase(self, o) -> None:
        for coll in self.db.list_collection_names():
            if self._selected(coll):
                self.run(SON([("drop", coll)]))
                self.a.stats.dropped.add(coll)
        self.a.stats.count("c:dropDatabase")

    def _cmd_renameCollection(self, o) -> None:
        source_db = self.a.map.source_db
        src_db, _, src = str(o["renameCollection"]).partition(".")
        dst_db, _, dst = str(o["to"]).partition(".")
        if src_db != source_db or dst_db != source_db:
            raise UnknownOplogEntry(
                f"renameCollection across databases ({o['renameCollection']} -> {o['to']}) cannot be replayed into one database",
                hint="restore to a point before the rename (mongod 4.2+ logs a cross-database rename as a copy "
                     "into the target database plus a drop, which replays; this single entry does not)",
            )
        if not self.a.map.selected(src):
            self.a.stats.skipped += 1
            return
        self.a.map.renamed(src, dst)
        target = self.a.map.target_db
        cmd = SON([("renameCollection", f"{target}.{src}"), ("to", f"{target}.{dst}"),
                   ("dropTarget", bool(o.get("dropTarget", False)))])
        try:
            self.a.client.admin.command(cmd)
        except pe.OperationFailure as e:
            if e.code == 48 and not cmd["dropTarget"]:
                # the target exists: this rename already happened in the data replayed over (a dump that
                # read the collection under its new name); the source the replay recreated is redundant
                log.info("replay: %s already renamed to %s; dropping the re-created source", src, dst)
                self.run(SON([("drop", src)]))
            elif e.code not in _IGNORED_CODES:
                raise
        self.a.stats.touched.update({src, dst})
        self.a.stats.renamed[src] = dst
        self.a.stats.count("c:renameCollection")

    def _cmd_collMod(self, o) -> None:
        coll = o["collMod"]
        if self._selected(coll):
            self.run(SON((k, v) for k, v in o.items()))
            self.a.stats.count("c:collMod")

    def _cmd_emptycapped(self, o) -> None:
        coll = o["emptycapped"]
        if self._selected(coll):
            self.db[coll].delete_many({})
            self.a.stats.count("c:emptycapped")

    def _cmd_convertToCapped(self, o) -> None:
        coll = o["convertToCapped"]
        if self._selected(coll):
            self.run(SON((k, v) for k, v in o.items()))
            self.a.stats.count("c:convertToCapped")

    # ---- indexes

    def _create_indexes(self, coll: str, specs: list) -> None:
        clean = [SON((k, v) for k, v in spec.items() if k not in INDEX_INTERNAL_FIELDS) for spec in specs]
        self.run(SON([("createIndexes", coll), ("indexes", clean)]))
        self.a.stats.created_indexes.setdefault(coll, set()).update(s["name"] for s in clean)
        self.a.stats.count("c:createIndexes")

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
        self.a.stats.skipped += 1  # the build takes effect at commitIndexBuild

    def _cmd_abortIndexBuild(self, o) -> None:
        self.a.stats.skipped += 1

    def _cmd_dropIndexes(self, o) -> None:
        coll = o["dropIndexes"]
        if not self._selected(coll):
            return
        index = o.get("index")
        self.run(SON([("dropIndexes", coll), ("index", index)]))
        if isinstance(index, str):
            self.a.stats.dropped_indexes.setdefault(coll, set()).add(index)
        self.a.stats.count("c:dropIndexes")

    _cmd_deleteIndexes = _cmd_dropIndexes

    # ---- views (writes to <db>.system.views)

    def _view_name(self, view_id) -> str | None:
        db, _, name = str(view_id).partition(".")
        return name if db == self.a.map.source_db and name else None

    def view_write(self, entry) -> None:
        op, o = entry["op"], entry["o"]
        if op == "d":
            name = self._view_name(o.get("_id"))
            if name and self._selected(name):
                self._drop_view(name)
                self.a.stats.count("view:drop")
            return
        view_id = o.get("_id") if op == "i" else (entry.get("o2") or {}).get("_id")
        name = self._view_name(view_id)
        if name is None or not self._selected(name):
            return
        if op == "i":
            definition = o
        else:
            plan = plan_update(o)
            if plan.replacement is not None:
                definition = plan.replacement
            elif plan.diff is not None:
                current = self._current_view(name, view_id)
                if current is None:
                    self.a.stats.missing += 1
                    return
                definition = apply_diff(current, plan.diff)
            else:
                raise UnknownOplogEntry(f"update of view {view_id!r} in {VIEWS} in a form other than a replacement or "
                                        "a $v:2 diff", detail=repr(dict(o))[:500])
        self._define_view(name, definition)
        self.a.stats.count(f"view:{'create' if op == 'i' else 'update'}")

    def _current_view(self, name: str, view_id) -> RawBSONDocument | None:
        for info in self.db.list_collections(filter={"name": name, "type": "view"}):
            opts = info.get("options") or {}
            return RawBSONDocument(_encode(SON([("_id", str(view_id))] + [(k, opts[k]) for k in _VIEW_FIELDS if k in opts])))
        return None

    def _define_view(self, name: str, definition) -> None:
        view_on = definition.get("viewOn")
        if not isinstance(view_on, str):
            raise UnknownOplogEntry(f"view definition of {name!r} without viewOn", detail=repr(dict(definition))[:500])
        self._drop_view(name)
        cmd = SON([("create", name), ("viewOn", view_on), ("pipeline", list(definition.get("pipeline") or []))])
        if definition.get("collation") is not None:
            cmd["collation"] = definition["collation"]
        self.run(cmd)

    def _drop_view(self, name: str) -> None:
        self.run(SON([("drop", name)]))


def _encode(doc) -> bytes:
    import bson

    return bson.encode(doc)
