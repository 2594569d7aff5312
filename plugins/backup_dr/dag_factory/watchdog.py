"""The DAGs built when the policy file cannot be loaded at all (see :mod:`.loader`).

* ``backup_dr_policy_error`` (hourly, not paused on creation): fails and alerts through the
  fallback route with the file, the line and the parser's message;
* ``ops_backup_health`` (degraded, hourly): backup ages from the fallback stores.

Neither can take anything from the policy (owner, timezone, alert routes): built-in
defaults and the fallback configuration only, in UTC.
"""

from __future__ import annotations

from datetime import timedelta

from backup_dr.core.errors import PolicyError
from backup_dr.core.policy_fallback import Fallback
from backup_dr.core.policy_model import Defaults
from backup_dr.dag_factory.common import START_DATE, TAG

WATCHDOG_SCHEDULE = "0 * * * *"
DEGRADED_HEALTH_SCHEDULE = "15 * * * *"


def _doc(error: PolicyError, fallback: Fallback, what: str) -> str:
    problems = "\n".join(f"- {p}" for p in fallback.problems) or "- none"
    return (
        f"# {what}\n\nThe policy file cannot be loaded, so no backup, PITR, drill or DR DAG can be built:\n\n"
        f"```\n{error}\n```\n\n"
        f"Alerts go to the **fallback route** (the policy's own routes are in the broken file): {fallback.describe()}. "
        "Configure it with the Airflow connections `backup_dr_fallback_smtp` / `backup_dr_fallback_slack` and "
        "`$BACKUP_DR_FALLBACK_EMAIL_TO` (README, monitoring section). Problems of that configuration:\n\n"
        f"{problems}\n\nFix the file (`python -m backup_dr policy check`); every DAG comes back at the next parse."
    )


def _dag(dag_id: str, schedule: str, doc: str, tags: list[str]):
    from airflow.sdk import DAG, CronTriggerTimetable

    return DAG(
        dag_id=dag_id,
        schedule=CronTriggerTimetable(schedule, timezone="UTC"),
        start_date=START_DATE,
        catchup=False,
        max_active_runs=1,
        is_paused_upon_creation=False,  # it appears exactly when something is wrong: it must run
        tags=[TAG, *tags],
        default_args={"owner": Defaults.owner, "retries": 0},
        doc_md=doc,
    )


def build_watchdog_dag(error: PolicyError, fallback: Fallback):
    from backup_dr.operators.watchdog import PolicyWatchdogOperator

    with _dag("backup_dr_policy_error", WATCHDOG_SCHEDULE, _doc(error, fallback, "POLICY FILE CANNOT BE LOADED"),
              ["policy-error", "watchdog"]) as dag:
        PolicyWatchdogOperator(task_id="policy_error", execution_timeout=timedelta(minutes=5),
                               doc_md="Fails and alerts (fallback route) while the policy file cannot be loaded.")
    return dag


def build_degraded_health_dag(error: PolicyError, fallback: Fallback):
    from backup_dr.operators.watchdog import DegradedHealthOperator

    with _dag("ops_backup_health", DEGRADED_HEALTH_SCHEDULE, _doc(error, fallback, "Backup health (DEGRADED: no policy)"),
              ["ops", "health", "degraded"]) as dag:
        DegradedHealthOperator(task_id="check_backup_health", execution_timeout=timedelta(minutes=20),
                               doc_md="Backup ages from the fallback stores; no RPO can be judged without the policy.")
    return dag
