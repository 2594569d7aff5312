"""The disaster-recovery runbook steps as operators. Each step does real work or fails.

The seed's ``execute_recovery_step`` returned True for any step it did not implement; here
every step kind is a real operation, and the steps no machine can do (provisioning, DNS)
are human approval tasks built by the factory. Destructive steps honour the run's
``dry_run`` param (default on) and then say exactly what they WOULD have done.
"""

from __future__ import annotations

import json
import time
import urllib.request
from datetime import datetime, timezone
from typing import Any, Sequence

from airflow.sdk import BaseOperator, Context
from airflow.sdk.exceptions import AirflowFailException

from backup_dr.core.errors import BackupDRError
from backup_dr.operators._common import conn_info, get_policy, local_store, mongo_client, open_store, translate_errors
from backup_dr.core.restores.journal import JournalDir
from backup_dr.core.restores.workdirs import sweep_stale, work_dir
from backup_dr.operators.dr_interrupted import dry_run_check, journaling_for, settle


def _truthy(value: Any) -> bool:
    return value is True or str(value).strip().lower() in ("true", "1", "yes", "on")


def _probe_mongo(conn_id: str) -> dict[str, Any]:
    t0 = time.monotonic()
    try:
        client = mongo_client(conn_id, serverSelectionTimeoutMS=3000, connectTimeoutMS=3000)
        try:
            client.admin.command("ping")
            hello = client.admin.command("hello")
        finally:
            client.close()
        return {"ok": True, "ms": round((time.monotonic() - t0) * 1000), "primary": hello.get("isWritablePrimary"), "set": hello.get("setName")}
    except Exception as e:  # noqa: BLE001 - a probe reports, it does not raise
        return {"ok": False, "error": f"{type(e).__name__}: {str(e).splitlines()[0][:200]}"}


def _probe_redis(conn_id: str) -> dict[str, Any]:
    from backup_dr.core.redis.client import redis_client

    t0 = time.monotonic()
    try:
        with redis_client(conn_info(conn_id), timeout=3) as r:
            r.ping()
        return {"ok": True, "ms": round((time.monotonic() - t0) * 1000)}
    except Exception as e:  # noqa: BLE001
        return {"ok": False, "error": f"{type(e).__name__}: {str(e).splitlines()[0][:200]}"}


def _probe_http(url: str | None) -> dict[str, Any]:
    if not url:
        return {"ok": None, "error": "ops.app_health_url is not set"}
    t0 = time.monotonic()
    try:
        with urllib.request.urlopen(url, timeout=5) as resp:
            return {"ok": 200 <= resp.status < 300, "status": resp.status, "ms": round((time.monotonic() - t0) * 1000)}
    except Exception as e:  # noqa: BLE001
        return {"ok": False, "error": f"{type(e).__name__}: {e}"[:200]}


class _DrStep(BaseOperator):
    template_fields: Sequence[str] = ("scenario", "target_conn_id", "dry_run")
    ui_color = "#fbe9e7"

    def __init__(self, *, scenario: str, target_conn_id: str = "{{ params.target_conn_id }}", dry_run: Any = "{{ params.dry_run }}",
                 policy_path: str | None = None, steps: dict[str, str] | None = None, **kwargs):
        super().__init__(**kwargs)
        self.scenario = scenario
        self.target_conn_id = target_conn_id
        self.dry_run = dry_run
        self.policy_path = policy_path
        #: task ids of the steps this one reads results from (kind -> task id)
        self.steps = {"pick_backup": "pick_backup", "safety_backup": "safety_backup", "restore": "restore", **(steps or {})}

    def setup(self):
        policy = get_policy(self.policy_path)
        sc = policy.scenarios[self.scenario]
        cls = policy.classes[sc.backup_class]
        src_name = next(j.source for j in cls.jobs if policy.sources[j.source].type == "mongodb" and not j.metadata_only)
        return policy, sc, cls, policy.sources[src_name]

    def picked(self, context: Context) -> dict[str, Any]:
        return context["ti"].xcom_pull(task_ids=self.steps["pick_backup"]) or {}


