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

from backup_dr.core.catalog import Catalog
from backup_dr.core.errors import BackupDRError
from backup_dr.core.times import TimeRule, UserTime, is_blank, parse_user_time
from backup_dr.operators._common import conn_info, get_policy, local_store, mongo_client, open_store, translate_errors
from backup_dr.operators.dr_interrupted import dry_run_check, settle


def _truthy(value: Any) -> bool:
    return value is True or str(value).strip().lower() in ("true", "1", "yes", "on")


def typed_time(policy, text: Any, what: str, *, allow_timestamp: bool = False) -> UserTime | None:
    """A DR param / form time by the one rule (:mod:`backup_dr.core.times`); None when unset."""
    if is_blank(text):
        return None
    return parse_user_time(str(text), TimeRule.of(policy), what=what, allow_timestamp=allow_timestamp)


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
    """Choose what to restore (:func:`backup_dr.core.recovery.pick_mongodb`): the newest full
    backup captured at or before the incident, or, for a point in time, the base and slices
    the point-in-time engine will replay (refused outside the restorable window). The typed
    time is echoed back (UTC and the policy's zone) in the log and XCom BEFORE anything is
    changed. A real run downloads nothing here: the restore step verifies the copy as it
    fetches it (one download); a dry run re-hashes the chosen copy, falling back to the next."""

    template_fields: Sequence[str] = ("scenario", "target_conn_id", "dry_run", "point_in_time", "incident_time")

    def __init__(self, *, point_in_time: str = "{{ params.point_in_time }}", incident_time: str = "{{ params.incident_time }}",
                 pitr_from_task: str | None = None, **kwargs):
        super().__init__(**kwargs)
        self.point_in_time = point_in_time
        self.incident_time = incident_time
        self.pitr_from_task = pitr_from_task

    def _requested_time(self, context: Context) -> str | None:
        if self.pitr_from_task:
            answer = context["ti"].xcom_pull(task_ids=self.pitr_from_task) or {}
            entered = (answer.get("params_input") or {}).get("point_in_time")
            if not is_blank(entered):
                return str(entered)
        return None if is_blank(self.point_in_time) else str(self.point_in_time)

    def execute(self, context: Context) -> dict[str, Any]:
        from backup_dr.core.recovery import pick_mongodb, rehearse_copy

        policy, sc, cls, src = self.setup()
        with translate_errors():
            at = typed_time(policy, self._requested_time(context), "point_in_time", allow_timestamp=True)
            incident = typed_time(policy, self.incident_time, "incident_time")
            if at is not None:
                self.log.info("point in time: %s", at.echo())
            if incident is not None:
                self.log.info("incident time: %s", incident.echo())
            stores = {n: open_store(policy.stores[n]) for n in cls.stores}
            out = pick_mongodb(policy, stores, cls.name, src.name, at=at, incident=incident.utc if incident else None)
            if _truthy(self.dry_run):
                entry = Catalog(stores).find(out["backup_id"])
                out["rehearsal"] = rehearse_copy(entry, stores, out["order"])
                out["store"] = out["rehearsal"]["store"]
        self.log.info("picked %s (data captured at %s, slot %s); copies in order: %s%s", out["backup_id"], out["captured_at"],
                      out["slot"], ", ".join(f"{c['store']} ({'verified' if c['verified'] else 'FAILED' if c['verified'] is False else 'unchecked'})"
                                             for c in out["copies"]),
                      f"; will replay the oplog up to {out['pitr']['replay_until']}" if at else "")
        return {**out, "incident_time": incident.as_dict() if incident else None}


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


class ValidateRestoreOperator(_DrStep):
    """Check the restored database independently of the restore: the ``validate`` command on every
    collection and its document count against the backup's counts at its consistent point
    (:func:`backup_dr.core.mongo.end_counts.expected_counts`, the same the restore validated)."""

    def execute(self, context: Context) -> dict[str, Any]:
        policy, sc, cls, src = self.setup()
        pick = self.picked(context)
        restored = context["ti"].xcom_pull(task_ids=self.steps["restore"]) or {}
        if _truthy(self.dry_run) or restored.get("dry_run"):
            self.log.warning("DRY RUN: nothing was restored, nothing to validate")
            return {"dry_run": True}
        from backup_dr.core.artifacts.layout import BackupId
        from backup_dr.core.artifacts.reader import load_manifest
        from backup_dr.core.mongo.end_counts import expected_counts

        db_name = pick.get("database") or src.database
        problems, counts = [], {}
        with translate_errors():
            # what the backup holds at its consistent point (its oplog window replayed), not what its dump read
            manifest = load_manifest(open_store(policy.stores[pick["store"]]), BackupId.parse(pick["backup_id"]))
            expected = expected_counts(manifest)
            wanted = expected.counts or dict.fromkeys(manifest.counts)  # unknown: validate them, compare nothing
            if not expected.counts and not pick.get("point_in_time"):
                self.log.warning("document counts are not compared: %s", expected.source)
            client = mongo_client(self.target_conn_id)
            try:
                db = client[db_name]
                names = set(db.list_collection_names())
                for coll, want in wanted.items():
                    if coll not in names:
                        if want is not None or not pick.get("point_in_time"):
                            problems.append(f"collection {coll} is missing")
                        continue
                    res = db.command("validate", coll)
                    if not res.get("valid", False):
                        problems.append(f"{coll}: validate says invalid: {res.get('errors')}")
                    counts[coll] = db[coll].count_documents({})
                    if not pick.get("point_in_time") and want is not None and counts[coll] != want:
                        problems.append(f"{coll}: {counts[coll]} documents, the backup holds {want} at its consistent point")
            finally:
                client.close()
        if problems:
            raise AirflowFailException("restored data failed validation: " + "; ".join(problems))
        return {"dry_run": False, "database": db_name, "counts": counts, "validated_at": datetime.now(timezone.utc).isoformat()}


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
