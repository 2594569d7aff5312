"""``restore resume``: finish the restore an interrupted journal record describes.

The engine that wrote the record (``engine_for_journal``) says how: the journal names in its
``journal_takeover`` (MongoDB full or point in time, Redis network loads) are run again from
the start with the record's safety backup (a new safety backup would save the half-written
target): the new restore takes the record over, so it is rolled back to the state before
the FIRST attempt if it fails too. The others (a Redis data-dir restore, a files restore:
a swap of whole files, nothing half-written to build on) are rolled back, then run again.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Callable

from backup_dr.cli.common import find_backup, open_policy_stores, resolve_conn, workdir_arg
from backup_dr.cli.good_copy import with_good_copy
from backup_dr.core.catalog import Catalog
from backup_dr.core.restores.journal import JournalDir, JournalEntry
from backup_dr.core.errors import RestoreRefused
from backup_dr.core.restores.recover import journal_engine, target_conn_id
from backup_dr.core.restores.workdirs import work_dir


def resume(args, policy, journal: JournalDir, entry: JournalEntry) -> dict[str, Any]:
    """Finish ``entry``'s restore; the engine that wrote the record says whether it is taken over
    (run again over the half-written target) or rolled back first (``journal_takeover``)."""
    engine = journal_engine(entry)
    again = _RESTORE_AGAIN.get(entry.engine)
    if again is None:
        raise RestoreRefused(f"`restore resume` cannot finish a {engine.label} restore (journal record {entry.id})",
                             hint=f"roll it back with `python -m backup_dr restore rollback {entry.id}`, then restore again")
    workdir = workdir_arg(getattr(args, "workdir", None))
    if entry.engine in engine.journal_takeover:
        return again(args, policy, journal, entry, workdir)
    from backup_dr.cli.restore_journal_cmd import _clients
    from backup_dr.core.restores.recover import roll_back

    mongo, redis_conn = _clients()
    undone = roll_back(journal, entry, mongo_client=mongo, redis_conn=redis_conn, conn_id=args.to)
    report = again(args, policy, journal, entry, workdir)
    return {**report, "rolled_back_first": undone, "summary": f"rolled back, then restored again: {report['summary']}"}


def _mongo(args, policy, journal, entry, workdir) -> dict[str, Any]:
    from backup_dr.cli.restore_mongo import safety_dir
    from backup_dr.cli.targets import mongo_client
    from backup_dr.core.mongo.interrupted import Journaling

    r = entry.resume
    conn = resolve_conn(target_conn_id(entry, args.to))
    journaling = Journaling(dir=journal.root, conn_id=conn.conn_id, takes_over=entry)
    safety = entry.safety.get("root") or safety_dir(None, policy)
    stores = open_policy_stores(policy)
    with mongo_client(conn) as client, work_dir("backup-dr-restore-", workdir) as tmp:
        if r.get("kind") == "pitr":
            from backup_dr.core.pitr import restore_to_time
            from backup_dr.core.pitr.points import parse_at

            result = restore_to_time(client, stores.opened, policy, r["source"], parse_at(r["at"]), target_db=r.get("target_db"),
                                     collections=r.get("collections"), drop=True, backup_class=r.get("backup_class"),
                                     workdir=tmp, safety_dir=safety, secrets=conn.secrets, journaling=journaling)
            return {"backup_id": result.base_backup, "summary": f"restored to {r['at']} ({result.replayed_entries} entries replayed), "
                    f"validated; safety backup kept: {entry.safety_text()}", "restore": result.as_dict()}
        from backup_dr.core.mongo.backup import restore_mongodb

        backup = find_backup(Catalog(stores.opened), r["backup_id"])
        result, attempts = with_good_copy(backup, stores, None, policy, lambda store, m: restore_mongodb(
            client, store, m, workdir=tmp, safety_dir=safety, target_db=r.get("target_db"), collections=r.get("collections"),
            drop=True, secrets=conn.secrets, journaling=journaling))
    return {"backup_id": backup.backup_id, **attempts.as_dict(),
            "summary": f"{result.docs} documents restored and validated; safety backup kept: {entry.safety_text()}",
            "restore": {"target_db": result.target_db, "inserted": result.inserted, "validation": result.validation}}


def _redis_load(args, policy, journal, entry, workdir) -> dict[str, Any]:
    from backup_dr.cli.restore_mongo import safety_dir
    from backup_dr.core.redis.load import load_into_server
    from backup_dr.core.stores.local import LocalStore

    conn = resolve_conn(target_conn_id(entry, args.to))
    safety = LocalStore(entry.safety.get("root") or safety_dir(None, policy), name="safety")
    stores = open_policy_stores(policy)
    backup = find_backup(Catalog(stores.opened), entry.backup_id)
    with work_dir("backup-dr-restore-", workdir) as tmp:
        report, attempts = with_good_copy(backup, stores, None, policy, lambda store, m: load_into_server(
            conn, store, m, replace=True, workdir=str(tmp), safety_store=safety, journal=journal, takes_over=entry))
    return {"backup_id": backup.backup_id, **attempts.as_dict(),
            "summary": f"keys loaded: {report['copied']}; the target equals the backup ({report['verified']['method']})",
            "restore": report}


def _redis_data_dir(args, policy, journal, entry, workdir) -> dict[str, Any]:
    from backup_dr.cli.restore_other import redis_source_for
    from backup_dr.core.redis.restore import restore_data_dir

    stores = open_policy_stores(policy)
    backup = find_backup(Catalog(stores.opened), entry.backup_id)
    r = entry.resume
    conn = resolve_conn(target_conn_id(entry, args.to))
    source = redis_source_for(policy, backup.bid.source, r.get("data_dir"), r.get("restart_command"))
    report, attempts = with_good_copy(backup, stores, None, policy, lambda store, m: restore_data_dir(
        conn, source, store, m, workdir=workdir, journal=journal))
    return {"backup_id": backup.backup_id, **attempts.as_dict(), "summary": f"keys {report['restored']}", "restore": report}


def _files(args, policy, journal, entry, workdir) -> dict[str, Any]:
    from backup_dr.core.files import restore_files

    stores = open_policy_stores(policy)
    backup = find_backup(Catalog(stores.opened), entry.backup_id)
    with work_dir("backup-dr-files-", workdir) as tmp:
        result, attempts = with_good_copy(backup, stores, None, policy, lambda store, m: restore_files(
            store, m, Path(entry.resume["target"]), workdir=tmp, overwrite=True, journal=journal))
    return {"backup_id": backup.backup_id, **attempts.as_dict(), "summary": f"{result.files} files", "restore": result.as_dict()}


#: how each journal record kind (an engine's ``journal_engines``) is restored again; the
#: engine registry, not this table, decides which engine wrote a record and how it is resumed
_RESTORE_AGAIN: dict[str, Callable[..., dict[str, Any]]] = {
    "mongodb": _mongo, "redis_load": _redis_load, "redis_data_dir": _redis_data_dir, "files": _files,
}