class DetectOperator(_DrStep):
    """Probe MongoDB (production and the restore target), Redis and the app endpoint, and report
    what the failure looks like (the seed's detect_scenario), without failing: detection informs
    the humans; it does not decide for them."""

    def execute(self, context: Context) -> dict[str, Any]:
        policy, sc, cls, src = self.setup()
        report = {"mongodb": _probe_mongo(src.conn_id), "restore_target": _probe_mongo(self.target_conn_id),
                  "app": _probe_http(policy.ops.app_health_url)}
        redis_src = next((s for s in policy.sources.values() if s.type == "redis"), None)
        if redis_src is not None:
            report["redis"] = _probe_redis(redis_src.conn_id)
        down = [k for k in ("mongodb", "redis", "app") if k in report and report[k]["ok"] is False]
        if len(down) >= 3:
            seen = "full_infrastructure_failure"
        elif "mongodb" in down:
            seen = "database_server_failure"
        elif not down:
            seen = "data_corruption (every service answers: check the data)"
        else:
            seen = f"partial outage: {', '.join(down)} down"
        report["looks_like"] = seen
        for name, r in report.items():
            if isinstance(r, dict):
                self.log.info("detect %-15s %s", name, "UP" if r.get("ok") else f"DOWN ({r.get('error')})" if r.get("ok") is False else r.get("error"))
        self.log.info("this run: scenario %s; the probes look like: %s", self.scenario, seen)
        return report


class PickBackupOperator(_DrStep):
    """Choose what to restore: the newest full backup with a good copy (its bytes re-hashed here),
    or, for a point in time, check T is inside the restorable window. Falls back to the next
    store when a copy is corrupt, and says so."""

    template_fields: Sequence[str] = ("scenario", "target_conn_id", "dry_run", "point_in_time")

    def __init__(self, *, point_in_time: str = "{{ params.point_in_time }}", pitr_from_task: str | None = None, **kwargs):
        super().__init__(**kwargs)
        self.point_in_time = point_in_time
        self.pitr_from_task = pitr_from_task

    def _requested_time(self, context: Context) -> str | None:
        if self.pitr_from_task:
            answer = context["ti"].xcom_pull(task_ids=self.pitr_from_task) or {}
            entered = (answer.get("params_input") or {}).get("point_in_time")
            if entered:
                return str(entered)
        value = str(self.point_in_time or "").strip()
        return value if value and value != "None" else None

    def execute(self, context: Context) -> dict[str, Any]:
        from backup_dr.core.artifacts.manifest import parse_iso
        from backup_dr.core.catalog import Catalog, data_point
        from backup_dr.core.verify import verify_copy

        policy, sc, cls, src = self.setup()
        at_text = self._requested_time(context)
        with translate_errors():
            stores = {n: open_store(policy.stores[n]) for n in cls.stores}
            catalog = Catalog(stores)
            at = parse_iso(at_text) if at_text else None
            entry = catalog.newest(cls.name, src.name, "full", before=at)
            if entry is None:
                raise AirflowFailException(f"no full backup of {cls.name}/{src.name}" + (f" ending before {at_text}" if at else ""))
            manifest = entry.manifest()
            good = None
            for name in entry.complete_in:
                result = verify_copy(stores[name], manifest)
                if result["ok"]:
                    good = name
                    break
                self.log.error("copy of %s in %s is BAD (%s); trying the next store", entry.backup_id, name, "; ".join(result["problems"]))
            if good is None:
                raise AirflowFailException(f"every copy of {entry.backup_id} failed verification: {', '.join(entry.complete_in)}")
        point = datetime.fromtimestamp(data_point(manifest, "end")[0], timezone.utc)
        out = {"backup_id": entry.backup_id, "store": good, "backup_point": point.isoformat(), "database": manifest.details.get("database"),
               "counts": manifest.counts, "point_in_time": at.isoformat() if at else None,
               "recovery_point": (at or point).isoformat()}
        self.log.info("picked %s from %s (consistent at %s)%s", entry.backup_id, good, point.isoformat(),
                      f"; will replay the oplog up to {at.isoformat()}" if at else "")
        return out


