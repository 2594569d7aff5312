"""The safe restore procedure: verify, safety backup, restore with drop, validate, roll back.

1. Verify the archive end to end (structure + every CRC) before the target is touched.
2. Refuse a non-empty target unless ``drop=True``.
3. Safety backup of the current target database with our own dump, as a normal backup
   (kind ``safety``, manifest written last) in a local store that is KEPT afterwards, so an
   operator can undo the restore with the same ``restore_mongodb`` call.
4. Restore with drop (:mod:`.restore`).
5. Validate: the ``validate`` command on every collection, document counts equal the
   archive's counts plus the replayed oplog's net inserts/deletes, every index present.
6. On ANY failure after the target was touched (exception, validation mismatch, lost
   connection, SIGTERM / SIGINT / SIGHUP, Airflow's execution_timeout) roll back: drop what
   the restore touched and restore it from the safety backup (signals held off meanwhile),
   then raise :class:`RestoreRolledBack` saying so, or, if the rollback failed too, a
   :class:`RestoreError` naming the CLI command that finishes the rollback.

Steps 2-6 run inside a restore journal record (:mod:`.interrupted`): written before the
first change, removed after validation or a rollback, left behind only when the process
died (SIGKILL, power loss) or the rollback failed, so that it is found afterwards.
"""

from __future__ import annotations

import logging
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from backup_dr.core.artifacts.layout import BackupId
from backup_dr.core.errors import BackupDRError, RestoreError, RestoreRefused, RestoreRolledBack, VerificationError
from backup_dr.core.mongo.codecs import SUFFIX
from backup_dr.core.mongo.dump import dump_database
from backup_dr.core.mongo.end_counts import overlay
from backup_dr.core.mongo.interrupted import Journaling, journal_for, journal_safety, rollback_failed_hint, safety_record
from backup_dr.core.mongo.mongo_errors import convert, describe, translate
from backup_dr.core.mongo.restore import (RestoreResult, RestoreState, check_target, open_archive, plan_restore,
                                          read_prelude, restore_archive, verify_archive)
from backup_dr.core.mongo.sinks import ArchiveSink, server_version, tool_version
from backup_dr.core.restores.signals import describe_failure, interrupted_by, shielded
from backup_dr.core.stores.local import LocalStore

log = logging.getLogger(__name__)

SAFETY_CODEC = "zstd"


def validate_restore(client, result: RestoreResult) -> dict[str, Any]:
    """Check the restored database; raises VerificationError listing every problem found."""
    db = client[result.target_db]
    problems: list[str] = []
    report: dict[str, Any] = {"collections": {}}
    existing = set(db.list_collection_names())
    for view in result.views:
        if view not in existing:
            problems.append(f"view {view} is missing")
    for name, expected in result.expected_counts.items():
        if expected is None:
            continue
        if name not in existing:
            problems.append(f"collection {name} is missing")
            continue
        v = db.command("validate", name)
        count, have = validated_count_and_indexes(db, name, v)
        missing = sorted(set(result.expected_indexes.get(name, [])) - have)
        report["collections"][name] = {"valid": bool(v.get("valid")), "count": count, "expected": expected,
                                       "indexes": sorted(have)}
        if not v.get("valid"):
            problems.append(f"validate reports {name} invalid: {v.get('errors')}")
        if count != expected:
            problems.append(f"{name} has {count} documents, expected {expected}")
        if missing:
            problems.append(f"{name} lacks index(es) {', '.join(missing)}")
    if problems:
        raise VerificationError(f"restored database {result.target_db!r} failed validation: " + "; ".join(problems),
                                hint="the restore is rolled back; check the backup with verify before retrying")
    report["ok"] = True
    return report


