"""Restore an archive (ours or stock mongodump's) into a database: the engine, no safety net.

Order, as mongorestore: refuse or drop existing targets, create collections with their
options (capped, validator, collation), insert documents as raw BSON in unordered batches,
create views, build indexes, then replay the archive's oplog window. Documents are never
decoded: the bytes that were dumped are the bytes inserted. Inserts and replay bypass
document validation (the data was valid when written; a validator added later must not
reject its own history), as ``mongorestore --bypassDocumentValidation`` does.

:func:`backup_dr.core.mongo.safe_restore.safe_restore` wraps this with the safety backup,
validation and rollback; call that for anything that matters.
"""

from __future__ import annotations

import logging
import tempfile
import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO, Callable, Iterator

from bson.raw_bson import RawBSONDocument
from pymongo import errors as pe

from backup_dr.core.errors import NotFoundError, RestoreError, RestoreRefused, TargetNotEmpty
from backup_dr.core.mongo.applier import ApplyStats, NamespaceMap, OplogApplier
from backup_dr.core.mongo.archive import ArchiveReader, ArchiveSummary, PreludeEntry
from backup_dr.core.mongo.bsonraw import iter_documents
from backup_dr.core.mongo.codecs import decompressed_reader
from backup_dr.core.mongo.dumpdir import DumpDirectoryReader, is_dump_directory
from backup_dr.core.mongo.metadata import CollectionMeta
from backup_dr.core.progress import Progress

log = logging.getLogger(__name__)

_BATCH_BYTES = 8 * 1024 * 1024
_BATCH_DOCS = 5000
_SPOOL_MEMORY = 32 * 1024 * 1024


@contextmanager
def open_archive(path: str | Path, *, codec: str | None = None) -> Iterator[ArchiveReader | DumpDirectoryReader]:
    """A reader of a mongodump archive file, or of a mongodump directory (``--out``) when
    ``path`` is a directory (each file's codec is then read from its bytes)."""
    if is_dump_directory(path):
        yield DumpDirectoryReader(path)
        return
    with open(path, "rb") as raw, decompressed_reader(raw, expect=codec, where=str(path)) as stream:
        yield ArchiveReader(stream, where=str(path))


def read_prelude(path: str | Path, *, codec: str | None = None) -> list[PreludeEntry]:
    """The archive's (or dump directory's) list of namespaces with their metadata, without reading the body."""
    with open_archive(path, codec=codec) as reader:
        return list(reader.prelude)


def verify_archive(path: str | Path, *, codec: str | None = None) -> ArchiveSummary:
    """Read the whole archive (or dump directory), checking its structure and every CRC, without
    touching any server."""
    with open_archive(path, codec=codec) as reader:
        return reader.summarize()


@dataclass
class RestorePlan:
    source_db: str
    target_db: str
    metas: list[CollectionMeta]  # selected, in prelude order

    @property
    def names(self) -> list[str]:
        return [m.name for m in self.metas]


@dataclass
class RestoreState:
    """Filled in as the restore proceeds, so a failure knows what it has changed."""

    plan: RestorePlan | None = None
    dropped: list[str] = field(default_factory=list)
    created: list[str] = field(default_factory=list)
    inserted: dict[str, int] = field(default_factory=dict)
    inserted_bytes: int = 0
    applier: OplogApplier | None = None

    @property
    def touched(self) -> set[str]:
        out = set(self.dropped) | set(self.created) | set(self.inserted)
        if self.applier is not None:
            out |= self.applier.stats.touched
        return out


@dataclass
class RestoreResult:
    source_db: str
    target_db: str
    collections: list[str]
    inserted: dict[str, int]
    archive_counts: dict[str, int]
    expected_counts: dict[str, int | None]  # after replay; None where a drop/rename makes it unknowable
    expected_indexes: dict[str, list[str]]
    views: list[str]
    inserted_bytes: int
    seconds: float
    oplog: dict[str, Any] = field(default_factory=dict)
    safety_backup: str | None = None
    safety_dir: str | None = None
    validation: dict[str, Any] = field(default_factory=dict)

    @property
    def docs(self) -> int:
        return sum(self.inserted.values())

    @property
    def docs_per_s(self) -> float:
        return self.docs / self.seconds if self.seconds else 0.0


