"""The last task of every DR run: measure what was achieved and tell everyone.

* **Recovery time achieved** (compared with the RTO): from the first byte a restore step
  fetched from a store to the validated target — downloads, restore, replay and validation
  included (:func:`backup_dr.core.recovery.recovery_time`). The whole run (queued → health
  check, human approvals included) is reported beside it; the RTO deadline alert watches
  that one while the run is going.
* **Recovery point**: the picked backup's capture point (its consistent point, never its
  slot), or the point in time replayed to. **Data loss** (achieved RPO): the incident time
  (typed by the one parser, default the run's start) minus the recovery point.

Both are compared with the scenario's targets, posted by email and Slack, and kept as a
JSON report in the local store. The task fails when any step failed, so the run shows red.
"""

from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone
from typing import Any, Sequence

from airflow.sdk import BaseOperator, Context
from airflow.sdk.exceptions import AirflowFailException

from backup_dr.alerts import send_alert
from backup_dr.core.artifacts.layout import ROOT
from backup_dr.core.artifacts.manifest import parse_iso
from backup_dr.core.durations import format_duration
from backup_dr.core.recovery import recovery_time
from backup_dr.core.times import BadTimeInput, TimeRule, is_blank, parse_user_time
from backup_dr.operators._common import get_policy, local_store


_RESTORE_STEPS = ("restore", "restore_redis", "restore_files")


class DrSummaryOperator(BaseOperator):
    """Summarise a DR run (runs whatever happened before it: ``trigger_rule=all_done``)."""

    template_fields: Sequence[str] = ("scenario", "incident_time", "dry_run")
    ui_color = "#ede7f6"

    def __init__(self, *, scenario: str, incident_time: str = "{{ params.incident_time }}", dry_run: Any = "{{ params.dry_run }}",
                 policy_path: str | None = None, steps: dict[str, str] | None = None, **kwargs):
        super().__init__(**kwargs)
        self.steps = {"pick_backup": "pick_backup", "health_check": "health_check", "validate": "validate",
                      **{k: k for k in _RESTORE_STEPS}, **(steps or {})}
        self.scenario = scenario
        self.incident_time = incident_time
        self.dry_run = dry_run
        self.policy_path = policy_path

    def execute(self, context: Context) -> dict[str, Any]:
        policy = get_policy(self.policy_path)
        sc = policy.scenarios[self.scenario]
        dag_run, ti = context["dag_run"], context["ti"]
        now = datetime.now(timezone.utc)
        started = getattr(dag_run, "queued_at", None) or getattr(dag_run, "start_date", None) or now
        started = started if started.tzinfo else started.replace(tzinfo=timezone.utc)
        raw = ti.get_task_states(dag_id=ti.dag_id, run_ids=[ti.run_id]).get(ti.run_id, {})
        states = {task: str(state) for task, state in raw.items() if task != self.task_id}
        failed = sorted(k for k, v in states.items() if v in ("failed", "upstream_failed"))
        pick = ti.xcom_pull(task_ids=self.steps["pick_backup"]) or {}
        health = ti.xcom_pull(task_ids=self.steps["health_check"]) or {}
        restores = [ti.xcom_pull(task_ids=self.steps[k]) or {} for k in _RESTORE_STEPS if self.steps.get(k)]
        validated = (ti.xcom_pull(task_ids=self.steps["validate"]) or {}).get("validated_at")
        finished = parse_iso(health.get("checked_at")) or now
        run_time = finished - started
        achieved = recovery_time(restores, validated)
        recovery_time_s = achieved["seconds"]
        recovery_point = parse_iso(pick.get("recovery_point"))
        incident_in, incident_error = None, None
        try:
            if not is_blank(self.incident_time):
                incident_in = parse_user_time(str(self.incident_time), TimeRule.of(policy), what="incident_time")
        except BadTimeInput as e:  # reported; the run's start stands in (the pick step failed on it already)
            incident_error = f"{e.message} ({e.hint})" if e.hint else e.message
        incident = incident_in.utc if incident_in else started
        data_loss = (incident - recovery_point) if recovery_point else None
        dry = str(self.dry_run).lower() in ("true", "1", "yes")
        rto_met = not failed and recovery_time_s is not None and recovery_time_s <= sc.rto.total_seconds()
        rpo_met = data_loss is not None and data_loss <= sc.rpo
        report = {
            "scenario": sc.name, "title": sc.title, "dag_run": context["run_id"], "dry_run": dry,
            "outcome": "failed" if failed else ("dry run" if dry else "recovered"), "failed_steps": failed,
            "started_at": started.isoformat(), "finished_at": finished.isoformat(),
            "recovery_time_seconds": recovery_time_s, "recovery_time_from": achieved["from"], "recovery_time_to": achieved["to"],
            "run_seconds": round(run_time.total_seconds(), 1), "rto_seconds": sc.rto.total_seconds(), "rto_met": rto_met,
            "incident_time": incident.isoformat(), "incident_time_typed": incident_in.as_dict() if incident_in else None,
            "point_in_time_typed": pick.get("typed_point_in_time"),
            "recovery_point": recovery_point.isoformat() if recovery_point else None,
            "data_loss_seconds": round(data_loss.total_seconds(), 1) if data_loss is not None else None,
            "rpo_seconds": sc.rpo.total_seconds(), "rpo_met": rpo_met, "backup_id": pick.get("backup_id"),
            "store": next((r.get("store") for r in restores if r.get("store")), pick.get("store")),
        }
        store = local_store(policy, sc.backup_class)
        key = f"{ROOT}/_reports/dr/{sc.name}/{now:%Y%m%dT%H%M%SZ}.json"
        store.put_bytes(key, (json.dumps(report, indent=2, ensure_ascii=False) + "\n").encode())
        lines = [
            f"outcome: {report['outcome'].upper()}" + (f" (failed steps: {', '.join(failed)})" if failed else ""),
            (f"RTO: recovered in {format_duration(timedelta(seconds=recovery_time_s))} (first byte fetched → validated target) "
             f"vs target {format_duration(sc.rto)}: {'MET' if rto_met else 'MISSED'}") if recovery_time_s is not None
            else "RTO: not measured (nothing was fetched or restored)",
            f"whole run: {format_duration(run_time)} (queued → health check, human steps included)",
            (f"RPO: recovery point {report['recovery_point']}, data loss {format_duration(data_loss)} vs target "
             f"{format_duration(sc.rpo)}: {'MET' if rpo_met else 'MISSED'}") if data_loss is not None else "RPO: no recovery point (no backup picked)",
            f"backup: {pick.get('backup_id') or 'none'} (data captured {pick.get('captured_at') or '-'}) from {report['store'] or '-'}",
            f"report: {store.name}:{key}",
        ]
        for what, t in (("point in time", (pick.get("typed_point_in_time") or {}).get("echo")),
                        ("incident time", incident_in.echo() if incident_in else incident_error)):
            if t:
                lines.append(f"{what}: {t}")
        if dry:
            lines.insert(0, "DRY RUN: nothing was restored or repointed; trigger again with dry_run=false to recover")
        severity = "critical" if failed else ("info" if dry or (rto_met and rpo_met) else "warning")
        send_alert(policy.alerts, severity, f"DR {sc.name}: {report['outcome']}", lines, context)
        self.log.info("DR summary:\n  %s", "\n  ".join(lines))
        if failed:
            raise AirflowFailException(f"DR run failed at: {', '.join(failed)}")
        return report