class SafetyBackupOperator(_DrStep):
    """Dump the restore target's current data into the local store (kind ``safety``) before
    anything overwrites it; the restore step uses it to roll back, and it stays as an undo.
    An interrupted earlier restore into the target stops it first (:mod:`.dr_interrupted`)."""

    template_fields: Sequence[str] = ("scenario", "target_conn_id", "dry_run", "interrupted_restore")

    def __init__(self, *, interrupted_restore: str = "{{ params.interrupted_restore }}", **kwargs):
        super().__init__(**kwargs)
        self.interrupted_restore = interrupted_restore

    def execute(self, context: Context) -> dict[str, Any]:
        from backup_dr.core.mongo.safe_restore import take_safety_backup

        policy, sc, cls, src = self.setup()
        target_db = self.picked(context).get("database") or src.database
        local = local_store(policy, cls.name)
        if _truthy(self.dry_run):
            dry_run_check(self, local, target_db)
            self.log.warning("DRY RUN: would dump %s on %s as a safety backup", target_db, self.target_conn_id)
            return {"dry_run": True, "database": target_db}
        secrets = conn_info(self.target_conn_id).secrets
        with translate_errors(*secrets, conn_id=self.target_conn_id):
            client = mongo_client(self.target_conn_id)
            try:
                decided = settle(self, client, local, target_db, secrets)  # an interrupted restore into the target?
                if decided is not None:
                    return decided
                manifest = take_safety_backup(client, target_db, local, backup_class=cls.name, source=src.name,
                                              secrets=secrets)
            finally:
                client.close()
        if manifest is None:
            self.log.info("target %s has no database %s: nothing to protect", self.target_conn_id, target_db)
            return {"dry_run": False, "safety_backup": None, "database": target_db}
        return {"dry_run": False, "safety_backup": manifest.backup_id, "database": target_db, "counts": manifest.counts}


class MongoRecoverOperator(_DrStep):
    """Restore the picked backup into the target (safe restore: validate, roll back on failure),
    then replay the oplog slices up to the point in time when one was asked for."""

    template_fields: Sequence[str] = ("scenario", "target_conn_id", "dry_run", "drop")

    def __init__(self, *, drop: Any = "{{ params.drop }}", **kwargs):
        super().__init__(**kwargs)
        self.drop = drop

    def execute(self, context: Context) -> dict[str, Any]:
        from backup_dr.core.artifacts.layout import BackupId
        from backup_dr.core.artifacts.reader import load_manifest

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
            client = mongo_client(self.target_conn_id)
            try:
                safety = load_manifest(local, BackupId.parse(safety_id)) if safety_id else None
                if pick.get("point_in_time"):
                    from backup_dr.core.pitr import restore_to_time
                    from backup_dr.core.artifacts.manifest import parse_iso

                    stores = {n: open_store(policy.stores[n]) for n in cls.stores}
                    result = restore_to_time(client, stores, policy, src.name, parse_iso(pick["point_in_time"]), drop=_truthy(self.drop),
                                             workdir=work, safety_dir=str(local.root), secrets=secrets, journaling=journaling)
                    out = result if isinstance(result, dict) else result.as_dict()
                else:
                    from backup_dr.core.mongo.backup import restore_mongodb

                    store = open_store(policy.stores[pick["store"]])
                    manifest = load_manifest(store, BackupId.parse(pick["backup_id"]))
                    res = restore_mongodb(client, store, manifest, workdir=work, safety_dir=str(local.root), drop=_truthy(self.drop),
                                          secrets=secrets, safety_backup=safety, journaling=journaling)
                    out = res.as_dict() if hasattr(res, "as_dict") else dict(vars(res))
            finally:
                client.close()
        self.log.info("restored %s into %s", pick["backup_id"], self.target_conn_id)
        return {"dry_run": False, **{k: v for k, v in out.items() if isinstance(v, (str, int, float, bool, dict, list, type(None)))}}


