"""One manually triggered DAG per DR scenario: ``dr_<scenario>``.

The scenario's steps run in order as real tasks; ``approval`` steps (provisioning, DNS,
damage analysis: what no machine here can do) are Airflow human-in-the-loop approvals that
show the operator what to do and WAIT; a rejection fails the run. The RTO is the DAG's
deadline, and the last task measures the recovery time and point and posts the summary.
"""

from __future__ import annotations

from backup_dr.core.dr.run import database_source
from backup_dr.core.dr.scenario import plan
from backup_dr.core.durations import format_duration
from backup_dr.core.policy_model import Policy, Scenario, Step
from backup_dr.core.times import POLICY_TIMEZONE, BadTimeInput, TimeRule, is_blank, parse_user_time
from backup_dr.dag_factory.common import START_DATE, TAG, deadlines, default_args, objective_md

_DRY_RUN_NOTE = "dry_run is ON by default: the run rehearses every step and changes nothing. Set dry_run=false to recover."


def _approval(sc: Scenario, step: Step, body: str, **kw):
    from airflow.providers.standard.operators.hitl import ApprovalOperator

    return ApprovalOperator(
        task_id=step.name,
        subject=f"[{sc.name}] {step.title}",
        body=body,
        fail_on_reject=True,
        retries=0,
        response_timeout=sc.rto * 4,
        doc_md=f"Human step: {step.instructions}",
        **kw,
    )


def _body(sc: Scenario, step: Step) -> str:
    return (
        f"**{sc.title}** (RPO {format_duration(sc.rpo)}, RTO {format_duration(sc.rto)})\n\n{step.instructions}\n\n"
        "Run parameters: target `{{ params.target_conn_id }}`, dry_run `{{ params.dry_run }}`, "
        "point in time: {{ echo_time(params.point_in_time) }}; incident time: {{ echo_time(params.incident_time) }}."
        "\n\nApprove when done; Reject to stop the recovery."
    )


def time_help(policy: Policy) -> str:
    """How a typed time is read under this policy (param descriptions, forms)."""
    rule = TimeRule.of(policy)
    naive = (f"without one it is read in {rule.timezone}" if rule.naive == POLICY_TIMEZONE
             else "a time without an offset is refused")
    return f"ISO 8601 with an offset (e.g. 2026-11-26T14:30:00+09:00 or ...Z); {naive}; the whole second is included"


def time_echo(policy: Policy):
    """The approval bodies' ``echo_time`` macro: what a typed time param resolves to, so the
    person approving sees the instant (UTC and the policy's zone) before anything is restored."""
    rule = TimeRule.of(policy)

    def echo_time(text) -> str:
        if is_blank(text):
            return "not set"
        try:
            return parse_user_time(str(text), rule, allow_timestamp=True).echo()
        except BadTimeInput as e:
            return f"NOT USABLE: {e.message} ({e.hint})" if e.hint else f"NOT USABLE: {e.message}"

    return echo_time


def _doc(policy: Policy, sc: Scenario) -> str:
    steps = "\n".join(f"{i}. **{s.title}** (`{s.name}`: {s.kind}{', human approval' if s.kind == 'approval' else ''})" for i, s in enumerate(sc.steps, 1))
    return (
        f"# DR scenario: {sc.title}\n\n{objective_md(sc.rpo, sc.rto)}: the RTO is this DAG's deadline (an alert fires when a "
        f"run is not finished {format_duration(sc.rto)} after it was queued).\n\n{steps}\n\n"
        f"Then `summary` measures the recovery time and recovery point against the targets and posts them by email and Slack.\n\n"
        f"**{_DRY_RUN_NOTE}** Other params: `target_conn_id` (MongoDB to restore into), `point_in_time` ({time_help(policy)}), "
        "`drop` (allow overwriting a non-empty target), `incident_time` (when the failure happened: backups captured after "
        "it are not used; default the run's start; used for the achieved RPO), `interrupted_restore` (`fail` | `rollback` | `resume`: "
        "what `safety_backup` does when an earlier restore into the target was killed half-way). Typed times are echoed back in UTC and the "
        "policy's time zone in the approval, the pick_backup log/XCom and the summary before anything changes.\n\n"
        f"Without Airflow: `python -m backup_dr dr run {sc.name}` (add `--dry-run` to rehearse; README break-glass section)."
    )


