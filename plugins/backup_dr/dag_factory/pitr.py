"""``pitr_oplog_archive``: every PITR interval, archive an oplog slice per ``pitr`` entry.

Shape per source (``mongodb`` shown)::

    archive_oplog_mongodb ──> replicate_slice_mongodb[s3]         (skipped when no slice was written)
            └──> on_gap_mongodb ──> alert_gap_mongodb             (a NEW gap: email + Slack)
                              └──> trigger_full_backup_mongodb    (backup_<class>: a new chain starts after it)

A gap run ends SUCCESSFUL but visibly different: ``alert_gap``/``trigger_full_backup`` ran
(they are skipped on a normal run), the archive task's XCom says ``gap: true`` with the
reasons, its log has an ERROR line, and the health monitor reports the chain as critical
until a full backup bridges the gap. Failing the run instead would page twice (the gap
alert and the task-failure alert) and retry something retrying cannot fix.
"""

from __future__ import annotations

from datetime import timedelta

from backup_dr.core.durations import format_duration
from backup_dr.core.policy_model import PitrSpec, Policy
from backup_dr.core.routing import source_queue
from backup_dr.dag_factory.common import START_DATE, TAG, deadlines, default_args

DAG_ID = "pitr_oplog_archive"


def pitr_timetable(policy: Policy, interval: timedelta):
    """A cron on the clock when the interval divides an hour (or a day), else a fixed delta."""
    from airflow.sdk import CronTriggerTimetable, DeltaTriggerTimetable

    seconds = int(interval.total_seconds())
    cron = None
    if seconds % 60 == 0 and seconds > 0:
        minutes = seconds // 60
        if minutes < 60 and 60 % minutes == 0:
            cron = "* * * * *" if minutes == 1 else f"*/{minutes} * * * *"
        elif minutes % 60 == 0 and 24 % (minutes // 60) == 0:
            hours = minutes // 60
            cron = "0 0 * * *" if hours == 24 else f"0 */{hours} * * *"
    if cron:
        return CronTriggerTimetable(cron, timezone=policy.defaults.timezone)
    return DeltaTriggerTimetable(interval)


def gap_branch(result: dict, alert_task: str, trigger_task: str) -> list[str]:
    """Which gap tasks run: the alert for a new gap, the trigger when a full backup is needed."""
    chosen = []
    if result and result.get("new_gap"):
        chosen.append(alert_task)
    if result and result.get("needs_full_backup") and result.get("trigger_run_id"):
        chosen.append(trigger_task)
    return chosen


def _doc(policy: Policy, specs: list[PitrSpec], broken: dict[str, list[tuple[str, str]]]) -> str:
    errors = "".join(f"\n\n**POLICY ERROR: `{n}` is not archived** (its task `policy_error_{n}` fails every run): "
                     + "; ".join(f"`{p}`: {r}" for p, r in issues) for n, issues in sorted(broken.items()))
    rows = "\n".join(
        f"| `{s.source}` ({policy.sources[s.source].database}) | `{s.backup_class}` | {format_duration(s.interval)} | "
        f"{', '.join(s.stores)} |" for s in specs)
    return (
        "# Point-in-time recovery: oplog archiving\n\n"
        "Every interval the oplog entries of each protected database are saved as a compressed BSON **slice** "
        "(manifest written last) from exactly where the previous slice ended up to the majority-committed position, "
        "and replicated (verified byte for byte) to the PITR stores. The first slice of a chain starts at the end "
        "point of the newest full backup of the class.\n\n"
        "| source | chained after class | interval | stores |\n|---|---|---|---|\n" + rows + "\n\n"
        "**Gaps** (the oplog rolled over past the chain's end, or a slice is missing from the stores) are recorded "
        "once under `backup-dr-v1/_pitr/<class>/<source>/breaks/`, alerted by email + Slack (`alert_gap_*`), and a "
        "full backup is triggered (`trigger_full_backup_*` -> `backup_<class>`); a new chain starts after it. The "
        "run itself succeeds: the gap shows as these two tasks running, in the archive task's XCom (`gap: true`) "
        "and log, and as a critical PITR state in `ops_backup_health`.\n\n"
        "**Restore** to any second inside the restorable window (the WHOLE second: `14:30:00` includes every write "
        "made during 14:30:00; `Timestamp(t, i)` is exact): "
        "`python -m backup_dr restore mongo --at 2026-11-26T14:30:00+09:00 --to CONN_ID`." + errors
    )


def build_pitr_dag(policy: Policy):
    from airflow.providers.standard.operators.python import BranchPythonOperator, PythonOperator
    from airflow.providers.standard.operators.trigger_dagrun import TriggerDagRunOperator
    from airflow.sdk import DAG
    from airflow.sdk.definitions.xcom_arg import XComArg
    from airflow.sdk.exceptions import AirflowFailException

    from backup_dr.dag_factory.common import broken_entries
    from backup_dr.operators.pitr import OplogArchiveOperator, PitrGapAlertOperator, SliceReplicateOperator

    specs = [policy.pitr[name] for name in sorted(policy.pitr)]
    broken = broken_entries(policy, "pitr")
    interval = min((s.interval for s in specs), default=timedelta(minutes=15))
    with DAG(
        dag_id=DAG_ID,
        schedule=pitr_timetable(policy, interval),
        start_date=START_DATE,
        catchup=False,
        max_active_runs=1,
        tags=[TAG, "pitr", "ops"],
        default_args=default_args(policy, "PITR oplog archiving"),
        doc_md=_doc(policy, specs, broken),
        deadline=deadlines(policy, what="PITR oplog archiving", deadline="slice interval", interval=interval),
        dagrun_timeout=None,
    ) as dag:
        for spec in specs:
            s, cls = spec.source, policy.classes[spec.backup_class]
            # the source's queue (next to the database) but NOT its backup pool: a slice must not wait behind a dump
            near = {"queue": source_queue(policy, s)} if source_queue(policy, s) else {}
            archive = OplogArchiveOperator(task_id=f"archive_oplog_{s}", source=s, execution_timeout=spec.interval,
                                           doc_md=f"Archive the next oplog slice of `{s}` into `{cls.stores[0]}`.", **near)
            remote = [n for n in spec.stores if n != cls.stores[0]]
            if remote:
                replicate = SliceReplicateOperator.partial(task_id=f"replicate_slice_{s}", backup=XComArg(archive),
                                                           execution_timeout=spec.interval,
                                                           map_index_template=SliceReplicateOperator.STORE_LABEL).expand(store=remote)
                archive >> replicate
            alert = PitrGapAlertOperator(task_id=f"alert_gap_{s}", result=XComArg(archive),
                                         doc_md="Email + Slack for a new gap in the chain.")
            trigger = TriggerDagRunOperator(
                task_id=f"trigger_full_backup_{s}",
                trigger_dag_id=f"backup_{cls.name}",
                trigger_run_id="{{ ti.xcom_pull(task_ids='" + archive.task_id + "')['trigger_run_id'] }}",
                skip_when_already_exists=True,
                conf={"triggered_by": DAG_ID, "reason": "point-in-time recovery needs a full backup to chain from"},
                doc_md=f"Start `backup_{cls.name}`: the new chain of `{s}` begins at its end point (one run per gap).",
            )
            branch = BranchPythonOperator(task_id=f"on_gap_{s}", python_callable=gap_branch,
                                          op_kwargs={"result": XComArg(archive), "alert_task": alert.task_id,
                                                     "trigger_task": trigger.task_id})
            archive >> branch >> [alert, trigger]
        for name, issues in sorted(broken.items()):
            lines = [f"{p}: {r}" for p, r in issues]

            def _fail(problems: list[str], name: str = name) -> None:
                raise AirflowFailException(f"PITR for {name} is not running: the policy entry is invalid:\n  " + "\n  ".join(problems))

            PythonOperator(task_id=f"policy_error_{name}", python_callable=_fail, op_args=[lines])
    return dag