class RedisRecoverOperator(_DrStep):
    """Load the newest Redis backup of the class into the scenario's Redis target over the network."""

    template_fields: Sequence[str] = ("scenario", "redis_target_conn_id", "dry_run")

    def __init__(self, *, redis_target_conn_id: str = "{{ params.redis_target_conn_id }}", **kwargs):
        super().__init__(**kwargs)
        self.redis_target_conn_id = redis_target_conn_id

    def execute(self, context: Context) -> dict[str, Any]:
        from backup_dr.core.catalog import Catalog
        from backup_dr.core.redis.load import load_into_server

        policy = get_policy(self.policy_path)
        candidates = [(c, j) for c in policy.classes.values() for j in c.jobs if policy.sources[j.source].type == "redis"]
        if not candidates:
            raise AirflowFailException("the policy has no Redis source to restore")
        with translate_errors():
            stores = {n: open_store(s) for n, s in policy.stores.items()}
            entries = [e for c, j in candidates for e in [Catalog({n: stores[n] for n in c.stores}).newest(c.name, j.source, "rdb")] if e]
            if not entries:
                raise AirflowFailException("no Redis backup exists in any store")
            entry = max(entries, key=lambda e: e.bid.stamp)
            if _truthy(self.dry_run):
                self.log.warning("DRY RUN: would load %s into %s", entry.backup_id, self.redis_target_conn_id)
                return {"dry_run": True, "backup_id": entry.backup_id}
            conn = conn_info(self.redis_target_conn_id)
            store = stores[entry.complete_in[0]]
            result = load_into_server(conn, store, entry.manifest(), replace=True, safety_store=local_store(policy))
        return {"dry_run": False, **result}


class FilesRecoverOperator(_DrStep):
    """Restore the newest archive of each listed files source to its policy path (the old content,
    if any, is kept aside as a safety copy by the core)."""

    def __init__(self, *, sources: list[str], **kwargs):
        super().__init__(**kwargs)
        self.sources = sources

    def execute(self, context: Context) -> dict[str, Any]:
        from backup_dr.core.catalog import Catalog
        from backup_dr.core.files import restore_files

        policy = get_policy(self.policy_path)
        out = {}
        with translate_errors():
            stores = {n: open_store(s) for n, s in policy.stores.items()}
            for name in self.sources:
                src = policy.sources[name]
                classes = [c for c in policy.classes.values() if any(j.source == name for j in c.jobs)]
                entries = [e for c in classes for e in [Catalog({n: stores[n] for n in c.stores}).newest(c.name, name, "files")] if e]
                if not entries:
                    raise AirflowFailException(f"no backup of files source {name!r} in any store")
                entry = max(entries, key=lambda e: e.bid.stamp)
                if _truthy(self.dry_run):
                    self.log.warning("DRY RUN: would restore %s into %s", entry.backup_id, src.path)
                    out[name] = {"dry_run": True, "backup_id": entry.backup_id}
                    continue
                with work_dir("backup-dr-files-") as work:
                    res = restore_files(stores[entry.complete_in[0]], entry.manifest(), src.path, workdir=work, overwrite=True,
                                        journal=JournalDir(local_store(policy).root))
                out[name] = res.as_dict()
        return out