def validated_count_and_indexes(db, name: str, validation: dict[str, Any]) -> tuple[int, set[str]]:
    """The document count and index names the ``validate`` command itself reports.

    WHY: ``validate`` already walks every record and every index (``nrecords``,
    ``keysPerIndex``); a separate ``count_documents`` is a second full scan that proves nothing
    more. Servers whose reply lacks them are asked directly."""
    count = validation.get("nrecords")
    if not isinstance(count, int):
        count = db[name].count_documents({})
    per_index = validation.get("keysPerIndex")
    if isinstance(per_index, dict) and per_index:  # 3.x named them "<db>.<coll>.$<index>"
        return count, {k.split(".$", 1)[1] if ".$" in k else k for k in per_index}
    return count, {ix["name"] for ix in db[name].list_indexes()}


def take_safety_backup(client, target_db: str, safety_store: LocalStore, *, backup_class: str, source: str,
                       collections: list[str] | None = None, secrets: list[str] | None = None):
    """Dump the current target database as a ``safety`` backup; returns its Manifest (or None if
    the database does not exist, so there is nothing to keep)."""
    from backup_dr.core.artifacts.writer import ArtifactWriter

    with translate(f"taking a safety backup of {target_db!r}", secrets=secrets):
        if target_db not in client.list_database_names():  # the first round trip: a target that is down fails here
            return None
    bid = BackupId.new(backup_class, source, "safety", datetime.now(timezone.utc))
    writer = ArtifactWriter(safety_store, bid, source_type="mongodb")
    writer.begin()
    try:
        name = f"{target_db}.archive{SUFFIX[SAFETY_CODEC]}"
        with writer.open_file(name, codec=SAFETY_CODEC, format="mongodump-archive") as out:
            sink = ArchiveSink(out, SAFETY_CODEC, server_version=server_version(client), tool_version=tool_version())
            res = dump_database(client, target_db, sink, collections=collections, read_pref="primary", oplog=False,
                                secrets=secrets)
        manifest = writer.commit(counts=res.counts, details={"database": target_db, "purpose": "safety backup before a restore",
                                                            "archive": name})
    except BaseException:
        writer.abort()
        raise
    log.info("safety backup of %s: %s in %s", target_db, bid, safety_store.describe())
    return manifest


def rollback(client, state: RestoreState, safety_path: Path | None) -> list[str]:
    """Put the touched collections back as they were. Returns the collections restored."""
    plan = state.plan
    db = client[plan.target_db]
    touched = state.touched | set(plan.names)
    existing = set(db.list_collection_names())
    for name in sorted(touched & existing):
        db.drop_collection(name)
    if safety_path is None:
        return []
    with open_archive(safety_path) as reader:
        have = {e.collection for e in reader.prelude if not e.is_oplog}
    back = sorted(touched & have)
    if back:
        restore_archive(client, safety_path, target_db=plan.target_db, collections=back, drop=True, replay_oplog=False)
    return back


