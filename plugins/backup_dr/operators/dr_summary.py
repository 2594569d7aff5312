"""The last task of every DR run: measure what was achieved and tell everyone.

Recovery time is measured from when the DR run was queued to the end of the health check;
the recovery point is the backup's consistent point (or the point in time replayed to);
data loss (achieved RPO) is the gap between the incident and that recovery point. Both are
compared with the scenario's targets, posted by email and Slack, and kept as a JSON report
in the local store. The task fails when any step failed, so the run shows red.
"""

from __future__ import annotations

import json
from datetime import datetime, timezone
from typing import Any, Sequence

from airflow.sdk import BaseOperator, Context
from airflow.sdk.exceptions import AirflowFailException

from backup_dr.alerts import send_alert
from backup_dr.core.artifacts.layout import ROOT
from backup_dr.core.durations import format_duration
from backup_dr.operators._common import get_policy, local_store


def _parse(text: str | None) -> datetime | None:
    if not text or str(text) == "None":
        return None
    dt = datetime.fromisoformat(str(text).replace("Z", "+00:00"))
    return dt if dt.tzinfo else dt.replace(tzinfo=timezone.utc)


class DrSummaryOperator(BaseOperator):
    """Summarise a DR run (runs whatever happened before it: ``trigger_rule=all_done``)."""

    template_fields: Sequence[str] = ("scenario", "incident_time", "dry_run")
    ui_color = "#ede7f6"

    def __init__(self, *, scenario: str, incident_time: str = "{{ params.incident_time }}", dry_run: Any = "{{ params.dry_run }}",
                 policy_path: str | None = None, steps: dict[str, str] | None = None, **kwargs):
        super().__init__(**kwargs)
        self.steps = {"pick_backup": "pick_backup", "health_check": "health_check", **(steps or {})}
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
        finished = _parse(health.get("checked_at")) or now
        recovery_time = finished - started
        recovery_point = _parse(pick.get("recovery_point"))
        incident = _parse(self.incident_time) or started
        data_loss = (incident - recovery_point) if recovery_point else None
        dry = str(self.dry_run).lower() in ("true", "1", "yes")
        rto_met = not failed and recovery_time <= sc.rto
        rpo_met = data_loss is not None and data_loss <= sc.rpo
        report = {
            "scenario": sc.name, "title": sc.title, "dag_run": context["run_id"], "dry_run": dry,
            "outcome": "failed" if failed else ("dry run" if dry else "recovered"), "failed_steps": failed,
            "started_at": started.isoformat(), "finished_at": finished.isoformat(),
            "recovery_time_seconds": round(recovery_time.total_seconds(), 1), "rto_seconds": sc.rto.total_seconds(), "rto_met": rto_met,
            "incident_time": incident.isoformat(), "recovery_point": recovery_point.isoformat() if recovery_point else None,
            "data_loss_seconds": round(data_loss.total_seconds(), 1) if data_loss is not None else None,
            "rpo_seconds": sc.rpo.total_seconds(), "rpo_met": rpo_met, "backup_id": pick.get("backup_id"), "store": pick.get("store"),
        }
        store = local_store(policy, sc.backup_class)
        key = f"{ROOT}/_reports/dr/{sc.name}/{now:%Y%m%dT%H%M%SZ}.json"
        store.put_bytes(key, (json.dumps(report, indent=2, ensure_ascii=False) + "\n").encode())
        lines = [
            f"outcome: {report['outcome'].upper()}" + (f" (failed steps: {', '.join(failed)})" if failed else ""),
            f"RTO: recovered in {format_duration(recovery_time)} vs target {format_duration(sc.rto)}: {'MET' if rto_met else 'MISSED'}",
            (f"RPO: recovery point {report['recovery_point']}, data loss {format_duration(data_loss)} vs target "
             f"{format_duration(sc.rpo)}: {'MET' if rpo_met else 'MISSED'}") if data_loss is not None else "RPO: no recovery point (no backup picked)",
            f"backup: {pick.get('backup_id') or 'none'} from {pick.get('store') or '-'}",
            f"report: {store.name}:{key}",
        ]
        if dry:
            lines.insert(0, "DRY RUN: nothing was restored or repointed; trigger again with dry_run=false to recover")
        severity = "critical" if failed else ("info" if rto_met and rpo_met else "warning")
        send_alert(policy.alerts, severity, f"DR {sc.name}: {report['outcome']}", lines, context)
        self.log.info("DR summary:\n  %s", "\n  ".join(lines))
        if failed:
            raise AirflowFailException(f"DR run failed at: {', '.join(failed)}")
        return report

