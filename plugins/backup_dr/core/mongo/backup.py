"""The job functions the Airflow operators and the CLI call for MongoDB.

* :func:`backup_mongodb` - one full (or ``metadata_only`` "schema") backup into the local
  staging store through an ArtifactWriter: archive (or directory) files first, manifest last.
* :func:`restore_mongodb` - fetch the backup's file verified against its manifest, then the
  safe restore (safety backup, restore with drop, validate, roll back on any failure).
* :func:`verify_restore` - a drill: restore into a SCRATCH database, compare counts, indexes
  and a sample of documents byte for byte with the archive, time it, drop the scratch copy.

Each takes plain objects (a pymongo client, policy objects, stores), never Airflow's.
"""

from __future__ import annotations

import logging
import random
import time
import uuid
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from bson.raw_bson import RawBSONDocument

from backup_dr.core.artifacts.manifest import Manifest, iso
from backup_dr.core.artifacts.reader import fetch_verified
from backup_dr.core.artifacts.writer import ArtifactWriter
from backup_dr.core.errors import IntegrityError, VerificationError
from backup_dr.core.mongo import bsonraw
from backup_dr.core.mongo.codecs import SUFFIX, check_codec, decompressed_reader
from backup_dr.core.mongo.dump import DumpResult, dump_database, read_preference
from backup_dr.core.mongo.bsonraw import iter_documents
from backup_dr.core.mongo.interrupted import Journaling
from backup_dr.core.mongo.end_counts import DumpedDocuments, archive_documents, expected_counts, overlay, resolve
from backup_dr.core.mongo.member import pinned_member
from backup_dr.core.mongo.metadata import describe
from backup_dr.core.mongo.mongo_errors import translate
from backup_dr.core.mongo.oplog import ts_dict
from backup_dr.core.mongo.restore import RestoreResult, open_archive, restore_archive
from backup_dr.core.mongo.safe_restore import safe_restore, validate_restore
from backup_dr.core.mongo.sinks import ArchiveSink, DirectorySink, directory_names, server_version, tool_version
from backup_dr.core.policy_model import Job, MongoSource
from backup_dr.core.stores.base import Store
from backup_dr.core.stores.local import LocalStore

log = logging.getLogger(__name__)

ARCHIVE_FORMAT = "mongodump-archive"
DIRECTORY_FORMAT = "mongodump-directory"


def archive_name(database: str, codec: str) -> str:
    return f"{database}.archive{SUFFIX[codec]}"


def backup_mongodb(client, source: MongoSource, job: Job, writer: ArtifactWriter, *,
                   secrets: list[str] | None = None, progress_every: float = 5.0) -> Manifest:
    """Back up ``source.database``; idempotent per backup id (a retry after success returns the
    existing manifest). ``job.collections`` overrides ``source.collections``; ``job.metadata_only``
    writes options, validators and indexes only."""
    done = writer.existing()
    if done is not None:
        log.info("backup %s already complete; nothing to do", done.backup_id)
        return done
    codec = check_codec(source.compression)
    collections = list(job.collections or source.collections) or None
    writer.begin()
    try:
        where = f"dumping MongoDB database {source.database!r}"
        with translate(where, secrets=secrets), pinned_member(client, read_preference(source.read_preference),
                                                              what=f"the backup of {source.database!r}") as member:
            result, name = _dump_into(member.client, source, job, writer, codec, collections, secrets, progress_every)
        if result.window is not None:
            result.counts_at_end = resolve(result.window, result.counts,
                                           _staged_documents(writer, source.format, codec, source.database, name))
        return writer.commit(consistent_point=consistent_point(result), counts=result.counts,
                             details=backup_details(result, codec, source.format))
    except BaseException:
        writer.abort()
        raise


def _dump_into(client, source: MongoSource, job: Job, writer: ArtifactWriter, codec: str, collections, secrets,
               progress_every: float) -> tuple[DumpResult, str | None]:
    if source.format == "directory":
        sink = DirectorySink(lambda name: writer.open_file(name, codec=codec, format=DIRECTORY_FORMAT), codec)
        return dump_database(client, source.database, sink, collections=collections, read_pref=source.read_preference,
                             metadata_only=job.metadata_only, secrets=secrets, progress_every=progress_every), None
    name = archive_name(source.database, codec)
    version = server_version(client)  # the first round trip: a server that is down fails here
    with writer.open_file(name, codec=codec, format=ARCHIVE_FORMAT) as out:
        sink = ArchiveSink(out, codec, server_version=version, tool_version=tool_version())
        result = dump_database(client, source.database, sink, collections=collections,
                               read_pref=source.read_preference, metadata_only=job.metadata_only,
                               secrets=secrets, progress_every=progress_every)
    return result, name


