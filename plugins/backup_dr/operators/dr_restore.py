"""The DR restore steps: MongoDB (full or point in time), Redis and app files, as operators.

Thin over core: the backup and the copy are chosen by :mod:`backup_dr.core.recovery` and
:mod:`backup_dr.core.good_copy` (newest capture at or before the incident, fallback to the
next store, the copy fetched and verified ONCE, by the restore itself). Each step returns
``first_byte_at`` / ``finished_at``: the summary measures the recovery time achieved from the
first byte fetched to the validated target.
"""

from __future__ import annotations

from typing import Any, Sequence

from airflow.sdk import Context
from airflow.sdk.exceptions import AirflowFailException

from backup_dr.core.catalog import Catalog
from backup_dr.core.restores.journal import JournalDir
from backup_dr.core.restores.workdirs import sweep_stale, work_dir
from backup_dr.operators._common import conn_info, get_policy, local_store, mongo_client, open_store, translate_errors
from backup_dr.operators.dr import _DrStep, _truthy, typed_time
from backup_dr.operators.dr_interrupted import journaling_for


class MongoRecoverOperator(_DrStep):
    """Restore the picked backup into the target (safe restore: validate, roll back on failure),
    or replay to the picked point in time. The copy is fetched once, verified as it arrives,
    from the first good store in the pick's order (a bad copy falls back to the next). The
    safety backup step's dump is the rollback point: no second dump of the target."""

    template_fields: Sequence[str] = ("scenario", "target_conn_id", "dry_run", "drop")

    def __init__(self, *, drop: Any = "{{ params.drop }}", **kwargs):
        super().__init__(**kwargs)
        self.drop = drop

    def execute(self, context: Context) -> dict[str, Any]:
        from backup_dr.core.artifacts.layout import BackupId
        from backup_dr.core.artifacts.reader import load_manifest
        from backup_dr.core.recovery import now_iso, ordered

        policy, sc, cls, src = self.setup()
        pick = self.picked(context)
        sweep_stale()  # download dirs a killed earlier attempt left behind
        if _truthy(self.dry_run):
            self.log.warning("DRY RUN: would restore %s from %s into %s%s", pick.get("backup_id"), pick.get("store"),
                             self.target_conn_id, f" up to {pick['point_in_time']}" if pick.get("point_in_time") else "")
            return {"dry_run": True, **pick}
        safety_step = context["ti"].xcom_pull(task_ids=self.steps["safety_backup"]) or {}
        safety_id = safety_step.get("safety_backup")
        secrets = conn_info(self.target_conn_id).secrets
        local = local_store(policy, cls.name)
        journaling = journaling_for(local, self.target_conn_id, safety_step.get("resumes"))
        with translate_errors(*secrets, conn_id=self.target_conn_id), work_dir("backup-dr-restore-") as work:
            stores = ordered(policy, cls.name, {n: open_store(policy.stores[n]) for n in cls.stores})
            safety = load_manifest(local, BackupId.parse(safety_id)) if safety_id else None
            client = mongo_client(self.target_conn_id)
            first_byte_at = now_iso()  # the restore's first I/O is fetching the copy
            try:
                if pick.get("point_in_time"):
                    from backup_dr.core.pitr import restore_to_time

                    at = typed_time(policy, pick["point_in_time"], "point_in_time", allow_timestamp=True)
                    result = restore_to_time(client, stores, policy, src.name, at.at, drop=_truthy(self.drop), workdir=work,
                                             safety_dir=str(local.root), secrets=secrets, backup_class=cls.name,
                                             safety_backup=safety, journaling=journaling)
                    out = {**result.as_dict(), "store": result.base_store, "fell_back_from": []}
                else:
                    from backup_dr.core.good_copy import with_good_copy
                    from backup_dr.core.mongo.backup import restore_mongodb

                    entry = Catalog(stores).find(pick["backup_id"])
                    if entry is None:
                        raise AirflowFailException(f"backup {pick['backup_id']} is no longer complete in any store")
                    res, attempts = with_good_copy(entry, stores, [n for n in pick.get("order") or entry.complete_in if n in stores],
                                                   lambda store, m: restore_mongodb(client, store, m, workdir=work, safety_dir=str(local.root),
                                                                                    drop=_truthy(self.drop), secrets=secrets,
                                                                                    safety_backup=safety, journaling=journaling))
                    out = {**(res.as_dict() if hasattr(res, "as_dict") else dict(vars(res))), **attempts.as_dict()}
            finally:
                client.close()
        self.log.info("restored %s into %s from store %s", pick["backup_id"], self.target_conn_id, out.get("store"))
        return {"dry_run": False, "first_byte_at": first_byte_at, "finished_at": now_iso(),
                **{k: v for k, v in out.items() if isinstance(v, (str, int, float, bool, dict, list, type(None)))}}


