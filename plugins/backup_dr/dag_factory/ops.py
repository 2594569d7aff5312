"""Operations DAGs: ``ops_backup_health`` (the RPO monitor) and ``ops_restore_drill``."""

from __future__ import annotations

from datetime import timedelta

from backup_dr.core.durations import format_duration
from backup_dr.core.artifacts.layout import kind_for
from backup_dr.core.policy_model import Policy
from backup_dr.dag_factory.common import START_DATE, TAG, cron_timetable, deadlines, default_args


def build_health_dag(policy: Policy):
    from airflow.sdk import DAG, Param

    from backup_dr.operators.verify import BackupHealthOperator

    rows = "\n".join(
        f"| `{c.name}` | {format_duration(c.objective.rpo)} | {format_duration(c.objective.rto)} | {', '.join(c.stores)} |"
        for c in policy.classes.values()
    )
    with DAG(
        dag_id="ops_backup_health",
        schedule=cron_timetable(policy, policy.ops.health_schedule),
        start_date=START_DATE,
        catchup=False,
        max_active_runs=1,
        tags=[TAG, "ops", "health"],
        default_args=default_args(policy, "backup health monitor"),
        doc_md=(
            "# Backup health / RPO monitor\n\nFor every class and source: the age of the newest verified backup in "
            "every store against the RPO, store reachability and capacity, and the last restore drill against the RTO. "
            "A deadline cannot see a backup run that never happened; this check can. The JSON report is kept in the "
            "local store (`backup-dr-v1/_reports/health/latest.json`); warning/critical sends an alert with the reasons.\n\n"
            "| class | RPO | RTO | stores |\n|---|---|---|---|\n" + rows
        ),
        deadline=deadlines(policy, what="backup health monitor", deadline="run time", interval=timedelta(minutes=30)),
        params={"as_of": Param("", type="string", description="evaluate as of this ISO time (what-if); empty = now")},
    ) as dag:
        BackupHealthOperator(task_id="check_backup_health", as_of="{{ params.as_of }}", execution_timeout=timedelta(minutes=20))
    return dag


def build_drill_dag(policy: Policy):
    from airflow.sdk import DAG

    from backup_dr.operators.verify import VerifyRestoreOperator

    max_rto = max((c.objective.rto for c in policy.classes.values()), default=timedelta(hours=4))
    with DAG(
        dag_id="ops_restore_drill",
        schedule=cron_timetable(policy, policy.ops.drill_schedule),
        start_date=START_DATE,
        catchup=False,
        max_active_runs=1,
        tags=[TAG, "ops", "drill"],
        default_args=default_args(policy, "restore drill"),
        doc_md=(
            "# Restore drill\n\nRestores the newest backup of every class and source into a SCRATCH target (a separate "
            "MongoDB instance, a fresh redis-server, a temp directory; never production), checks it against its manifest, "
            "times it, and records the result next to the backup. A task fails, and alerts, when verification fails or "
            "the restore took longer than the class RTO. The seed's `mongorestore --dryRun` verified nothing; this does."
        ),
        deadline=deadlines(policy, what="restore drill", deadline="RTO", interval=max_rto),
    ) as dag:
        for cls in policy.classes.values():
            for job in cls.jobs:
                src = policy.sources[job.source]
                kind = kind_for(src, metadata_only=job.metadata_only)
                VerifyRestoreOperator(
                    task_id=f"drill_{cls.name}_{job.source}" + ("_schema" if job.metadata_only else ""),
                    backup_class=cls.name,
                    source=job.source,
                    kind=kind,
                    execution_timeout=cls.objective.rto * 2,
                    doc_md=f"Restore the newest `{kind}` backup of `{cls.name}/{job.source}` to scratch; RTO {format_duration(cls.objective.rto)}.",
                )
    return dag