def _staged_documents(writer: ArtifactWriter, fmt: str, codec: str, database: str, archive: str | None) -> DumpedDocuments:
    """The documents just dumped, read back from the staged files (decrypted if the class is
    encrypted): what :func:`end_counts.resolve` looks touched ids up in."""
    from contextlib import contextmanager

    @contextmanager
    def plain(name: str):
        path = writer.store.path(writer.bid.key(name))
        entry = next(f for f in writer.files if f.name == name)
        if entry.encryption:
            from backup_dr.core.crypto.files import open_decrypted

            raw = open_decrypted(path, writer.encryption, backup_id=str(writer.bid), name=name)
        else:
            raw = open(path, "rb")
        with raw, decompressed_reader(raw, expect=codec, where=f"{writer.bid}/{name}") as stream:
            yield stream

    if archive is not None:
        return archive_documents(lambda: plain(archive), database)

    def per_collection(names: set[str]):
        for coll in sorted(names):
            with plain(directory_names(database, coll, codec)[0]) as stream:
                for doc in iter_documents(stream, f"{writer.bid}/{coll}"):
                    yield coll, doc.raw

    return per_collection


def consistent_point(result: DumpResult) -> dict[str, Any]:
    """The oplog positions of the backup, and its document counts there (:mod:`.end_counts`)."""
    if result.end is None:
        return {}
    point: dict[str, Any] = {"start": ts_dict(result.start), "end": ts_dict(result.end), "end_time": iso(result.end_time)}
    if result.counts_at_end is not None:
        point["counts"] = dict(result.counts_at_end)
    return point


def backup_details(result: DumpResult, codec: str, fmt: str) -> dict[str, Any]:
    return {
        "database": result.database,
        "server_version": result.server_version,
        "read_preference": result.read_preference,
        "member": result.member,
        "member_state": result.member_state,
        "compression": codec,
        "format": fmt,
        "oplog_entries": result.oplog_entries,
        "metadata_only": result.metadata_only,
        "bytes": result.total_bytes,
        "seconds": round(result.seconds, 3),
        "crc64": result.crcs,
        "collections": {m.name: describe(m) for m in result.collections},
    }


def fetch_dump(store: Store, manifest: Manifest, workdir: str | Path) -> tuple[Path, str | None]:
    """The backup's dump, every byte checked against the manifest: the archive file and its
    codec, or for a directory-format backup the dump directory (codec None: read per file)."""
    archive = [f for f in manifest.files if f.format == ARCHIVE_FORMAT]
    if archive:
        return fetch_verified(store, manifest, archive[0].name, workdir), archive[0].codec
    files = [f for f in manifest.files if f.format == DIRECTORY_FORMAT]
    if not files:
        raise IntegrityError(
            f"backup {manifest.backup_id} has no mongodump archive or directory files",
            detail=f"files: {', '.join(f.name for f in manifest.files)}",
            hint="this is not a MongoDB dump; check the backup id",
        )
    roots = set()
    for f in files:
        path = fetch_verified(store, manifest, f.name, Path(workdir) / "dump")
        roots.add(path.parents[len(Path(f.name).parts) - 1])
    if len(roots) != 1:  # pragma: no cover - a store returns every file under one backup prefix
        raise IntegrityError(f"backup {manifest.backup_id}: its files were fetched to different places: {sorted(map(str, roots))}")
    return roots.pop(), None


def restore_mongodb(client, store: Store, manifest: Manifest, *, workdir: str | Path, safety_dir: str | Path,
                    target_db: str | None = None, collections: list[str] | None = None, drop: bool = False,
                    replay_oplog: bool = True, secrets: list[str] | None = None,
                    safety_backup=None, journaling: Journaling | None = None) -> RestoreResult:
    """Restore a backup safely; the bytes are verified against the manifest before anything else.
    ``safety_backup``: see :func:`safe_restore` (a safety backup already taken by a DR step);
    ``journaling``: where the restore journal goes and the target's connection id (the record
    says how to ``restore resume`` this very restore)."""
    path, codec = fetch_dump(store, manifest, workdir)
    journaling = replace(journaling or Journaling(), backup_id=manifest.backup_id,
                         resume={"kind": "full", "backup_id": manifest.backup_id, "target_db": target_db,
                                 "collections": collections})
    return safe_restore(client, path, codec=codec, source_db=manifest.details.get("database"), target_db=target_db,
                        collections=collections, drop=drop, safety_store=LocalStore(safety_dir, name="safety"),
                        backup_class=manifest.backup_class, source=manifest.source, replay_oplog=replay_oplog,
                        secrets=secrets, safety_backup=safety_backup, expected=expected_counts(manifest),
                        bytes_verified=True, journaling=journaling)