class _LatestRecover(_DrStep):
    """A restore of the newest backup of a source captured at or before the incident (default:
    this run's start), through the good-copy picker (fallback to the next store)."""

    template_fields: Sequence[str] = ("scenario", "target_conn_id", "dry_run", "incident_time")

    def __init__(self, *, incident_time: str = "{{ params.incident_time }}", **kwargs):
        super().__init__(**kwargs)
        self.incident_time = incident_time

    def pick(self, policy, stores, source: str, kind: str):
        from backup_dr.core.recovery import pick_latest

        incident = typed_time(policy, self.incident_time, "incident_time")
        if incident is not None:
            self.log.info("incident time: %s", incident.echo())
        entry, order, _cls = pick_latest(policy, stores, source, kind, incident=incident.utc if incident else None)
        self.log.info("%s: newest backup captured at or before %s: %s (captured %s); copies in order: %s", source,
                      incident.utc.isoformat() if incident else "now", entry.backup_id, entry.captured_at.isoformat(), ", ".join(order))
        return entry, order

    def recover(self, entry, stores, order, action) -> dict[str, Any]:
        from backup_dr.core.good_copy import with_good_copy
        from backup_dr.core.recovery import now_iso

        first_byte_at = now_iso()
        result, attempts = with_good_copy(entry, stores, order, action)
        return {"backup_id": entry.backup_id, "captured_at": entry.captured_at.isoformat(), "first_byte_at": first_byte_at,
                "finished_at": now_iso(), **attempts.as_dict(),
                **(result if isinstance(result, dict) else result.as_dict() if hasattr(result, "as_dict") else dict(vars(result)))}


class RedisRecoverOperator(_LatestRecover):
    """Load the newest Redis backup captured at or before the incident into the scenario's Redis
    target over the network, from the first good copy."""

    template_fields: Sequence[str] = ("scenario", "redis_target_conn_id", "dry_run", "incident_time")

    def __init__(self, *, redis_target_conn_id: str = "{{ params.redis_target_conn_id }}", **kwargs):
        super().__init__(**kwargs)
        self.redis_target_conn_id = redis_target_conn_id

    def execute(self, context: Context) -> dict[str, Any]:
        from backup_dr.core.artifacts.layout import kind_for
        from backup_dr.core.redis.load import load_into_server

        policy = get_policy(self.policy_path)
        src = next((s for s in policy.sources.values() if s.type == "redis"), None)
        if src is None:
            raise AirflowFailException("the policy has no Redis source to restore")
        with translate_errors():
            stores = {n: open_store(s) for n, s in policy.stores.items()}
            entry, order = self.pick(policy, stores, src.name, kind_for(src))
            if _truthy(self.dry_run):
                self.log.warning("DRY RUN: would load %s into %s", entry.backup_id, self.redis_target_conn_id)
                return {"dry_run": True, "backup_id": entry.backup_id, "order": order}
            conn = conn_info(self.redis_target_conn_id)
            out = self.recover(entry, stores, order, lambda store, m: load_into_server(conn, store, m, replace=True,
                                                                                safety_store=local_store(policy)))
        return {"dry_run": False, **out}


class FilesRecoverOperator(_LatestRecover):
    """Restore the newest archive (captured at or before the incident) of each listed files source
    to its policy path (the old content, if any, is kept aside as a safety copy by the core)."""

    def __init__(self, *, sources: list[str], **kwargs):
        super().__init__(**kwargs)
        self.sources = sources

    def execute(self, context: Context) -> dict[str, Any]:
        from backup_dr.core.files import restore_files

        policy = get_policy(self.policy_path)
        out = {}
        with translate_errors():
            stores = {n: open_store(s) for n, s in policy.stores.items()}
            for name in self.sources:
                src = policy.sources[name]
                entry, order = self.pick(policy, stores, name, "files")
                if _truthy(self.dry_run):
                    self.log.warning("DRY RUN: would restore %s into %s", entry.backup_id, src.path)
                    out[name] = {"dry_run": True, "backup_id": entry.backup_id}
                    continue
                with work_dir("backup-dr-files-") as work:
                    out[name] = self.recover(entry, stores, order, lambda store, m: restore_files(
                        store, m, src.path, workdir=work, overwrite=True, journal=JournalDir(local_store(policy).root)))
        starts = [r["first_byte_at"] for r in out.values() if r.get("first_byte_at")]
        ends = [r["finished_at"] for r in out.values() if r.get("finished_at")]
        return {**out, **({"first_byte_at": min(starts), "finished_at": max(ends)} if starts else {})}