def plan_restore(prelude: list[PreludeEntry], *, source_db: str | None, target_db: str | None,
                 collections: list[str] | tuple[str, ...] | None, where: str) -> RestorePlan:
    dbs = sorted({e.db for e in prelude if not e.is_oplog})
    if source_db is None:
        if len(dbs) != 1:
            raise RestoreRefused(
                f"{where} holds {len(dbs)} databases ({', '.join(dbs) or 'none'}); say which one to restore",
                hint="pass source_db (CLI: --source-db)",
            )
        source_db = dbs[0]
    if source_db not in dbs:
        raise NotFoundError(f"{where} has no database {source_db!r}", detail=f"it holds: {', '.join(dbs) or 'nothing'}",
                            hint="check the backup id and the database name")
    entries = [e for e in prelude if e.db == source_db]
    if collections:
        have = {e.collection for e in entries}
        missing = sorted(set(collections) - have)
        if missing:
            raise NotFoundError(f"{where} has no collection(s) {', '.join(missing)} in database {source_db!r}",
                                detail=f"it holds: {', '.join(sorted(have))}", hint="fix the collection list")
        entries = [e for e in entries if e.collection in set(collections)]
    metas = [CollectionMeta.from_json(e.metadata, name=e.collection, type_hint=e.type) for e in entries]
    return RestorePlan(source_db, target_db or source_db, metas)


def check_target(client, plan: RestorePlan, *, drop: bool) -> list[str]:
    """Target collections that already exist. Without ``drop`` any of them refuses the restore."""
    db = client[plan.target_db]
    existing = set(db.list_collection_names())
    clash = [n for n in plan.names if n in existing]
    if clash and not drop:
        described = []
        for n in clash:
            try:
                count = db[n].estimated_document_count()
                described.append(f"{n} ({count} documents)" if count else f"{n} (empty)")
            except pe.OperationFailure:
                described.append(f"{n} (view)")
        raise TargetNotEmpty(
            f"target database {plan.target_db!r} already has the collection(s) this restore would write: {', '.join(described)}",
            hint="restore into another database (target_db), or pass drop=True to replace them (a safety backup is taken first)",
        )
    return clash


def restore_archive(client, path: str | Path, *, codec: str | None = None, source_db: str | None = None,
                    target_db: str | None = None, collections: list[str] | tuple[str, ...] | None = None,
                    drop: bool = False, replay_oplog: bool = True, state: RestoreState | None = None,
                    progress_every: float = 5.0,
                    on_loaded: Callable[[RestoreState], None] | None = None) -> RestoreResult:
    """Restore one database of the archive at ``path`` into ``client``. See the module doc.

    ``on_loaded`` runs after the documents are in and the indexes built, before the oplog
    replay (a drill checks the archive's own documents there).
    """
    started = time.monotonic()
    state = state or RestoreState()
    with open_archive(path, codec=codec) as reader:
        plan = plan_restore(reader.prelude, source_db=source_db, target_db=target_db, collections=collections, where=str(path))
        state.plan = plan
        clash = check_target(client, plan, drop=drop)
        db = client[plan.target_db]
        for name in clash:
            db.drop_collection(name)
            state.dropped.append(name)
        for meta in plan.metas:
            if not meta.is_view:
                db.command(meta.create_command())
                state.created.append(meta.name)
        selected = {m.name for m in plan.metas if not m.is_view}
        with tempfile.SpooledTemporaryFile(max_size=_SPOOL_MEMORY) as spool:
            oplog_entries = _load(reader, db, plan.source_db, selected, state, spool, progress_every)
            for meta in plan.metas:
                if meta.is_view:
                    db.command(meta.create_command())
                    state.created.append(meta.name)
            deferred = _build_indexes(db, plan.metas, defer_duplicates=replay_oplog and oplog_entries > 0)
            if on_loaded is not None:
                on_loaded(state)
            stats = ApplyStats()
            if replay_oplog and oplog_entries:
                spool.seek(0)
                state.applier = OplogApplier(client, NamespaceMap(plan.source_db, plan.target_db, collections))
                stats = state.applier.apply_all(iter_documents(spool, "the archive's oplog"))
                log.info("replayed %d oplog entries into %s: %s", stats.entries, plan.target_db, stats.applied)
            deferred = [m for m in deferred if m.name not in stats.dropped and m.name not in stats.renamed]
            if deferred:
                _build_indexes(db, deferred, defer_duplicates=False)
    counts = {m.name: state.inserted.get(m.name, 0) for m in plan.metas if not m.is_view}
    expected: dict[str, int | None] = {}
    for name, n in counts.items():
        gone = name in stats.dropped or name in stats.renamed
        expected[name] = None if gone else n + stats.doc_delta.get(name, 0)
    indexes = {}
    for m in plan.metas:
        if m.is_view or m.name in stats.dropped or m.name in stats.renamed:
            continue
        names = set(m.index_names) | stats.created_indexes.get(m.name, set())
        indexes[m.name] = sorted(names - stats.dropped_indexes.get(m.name, set()))
    seconds = time.monotonic() - started
    result = RestoreResult(
        source_db=plan.source_db, target_db=plan.target_db, collections=plan.names, inserted=dict(state.inserted),
        archive_counts=counts, expected_counts=expected, expected_indexes=indexes,
        views=[m.name for m in plan.metas if m.is_view], inserted_bytes=state.inserted_bytes, seconds=seconds,
        oplog=stats.as_dict(),
    )
    log.info("restored %s -> %s: %d documents (%.1f MB) in %.1fs, %.0f docs/s", plan.source_db, plan.target_db,
             result.docs, result.inserted_bytes / 1e6, seconds, result.docs_per_s)
    return result


