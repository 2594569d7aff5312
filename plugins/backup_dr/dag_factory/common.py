"""Shared pieces of every generated DAG: default args, schedules, deadlines, broken entries.

The factory reads only the policy file at parse time (no connection, no server, no store is
touched), so DAG files parse with every service down.
"""

from __future__ import annotations

import logging
from datetime import datetime, timedelta, timezone
from typing import Any

from backup_dr.alerts import deadline_alert, failure_notifiers
from backup_dr.core.durations import format_duration
from backup_dr.core.policy_model import Policy, Schedule

log = logging.getLogger(__name__)

START_DATE = datetime(2026, 1, 1, tzinfo=timezone.utc)
TAG = "backup-dr"


def default_args(policy: Policy, what: str) -> dict[str, Any]:
    """Retries with exponential backoff and email + Slack on every task failure."""
    d = policy.defaults
    return {
        "owner": d.owner,
        "retries": max(d.retries, 2),
        "retry_delay": d.retry_delay,
        "retry_exponential_backoff": 2.0,
        "max_retry_delay": d.max_retry_delay,
        "on_failure_callback": failure_notifiers(policy.alerts, what),
    }


def timetable(policy: Policy, schedule: Schedule):
    """Airflow schedule for a policy schedule: cron in the policy's timezone, an Asset, or None."""
    from airflow.sdk import CronTriggerTimetable

    if schedule.kind == "cron":
        return CronTriggerTimetable(schedule.cron, timezone=policy.defaults.timezone)
    if schedule.kind == "on_deploy":
        return [deploy_asset(schedule.asset_uri)]
    return None


def deploy_asset(uri: str):
    from airflow.sdk import Asset

    return Asset(uri=uri, name=uri.split("://", 1)[-1].strip("/").replace("/", "_") or "deploys")


def cron_timetable(policy: Policy, expr: str):
    from airflow.sdk import CronTriggerTimetable

    return CronTriggerTimetable(expr, timezone=policy.defaults.timezone)


def deadlines(policy: Policy, *, what: str, deadline: str, interval: timedelta) -> list:
    return [deadline_alert(policy.alerts, what=what, deadline=deadline, interval=interval)]


def objective_md(rpo: timedelta, rto: timedelta) -> str:
    return f"**RPO** {format_duration(rpo)} · **RTO** {format_duration(rto)}"


def broken_entries(policy: Policy, section: str) -> dict[str, list[tuple[str, str]]]:
    """Entries of a policy section that were dropped in lenient mode, with their ROOT problems
    (a scenario dropped because its class is invalid shows the class's own problem). Only names
    that can be DAG/task ids; the others are reported by ``backup_dr_policy_error``."""
    from backup_dr.core.policy_fields import _NAME

    return {n: issues for n, issues in policy.broken(section).items() if _NAME.match(n)}


#: Entries whose problems their own DAG (or task) reports: a failing DAG of the same id, a
#: failing task in the PITR DAG, the drill DAG for its scratch target.
_OWNED = ("classes.", "dr_scenarios.", "pitr.", "ops.drill_scratch")


def unowned_issues(policy: Policy) -> list[tuple[str, str]]:
    """Root problems of a leniently loaded policy that no other DAG reports, for
    ``backup_dr_policy_error``: an unknown top-level key (a misspelled section such as
    ``dr_scenarious``), a whole section that is missing or malformed, a field that fell back to
    its built-in default (``defaults.timezone``), a broken alert route (replaced by the fallback
    route), a broken store/source/objective nothing uses. Dropped silently, each would change
    what runs without anyone being told."""
    from backup_dr.core.policy_causes import dependents, entry_of, is_knock_on
    from backup_dr.core.policy_fields import _NAME

    issues, out = list(policy.issues), []
    for path, reason in issues:
        if is_knock_on(path, issues, policy.causes):
            continue
        entry = entry_of(path)
        own_dag = any(entry.startswith(o) for o in _OWNED) and bool(_NAME.match(entry.split(".", 1)[1]))
        if "." not in entry or not (own_dag or dependents(issues, policy.causes, entry)):  # a whole section: always here
            out.append((path, reason))
    return out


def build_policy_error_dag(policy: Policy, dag_id: str, issues: list[tuple[str, str]], what: str):
    """A DAG standing in for a broken policy entry: it FAILS (and alerts) every hour.

    A backup that silently stopped being taken is the worst outcome; an entry the
    validator rejected therefore becomes a loud DAG rather than a missing one, while the
    other DAGs keep loading.
    """
    from airflow.sdk import DAG
    from airflow.sdk.exceptions import AirflowFailException
    from airflow.providers.standard.operators.python import PythonOperator

    lines = [f"{p}: {r}" for p, r in issues]
    log.error("policy entry for %s is invalid; %s fails until fixed:\n  %s", what, dag_id, "\n  ".join(lines))

    def _fail(problems: list[str]) -> None:
        raise AirflowFailException(f"{what} is not being backed up: the policy entry is invalid:\n  " + "\n  ".join(problems))

    with DAG(
        dag_id=dag_id,
        schedule=cron_timetable(policy, "0 * * * *"),
        start_date=START_DATE,
        catchup=False,
        max_active_runs=1,
        is_paused_upon_creation=False,  # a new id (a class added with a typo) must alert, not wait paused
        tags=[TAG, "policy-error"],
        default_args={**default_args(policy, what), "retries": 0},
        doc_md=f"# {dag_id}: POLICY ERROR\n\n{what} could not be built from the policy file:\n\n"
        + "\n".join(f"- `{p}`: {r}" for p, r in issues)
        + "\n\nThis DAG fails every hour (and alerts) until the policy is fixed.",
    ) as dag:
        PythonOperator(task_id="policy_error", python_callable=_fail, op_args=[lines])
    return dag


def should_build(dag_id: str) -> bool:
    """False when a worker parses the file to run a task of another DAG (saves parse time)."""
    try:
        from airflow.sdk import get_parsing_context

        wanted = get_parsing_context().dag_id
    except Exception:  # noqa: BLE001 - outside a task run there is no parsing context
        return True
    return wanted is None or wanted == dag_id