@dataclass
class VerifyResult:
    backup_id: str
    scratch_db: str
    ok: bool
    seconds: float
    restore: RestoreResult
    sampled: int = 0
    problems: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return {"backup_id": self.backup_id, "scratch_db": self.scratch_db, "ok": self.ok,
                "seconds": round(self.seconds, 3), "documents": self.restore.docs, "sampled": self.sampled,
                "docs_per_s": round(self.restore.docs_per_s, 1), "problems": self.problems}


def verify_restore(scratch_client, store: Store, manifest: Manifest, *, workdir: str | Path, sample: int = 50,
                   scratch_db: str | None = None, keep: bool = False) -> VerifyResult:
    """Drill: restore into a scratch database (never production), then check it.

    Checks: counts before the oplog replay equal the manifest's, a random sample of documents
    per collection is byte-identical to the archive, then (after replay) the validation of
    the safe restore (validate command, indexes, counts against the backup's counts at its
    consistent point: :func:`~backup_dr.core.mongo.end_counts.expected_counts`). Raises VerificationError on a
    mismatch; the scratch database is dropped unless ``keep``.
    """
    path, codec = fetch_dump(store, manifest, workdir)
    scratch_db = scratch_db or f"verify_{uuid.uuid4().hex[:10]}"
    started = time.monotonic()
    problems: list[str] = []
    sampled = 0
    source_db = manifest.details.get("database")
    sampled_box = [0]

    def check_loaded(state) -> None:  # the archive's own documents, before the oplog replay
        for name, n in state.inserted.items():
            want = manifest.counts.get(name)
            if want is not None and want != n:
                problems.append(f"{name}: restored {n} documents from the archive, manifest says {want}")
        sampled_box[0] = _check_sample(scratch_client[scratch_db], path, codec, source_db, sample, problems)

    try:
        result = restore_archive(scratch_client, path, codec=codec, source_db=source_db, target_db=scratch_db,
                                 drop=True, on_loaded=check_loaded)
        sampled = sampled_box[0]
        overlay(result, expected_counts(manifest))
        try:
            result.validation = validate_restore(scratch_client, result)
        except VerificationError as e:
            problems.append(e.message)
    finally:
        if not keep:
            scratch_client.drop_database(scratch_db)
    seconds = time.monotonic() - started
    out = VerifyResult(manifest.backup_id, scratch_db, not problems, seconds, result, sampled, problems)
    if problems:
        raise VerificationError(f"verification restore of {manifest.backup_id} failed: " + "; ".join(problems),
                                detail=f"scratch database {scratch_db}, {seconds:.1f}s")
    log.info("verified %s in scratch db %s: %d documents, %d sampled, %.1fs", manifest.backup_id, scratch_db,
             result.docs, sampled, seconds)
    return out


def _check_sample(db, path: Path, codec: str, source_db: str | None, sample: int, problems: list[str]) -> int:
    """Reservoir-sample documents of each collection from the archive; compare bytes by _id."""
    rng = random.Random(20261126)
    picks: dict[str, list[bytes]] = {}
    seen: dict[str, int] = {}
    with open_archive(path, codec=codec) as reader:
        for dbname, coll, doc in reader.documents():
            if doc is None or dbname != (source_db or dbname) or dbname == "":
                continue
            k = seen[coll] = seen.get(coll, 0) + 1
            box = picks.setdefault(coll, [])
            if len(box) < sample:
                box.append(doc)
            elif rng.random() < sample / k:
                box[rng.randrange(sample)] = doc
    n = 0
    for coll, docs in picks.items():
        for doc in docs:
            _id = bsonraw.build([bsonraw.get(doc, "_id")])
            got = db[coll].with_options(codec_options=db.codec_options.with_options(document_class=RawBSONDocument)).find_one(_id)
            n += 1
            if got is None or got.raw != doc:
                problems.append(f"{coll}: document {RawBSONDocument(_id.raw)['_id']!r} differs from the archive")
                break
    return n
