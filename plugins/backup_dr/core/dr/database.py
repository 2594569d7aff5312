"""The DR steps of the scenario's database: pick the backup, take the safety backup, restore,
validate. Each is ``step(run, step) -> dict`` (the dict is the step's XCom / CLI report).

* **pick_backup** (:func:`backup_dr.core.recovery.pick_mongodb`): the newest full backup
  captured at or before the incident, or the point-in-time plan; the typed time is echoed
  (UTC and the policy's zone) BEFORE anything changes. A real run downloads nothing here: the
  restore verifies the copy as it fetches it (one download); a dry run re-hashes the chosen
  copy, falling back to the next.
* **safety_backup**: the target's current data into the local store, the restore's rollback
  point (an interrupted earlier restore into the target is settled first, :mod:`.interrupted`).
* **restore**: safe restore (validate, roll back on failure) or point-in-time replay, through
  the one good-copy picker.
* **validate**: ``validate`` on every collection and counts against the backup's counts at its
  consistent point (:func:`backup_dr.core.mongo.end_counts.expected_counts`).
"""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Any

from backup_dr.core.catalog import Catalog
from backup_dr.core.dr.interrupted import dry_run_check, journaling_for, settle
from backup_dr.core.dr.run import DrRun, DrStepFailed, typed_time
from backup_dr.core.errors import NotFoundError


def _copies_text(out: dict[str, Any]) -> str:
    def state(c):
        return "verified" if c["verified"] else "FAILED" if c["verified"] is False else "unchecked"

    return ", ".join(f"{c['store']} ({state(c)})" for c in out["copies"])


def pick_backup(run: DrRun, step=None) -> dict[str, Any]:
    from backup_dr.core.recovery import pick_mongodb, rehearse_copy

    at = typed_time(run.policy, run.point_in_time, "point_in_time", allow_timestamp=True)
    incident = run.incident()
    if at is not None:
        run.log.info("point in time: %s", at.echo())
    if incident is not None:
        run.log.info("incident time: %s", incident.echo())
    cls, src = run.backup_class, run.source
    stores = run.class_stores()
    out = pick_mongodb(run.policy, stores, cls.name, src.name, at=at, incident=incident.utc if incident else None)
    if run.dry_run:
        entry = Catalog(stores).find(out["backup_id"])
        out["rehearsal"] = rehearse_copy(entry, stores, out["order"])
        out["store"] = out["rehearsal"]["store"]
    run.log.info("picked %s (data captured at %s, slot %s); copies in order: %s%s", out["backup_id"], out["captured_at"],
                 out["slot"], _copies_text(out), f"; will replay the oplog up to {out['pitr']['replay_until']}" if at else "")
    return {**out, "incident_time": incident.as_dict() if incident else None}


def safety_backup(run: DrRun, step=None) -> dict[str, Any]:
    from backup_dr.core.mongo.safe_restore import take_safety_backup

    cls, src = run.backup_class, run.source
    target_db = run.database()
    local = run.local(cls.name)
    if run.dry_run:
        dry_run_check(run, local, target_db)
        run.log.warning("DRY RUN: would dump %s on %s as a safety backup", target_db, run.target_conn_id)
        return {"dry_run": True, "database": target_db}
    secrets = run.conn(run.target_conn_id).secrets
    client = run.mongo(run.target_conn_id)
    try:
        decided = settle(run, client, local, target_db, secrets)  # an interrupted restore into the target?
        if decided is not None:
            return decided
        manifest = take_safety_backup(client, target_db, local, backup_class=cls.name, source=src.name, secrets=secrets)
    finally:
        client.close()
    if manifest is None:
        run.log.info("target %s has no database %s: nothing to protect", run.target_conn_id, target_db)
        return {"dry_run": False, "safety_backup": None, "database": target_db}
    return {"dry_run": False, "safety_backup": manifest.backup_id, "database": target_db, "counts": manifest.counts}


