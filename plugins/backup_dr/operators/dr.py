"""The disaster-recovery runbook steps as operators, thin over :mod:`backup_dr.core.dr`.

The seed's ``execute_recovery_step`` returned True for any step it did not implement; here
every step kind is a real operation (a core function the break-glass CLI runs too), and the
steps no machine can do (provisioning, DNS) are human approval tasks built by the factory.
Destructive steps honour the run's ``dry_run`` param (default on) and then say exactly what
they WOULD have done. An operator only resolves access the Airflow way (Connections, provider
hooks, XCom of the earlier steps) and translates core errors.
"""

from __future__ import annotations

from typing import Any, Sequence

from airflow.sdk import BaseOperator, Context

from backup_dr.core.dr import database, probes, services
from backup_dr.core.dr.run import DrRun, typed_time
from backup_dr.core.times import is_blank
from backup_dr.operators._common import conn_info, get_policy, local_store, mongo_client, open_store, translate_errors

__all__ = ["typed_time", "DetectOperator", "PickBackupOperator", "SafetyBackupOperator", "ValidateRestoreOperator",
           "RepointOperator", "HealthCheckOperator"]


class _DrStep(BaseOperator):
    """One scenario step: ``core_step(run, step)`` over a :class:`DrRun` built from this task."""

    template_fields: Sequence[str] = ("scenario", "target_conn_id", "dry_run")
    ui_color = "#fbe9e7"
    core_step = None  # set by each subclass: the core function it runs

    def __init__(self, *, scenario: str, target_conn_id: str = "{{ params.target_conn_id }}", dry_run: Any = "{{ params.dry_run }}",
                 policy_path: str | None = None, steps: dict[str, str] | None = None, **kwargs):
        super().__init__(**kwargs)
        self.scenario = scenario
        self.target_conn_id = target_conn_id
        self.dry_run = dry_run
        self.policy_path = policy_path
        #: task ids of the steps this one reads results from (kind -> task id)
        self.steps = {"pick_backup": "pick_backup", "safety_backup": "safety_backup", "restore": "restore", **(steps or {})}

    def dr_run(self, context: Context, **params: Any) -> DrRun:
        """The core's view of this run: access through Airflow, earlier results through XCom."""
        policy = get_policy(self.policy_path)
        ti = context["ti"]

        def stores(names):
            return {n: open_store(policy.stores[n]) for n in names}

        return DrRun(policy=policy, scenario=policy.scenarios[self.scenario], stores=stores,
                     local=lambda cls: local_store(policy, cls), conn=conn_info, mongo=mongo_client,
                     result=lambda kind: ti.xcom_pull(task_ids=self.steps.get(kind, kind)) or {}, log=self.log,
                     target_conn_id=self.target_conn_id, dry_run=self.dry_run, run_id=context.get("run_id"),
                     rerun_hint="trigger this DAG again with interrupted_restore=rollback or interrupted_restore=resume",
                     **params)

    def run_step(self, context: Context, step=None, *, conn_id: str | None = None, **params: Any) -> dict[str, Any]:
        run = self.dr_run(context, **params)
        secrets = conn_info(conn_id).secrets if conn_id and not run.dry_run else ()
        with translate_errors(*secrets, conn_id=conn_id):
            return type(self).core_step(run, step)

    def execute(self, context: Context) -> dict[str, Any]:
        return self.run_step(context)


class DetectOperator(_DrStep):
    """Probe MongoDB (production and the restore target), Redis and the app endpoint, and report
    what the failure looks like (the seed's detect_scenario), without failing: detection informs
    the humans; it does not decide for them."""

    core_step = probes.detect


class PickBackupOperator(_DrStep):
    """Choose what to restore (:func:`backup_dr.core.dr.database.pick_backup`): the newest full
    backup captured at or before the incident, or, for a point in time, the base and slices the
    point-in-time engine will replay. The point in time comes from the run's params or, when
    ``pitr_from_task`` is set, from the form of that approval task."""

    template_fields: Sequence[str] = ("scenario", "target_conn_id", "dry_run", "point_in_time", "incident_time")
    core_step = database.pick_backup

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
        return self.run_step(context, point_in_time=self._requested_time(context), incident_time=self.incident_time)


class SafetyBackupOperator(_DrStep):
    """Dump the restore target's current data into the local store (kind ``safety``) before
    anything overwrites it; the restore step uses it to roll back, and it stays as an undo.
    An interrupted earlier restore into the target stops it first
    (:mod:`backup_dr.core.dr.interrupted`)."""

    template_fields: Sequence[str] = ("scenario", "target_conn_id", "dry_run", "interrupted_restore")
    core_step = database.safety_backup

    def __init__(self, *, interrupted_restore: str = "{{ params.interrupted_restore }}", **kwargs):
        super().__init__(**kwargs)
        self.interrupted_restore = interrupted_restore

    def execute(self, context: Context) -> dict[str, Any]:
        return self.run_step(context, conn_id=self.target_conn_id, interrupted_restore=self.interrupted_restore)


class ValidateRestoreOperator(_DrStep):
    """Check the restored database independently of the restore: the ``validate`` command on every
    collection and its document count against the backup's counts at its consistent point."""

    core_step = database.validate


class RepointOperator(_DrStep):
    """Tell the application where its data now lives: POST the new endpoints (host/port of the
    target connections, never credentials) to the policy's repoint webhook."""

    core_step = services.repoint


class HealthCheckOperator(_DrStep):
    """After recovery: the target answers, holds the restored data, and the app's health URL is OK."""

    core_step = probes.health_check