def build_dr_dag(policy: Policy, sc: Scenario):
    from airflow.sdk import DAG, Param, TriggerRule

    from backup_dr.operators import dr, dr_restore
    from backup_dr.operators.dr_summary import DrSummaryOperator

    machine = {"detect": dr.DetectOperator, "safety_backup": dr.SafetyBackupOperator, "validate": dr.ValidateRestoreOperator,
              "repoint": dr.RepointOperator, "health_check": dr.HealthCheckOperator}
    restores = {"restore": dr_restore.MongoRecoverOperator, "restore_redis": dr_restore.RedisRecoverOperator,
                 "restore_files": dr_restore.FilesRecoverOperator}

    src = database_source(policy, policy.classes[sc.backup_class])
    names = {s.kind: s.name for s in sc.steps if s.kind != "approval"}
    steps_map = {k: names.get(k, k) for k in ("pick_backup", "safety_backup", "restore", "restore_redis", "restore_files",
                                              "validate", "health_check")}
    params = {
        "target_conn_id": Param(sc.target_conn_id or src.conn_id, type="string", description="Airflow connection of the MongoDB to restore into"),
        "redis_target_conn_id": Param(sc.redis_target_conn_id or "", type="string", description="Airflow connection of the Redis to load"),
        "point_in_time": Param("", type="string", description=f"restore to this time ({time_help(policy)}); empty = newest backup"),
        "incident_time": Param("", type="string", description=f"when the failure happened ({time_help(policy)}); backups captured "
                               "after it are not used; empty = when this run started"),
        "dry_run": Param(True, type="boolean", description=_DRY_RUN_NOTE),
        "drop": Param(False, type="boolean", description="allow overwriting a non-empty target database"),
        "interrupted_restore": Param("fail", type="string", enum=["fail", "rollback", "resume"],
                                     description="when an earlier restore into the target was interrupted (killed): fail "
                                                 "and say so, roll the target back first, or resume it with its safety backup"),
    }
    common = {"scenario": sc.name, "steps": steps_map}
    with DAG(
        dag_id=f"dr_{sc.name}",
        schedule=None,
        start_date=START_DATE,
        catchup=False,
        max_active_runs=1,
        tags=[TAG, "dr", sc.name],
        default_args=default_args(policy, f"DR scenario {sc.name}"),
        doc_md=_doc(policy, sc),
        params=params,
        deadline=deadlines(policy, what=f"DR scenario {sc.name}", deadline="RTO", interval=sc.rto),
        user_defined_macros={"echo_time": time_echo(policy)},
    ) as dag:
        tasks = []
        # the approval right before a point-in-time pick_backup collects the time from the human
        pitr_at = next((i for i, s in enumerate(sc.steps) if s.kind == "pick_backup" and s.point_in_time), None)
        analyze = None
        if pitr_at is not None:
            analyze = next((s.name for s in reversed(sc.steps[:pitr_at]) if s.kind == "approval"), None)
        for planned in plan(policy, sc, target="{{ params.target_conn_id }}"):
            step = planned.step
            if planned.human:  # approvals, and a repoint with no webhook configured
                extra = {}
                if step.name == analyze:
                    extra["params"] = {"point_in_time": Param("", type="string", description=f"restore to this time ({time_help(policy)})")}
                task = _approval(sc, step, _body(sc, step), **extra)
            elif step.kind == "pick_backup":
                task = dr.PickBackupOperator(task_id=step.name, pitr_from_task=analyze if step.point_in_time else None, **common)
            elif step.kind in restores:
                extra = {"sources": list(step.sources)} if step.kind == "restore_files" else {}
                task = restores[step.kind](task_id=step.name, execution_timeout=sc.rto, **extra, **common)
            else:
                task = machine[step.kind](task_id=step.name, **common)
            task.doc_md = task.doc_md or f"Step: {step.title}"
            if tasks:
                tasks[-1] >> task
            tasks.append(task)
        summary = DrSummaryOperator(task_id="summary", trigger_rule=TriggerRule.ALL_DONE, **common)
        tasks[-1] >> summary
    return dag
