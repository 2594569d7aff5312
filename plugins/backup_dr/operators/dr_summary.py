"""The last task of every DR run: measure what was achieved and tell everyone.

The measuring, wording and keeping of the report is the core's
(:func:`backup_dr.core.dr.summary.summarize`, which ``dr run`` uses too); this task only
gathers the run from Airflow (task states, XCom; the run's start is when it was queued, which
the RTO deadline alert also watches), sends the lines on the alert routes, and fails when any
step failed, so the run shows red.
"""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Any, Sequence

from airflow.sdk import BaseOperator, Context
from airflow.sdk.exceptions import AirflowFailException

from backup_dr.alerts import send_alert
from backup_dr.core.artifacts.manifest import parse_iso
from backup_dr.core.dr.summary import summarize
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
        summary = summarize(policy, sc, local_store(policy, sc.backup_class), run_id=context["run_id"], started=started,
                            finished=parse_iso(health.get("checked_at")), failed=failed, pick=pick, restores=restores,
                            validated=validated, incident_time=self.incident_time,
                            dry_run=str(self.dry_run).lower() in ("true", "1", "yes"), now=now)
        report, lines = summary.report, summary.lines
        send_alert(policy.alerts, summary.severity, summary.title, lines, context)
        self.log.info("DR summary:\n  %s", "\n  ".join(lines))
        if failed:
            raise AirflowFailException(f"DR run failed at: {', '.join(failed)}")
        return report