class ValidateRestoreOperator(_DrStep):
    """Check the restored database independently of the restore: the ``validate`` command on every
    collection, every index of the backup present, document counts as the restore reported."""

    def execute(self, context: Context) -> dict[str, Any]:
        policy, sc, cls, src = self.setup()
        pick = self.picked(context)
        restored = context["ti"].xcom_pull(task_ids=self.steps["restore"]) or {}
        if _truthy(self.dry_run) or restored.get("dry_run"):
            self.log.warning("DRY RUN: nothing was restored, nothing to validate")
            return {"dry_run": True}
        db_name = pick.get("database") or src.database
        problems, counts = [], {}
        with translate_errors():
            client = mongo_client(self.target_conn_id)
            try:
                db = client[db_name]
                names = set(db.list_collection_names())
                for coll, expected in (pick.get("counts") or {}).items():
                    if coll not in names:
                        problems.append(f"collection {coll} is missing")
                        continue
                    res = db.command("validate", coll)
                    if not res.get("valid", False):
                        problems.append(f"{coll}: validate says invalid: {res.get('errors')}")
                    counts[coll] = db[coll].count_documents({})
                    if not pick.get("point_in_time") and counts[coll] != expected:
                        problems.append(f"{coll}: {counts[coll]} documents, the backup has {expected}")
            finally:
                client.close()
        if problems:
            raise AirflowFailException("restored data failed validation: " + "; ".join(problems))
        return {"dry_run": False, "database": db_name, "counts": counts}


class RepointOperator(_DrStep):
    """Tell the application where its data now lives: POST the new endpoints (host/port of the
    target connections, never credentials) to the policy's repoint webhook."""

    def execute(self, context: Context) -> dict[str, Any]:
        policy, sc, cls, src = self.setup()
        target = conn_info(self.target_conn_id)
        body = {"scenario": self.scenario, "dag_run": context["run_id"], "mongodb": {"conn_id": target.conn_id, "host": target.host, "port": target.port,
                "database": self.picked(context).get("database") or src.database}, "recovered_from": self.picked(context).get("backup_id")}
        if sc.redis_target_conn_id:
            r = conn_info(sc.redis_target_conn_id)
            body["redis"] = {"conn_id": r.conn_id, "host": r.host, "port": r.port}
        if _truthy(self.dry_run):
            self.log.warning("DRY RUN: would POST to the repoint webhook: %s", json.dumps(body, ensure_ascii=False))
            return {"dry_run": True, "payload": body}
        hook_conn = conn_info(policy.ops.repoint_webhook_conn_id)
        url = hook_conn.host if "://" in (hook_conn.host or "") else f"http://{hook_conn.host}:{hook_conn.port or 80}"
        if hook_conn.schema:
            url = url.rstrip("/") + "/" + hook_conn.schema.lstrip("/")
        headers = {"Content-Type": "application/json"}
        if hook_conn.password:
            headers["Authorization"] = f"Bearer {hook_conn.password}"
        req = urllib.request.Request(url, data=json.dumps(body).encode(), headers=headers, method="POST")
        try:
            with urllib.request.urlopen(req, timeout=30) as resp:
                status = resp.status
        except Exception as e:  # noqa: BLE001 - retried by Airflow; the message never holds the token
            raise BackupDRError(f"repoint webhook {hook_conn.conn_id!r} failed: {type(e).__name__}: {getattr(e, 'reason', e)}") from None
        if not 200 <= status < 300:
            raise AirflowFailException(f"repoint webhook {hook_conn.conn_id!r} answered HTTP {status}")
        self.log.info("application repointed via %s: %s", hook_conn.conn_id, body)
        return {"dry_run": False, "status": status, "payload": body}


class HealthCheckOperator(_DrStep):
    """After recovery: the target answers, holds the restored data, and the app's health URL is OK."""

    def execute(self, context: Context) -> dict[str, Any]:
        policy, sc, cls, src = self.setup()
        report = {"restore_target": _probe_mongo(self.target_conn_id), "app": _probe_http(policy.ops.app_health_url)}
        if sc.redis_target_conn_id and any(s.kind == "restore_redis" for s in sc.steps):
            report["redis_target"] = _probe_redis(sc.redis_target_conn_id)
        bad = {k: v for k, v in report.items() if v.get("ok") is False}
        if bad and not _truthy(self.dry_run):
            raise AirflowFailException("post-recovery health check failed: " + "; ".join(f"{k}: {v.get('error') or v}" for k, v in bad.items()))
        report["checked_at"] = datetime.now(timezone.utc).isoformat()
        return report