def restore(run: DrRun, step=None) -> dict[str, Any]:
    from backup_dr.core.artifacts.layout import BackupId
    from backup_dr.core.artifacts.reader import load_manifest
    from backup_dr.core.recovery import now_iso, ordered
    from backup_dr.core.restores.workdirs import sweep_stale, work_dir

    cls, src = run.backup_class, run.source
    pick = run.result("pick_backup")
    sweep_stale()  # download dirs a killed earlier attempt left behind
    if run.dry_run:
        run.log.warning("DRY RUN: would restore %s from %s into %s%s", pick.get("backup_id"), pick.get("store"),
                        run.target_conn_id, f" up to {pick['point_in_time']}" if pick.get("point_in_time") else "")
        return {"dry_run": True, **pick}
    safety_step = run.result("safety_backup")
    safety_id = safety_step.get("safety_backup")
    secrets = run.conn(run.target_conn_id).secrets
    local = run.local(cls.name)
    journaling = journaling_for(local, run.target_conn_id, safety_step.get("resumes"))
    with work_dir("backup-dr-restore-") as work:
        stores = ordered(run.policy, cls.name, run.class_stores())
        safety = load_manifest(local, BackupId.parse(safety_id)) if safety_id else None
        client = run.mongo(run.target_conn_id)
        first_byte_at = now_iso()  # the restore's first I/O is fetching the copy
        try:
            if pick.get("point_in_time"):
                from backup_dr.core.pitr import restore_to_time

                at = typed_time(run.policy, pick["point_in_time"], "point_in_time", allow_timestamp=True)
                result = restore_to_time(client, stores, run.policy, src.name, at.at, drop=run.drop, workdir=work,
                                         safety_dir=str(local.root), secrets=secrets, backup_class=cls.name,
                                         safety_backup=safety, journaling=journaling)
                out = {**result.as_dict(), "store": result.base_store, "fell_back_from": []}
            else:
                from backup_dr.core.good_copy import with_good_copy
                from backup_dr.core.mongo.backup import restore_mongodb

                entry = Catalog(stores).find(pick["backup_id"])
                if entry is None:
                    raise NotFoundError(f"backup {pick['backup_id']} is no longer complete in any store")
                order = [n for n in pick.get("order") or entry.complete_in if n in stores]
                res, attempts = with_good_copy(entry, stores, order, lambda store, m: restore_mongodb(
                    client, store, m, workdir=work, safety_dir=str(local.root), drop=run.drop, secrets=secrets,
                    safety_backup=safety, journaling=journaling))
                out = {**(res.as_dict() if hasattr(res, "as_dict") else dict(vars(res))), **attempts.as_dict()}
        finally:
            client.close()
    run.log.info("restored %s into %s from store %s", pick["backup_id"], run.target_conn_id, out.get("store"))
    return {"dry_run": False, "first_byte_at": first_byte_at, "finished_at": now_iso(),
            **{k: v for k, v in out.items() if isinstance(v, (str, int, float, bool, dict, list, type(None)))}}


def validate(run: DrRun, step=None) -> dict[str, Any]:
    from backup_dr.core.artifacts.layout import BackupId
    from backup_dr.core.artifacts.reader import load_manifest
    from backup_dr.core.mongo.end_counts import expected_counts

    pick, restored = run.result("pick_backup"), run.result("restore")
    if run.dry_run or restored.get("dry_run"):
        run.log.warning("DRY RUN: nothing was restored, nothing to validate")
        return {"dry_run": True}
    db_name = run.database()
    pitr = bool(pick.get("point_in_time"))
    # what the backup holds at its consistent point (its oplog window replayed), not what its dump read
    store = run.stores([pick["store"]])[pick["store"]]
    manifest = load_manifest(store, BackupId.parse(pick["backup_id"]))
    expected = expected_counts(manifest)
    wanted = expected.counts or dict.fromkeys(manifest.counts)  # unknown: validate them, compare nothing
    if not expected.counts and not pitr:
        run.log.warning("document counts are not compared: %s", expected.source)
    problems, counts = [], {}
    client = run.mongo(run.target_conn_id)
    try:
        db = client[db_name]
        names = set(db.list_collection_names())
        for coll, want in wanted.items():
            if coll not in names:
                if want is not None or not pitr:
                    problems.append(f"collection {coll} is missing")
                continue
            res = db.command("validate", coll)
            if not res.get("valid", False):
                problems.append(f"{coll}: validate says invalid: {res.get('errors')}")
            counts[coll] = db[coll].count_documents({})
            if not pitr and want is not None and counts[coll] != want:
                problems.append(f"{coll}: {counts[coll]} documents, the backup holds {want} at its consistent point")
    finally:
        client.close()
    if problems:
        raise DrStepFailed("restored data failed validation: " + "; ".join(problems))
    return {"dry_run": False, "database": db_name, "counts": counts, "validated_at": datetime.now(timezone.utc).isoformat()}