def safe_restore(client, archive_path: str | Path, *, codec: str | None = None, source_db: str | None = None,
                 target_db: str | None = None, collections: list[str] | None = None, drop: bool = False,
                 safety_store: LocalStore, backup_class: str = "adhoc", source: str = "mongodb",
                 replay_oplog: bool = True, validate: bool = True, secrets: list[str] | None = None,
                 safety_backup=None, expected=None, state: RestoreState | None = None,
                 bytes_verified: bool = False, journaling: Journaling | None = None) -> RestoreResult:
    """Restore with safety backup, validation and rollback. See the module doc.

    ``state``: filled in as the restore goes (a caller continuing the replay reads its applier).
    ``expected``: the backup's :class:`~backup_dr.core.mongo.end_counts.ExpectedCounts` (from its
    manifest: :func:`~backup_dr.core.mongo.end_counts.expected_counts`), what validation compares.

    ``safety_backup``: a safety backup Manifest taken just before by a separate step (the DR
    runbook's "safety backup" task), used instead of taking a second one. It must live in
    ``safety_store`` and be of the target database. ``journaling``: see :class:`Journaling`;
    with ``takes_over`` (resuming an interrupted restore) that record's safety backup is
    used, never a new one of the half-written target.

    ``bytes_verified``: the caller has just checked the file's sha256 against its manifest
    (:func:`.backup.restore_mongodb`), so step 1 reads only the prelude instead of the whole
    archive a second time; every CRC is still checked, while loading.
    """
    # IntegrityError here: nothing touched. With ``bytes_verified`` the sha256 already proved every byte
    # is the one the backup wrote; the CRCs are then checked while loading (a mismatch rolls back).
    prelude = read_prelude(archive_path, codec=codec) if bytes_verified else verify_archive(archive_path, codec=codec).prelude
    plan = plan_restore(prelude, source_db=source_db, target_db=target_db, collections=collections,
                        where=str(archive_path))
    resumed = journaling.takes_over if journaling and journaling.takes_over and journaling.takes_over.touched else None
    with journal_for(client, plan.target_db, safety_store, journaling, what=f"the restore into {plan.target_db!r}",
                     secrets=secrets) as journal:
        with translate(f"preparing the restore into {plan.target_db!r}", secrets=secrets, cls=RestoreError):
            check_target(client, plan, drop=drop or resumed is not None)  # RestoreRefused here: nothing touched
            if resumed is not None:
                safety, kept_in = journal_safety(resumed)
                safety_store = kept_in or safety_store
            elif safety_backup is not None:
                if safety_backup.details.get("database") != plan.target_db or safety_store.stat(safety_backup.id.manifest_key) is None:
                    raise RestoreRefused(f"safety backup {safety_backup.backup_id} is not of {plan.target_db!r} in {safety_store.describe()}")
                safety = safety_backup
            else:
                safety = take_safety_backup(client, plan.target_db, safety_store, backup_class=backup_class, source=source,
                                            secrets=secrets)
        safety_path = safety_store.path(safety.id.key(safety.files[0].name)) if safety else None
        journal.writing(safety=safety_record(safety, safety_store), resume={**journal.entry.resume, "written": plan.names})
        state = state if state is not None else RestoreState()
        try:
            result = restore_archive(client, archive_path, codec=codec, source_db=plan.source_db, target_db=plan.target_db,
                                     collections=collections, drop=True, replay_oplog=replay_oplog, state=state)
            if replay_oplog:
                overlay(result, expected, collections)
            if validate:
                result.validation = validate_restore(client, result)
        except BaseException as e:
            cause = e if isinstance(e, BackupDRError) else convert(e, "restore", secrets, RestoreError) if _is_pymongo(e) else e
            where = f"safety backup {safety.backup_id} in {safety_store.describe()}" if safety else "no safety backup (the target database did not exist)"
            how = describe_failure(e)
            try:
                with shielded():
                    journal.rolling_back()
                    state.plan = state.plan or plan
                    restored = rollback(client, state, safety_path)
            except BaseException as rb:  # noqa: BLE001 - reported, original cause chained
                raise RestoreError(
                    f"restore into {plan.target_db!r} {how} AND the rollback failed: the target may be half-written",
                    detail=f"restore: {_short(cause, secrets)}; rollback: {_short(rb, secrets)}",
                    hint=rollback_failed_hint(journal, where) if safety else
                         f"{rollback_failed_hint(journal, where)} (it drops the partly restored collections of {plan.target_db!r})",
                ) from e
            raise RestoreRolledBack(
                f"restore into {plan.target_db!r} {how}; the target was rolled back to its state before the restore",
                detail=f"{_short(cause, secrets)}; rolled back: {', '.join(restored) or 'dropped what the restore created'}",
                hint=f"nothing changed on the target; the {where} is kept. Fix the cause and retry",
                signum=interrupted_by(e),
            ) from e
    result.safety_backup = safety.backup_id if safety else None
    result.safety_dir = safety_store.describe()
    return result


def _is_pymongo(e: BaseException) -> bool:
    from pymongo.errors import PyMongoError

    return isinstance(e, PyMongoError)


def _short(e: BaseException, secrets: list[str] | None) -> str:
    text = e.message if isinstance(e, BackupDRError) else describe(e, secrets)
    if isinstance(e, BackupDRError) and e.detail:
        text += f" ({e.detail})"
    return f"{type(e).__name__}: {text}"