def _load(reader: ArchiveReader, db, source_db: str, selected: set[str], state: RestoreState, spool: BinaryIO,
          progress_every: float) -> int:
    """Insert every selected document; spool the oplog slot. Returns the number of oplog entries."""
    batches: dict[str, list[RawBSONDocument]] = {}
    sizes: dict[str, int] = {}
    progress = Progress(f"restore into {db.name}", unit="docs", every=progress_every, logger=log)
    oplog_entries = 0

    def flush(coll: str) -> None:
        docs = batches.pop(coll, None)
        n_bytes = sizes.pop(coll, 0)
        if not docs:
            return
        try:
            db[coll].insert_many(docs, ordered=False, bypass_document_validation=True)
        except pe.BulkWriteError as e:
            errs = e.details.get("writeErrors") or []
            first = errs[0].get("errmsg") if errs else str(e)
            raise RestoreError(f"inserting into {db.name}.{coll} failed for {len(errs)} document(s)",
                               detail=f"first error: {first}") from e
        state.inserted[coll] = state.inserted.get(coll, 0) + len(docs)
        state.inserted_bytes += n_bytes
        progress.add(len(docs), n_bytes)

    for dbname, coll, doc in reader.documents():
        if doc is None:
            if dbname == source_db and coll in selected:
                flush(coll)
                state.inserted.setdefault(coll, 0)
            continue
        if dbname == source_db and coll in selected:
            batch = batches.setdefault(coll, [])
            batch.append(RawBSONDocument(doc))
            sizes[coll] = sizes.get(coll, 0) + len(doc)
            if sizes[coll] >= _BATCH_BYTES or len(batch) >= _BATCH_DOCS:
                flush(coll)
        elif dbname == "" and coll == "oplog":
            spool.write(doc)
            oplog_entries += 1
    for coll in list(batches):
        flush(coll)
    progress.done()
    return oplog_entries


def _build_indexes(db, metas: list[CollectionMeta], *, defer_duplicates: bool) -> list[CollectionMeta]:
    """createIndexes per collection. With ``defer_duplicates`` a duplicate-key failure (fuzzy data
    that the oplog replay will make consistent) is retried after the replay."""
    deferred = []
    for meta in metas:
        specs = meta.index_specs()
        if meta.is_view or not specs:
            continue
        try:
            db.command("createIndexes", meta.name, indexes=specs)
        except pe.OperationFailure as e:
            if defer_duplicates and e.code == 11000:
                log.info("index build on %s.%s deferred until after the oplog replay: %s", db.name, meta.name, e)
                deferred.append(meta)
                continue
            raise RestoreError(f"building the indexes of {db.name}.{meta.name} failed",
                               detail=f"code {e.code}: {(e.details or {}).get('errmsg', e)}") from e
    return deferred
