"""Restore drills and the health monitor.

``VerifyRestoreOperator`` proves a backup is restorable by restoring it into a SCRATCH
target (a separate MongoDB instance, a fresh redis-server, a temp directory), checking it
against the manifest and timing it; the result is kept as a ``drill`` record next to the
backup, which the health check and the UI read. ``BackupHealthOperator`` is the RPO check.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any, Sequence

from airflow.sdk import BaseOperator, Context
from airflow.sdk.exceptions import AirflowFailException, AirflowSkipException

from backup_dr.core.durations import format_duration
from backup_dr.core.drill import run_drill
from backup_dr.core.engines import engine_for
from backup_dr.core.errors import BackupDRError
from backup_dr.hooks import open_available
from backup_dr.operators._common import CONNECTOR, get_policy, local_store, open_store, translate_errors
from backup_dr.operators.dr import typed_time


class VerifyRestoreOperator(BaseOperator):
    """Drill: restore the newest backup of a class/source into a scratch target and check it.

    Fails (and so alerts) when verification fails or the measured restore time exceeds the
    class RTO. The drill record (``kind: drill``, ``restore_seconds``, ``rto_seconds``) is
    written next to the backup in the store it was restored from.

    :param backup_class: policy class (templated)
    :param source: policy source (templated)
    :param kind: artifact kind (full, schema, rdb, aof, files, bundle)
    :param store: store to restore from (templated); default the class's last store, the
        copy a disaster would leave you with
    """

    template_fields: Sequence[str] = ("backup_class", "source", "store")
    ui_color = "#fdf6e3"

    def __init__(self, *, backup_class: str, source: str, kind: str, store: str | None = None, policy_path: str | None = None, **kwargs):
        super().__init__(**kwargs)
        self.backup_class = backup_class
        self.source = source
        self.kind = kind
        self.store = store
        self.policy_path = policy_path

    def execute(self, context: Context) -> dict[str, Any]:
        from backup_dr.core.catalog import Catalog
        from backup_dr.core.verify import record_verification

        policy = get_policy(self.policy_path)
        cls = policy.classes[self.backup_class]
        with translate_errors():
            stores = {n: open_store(policy.stores[n]) for n in cls.stores}
            catalog = Catalog(stores)
            entry = catalog.newest(cls.name, self.source, self.kind)
            if entry is None:
                raise AirflowSkipException(f"no {self.kind} backup of {cls.name}/{self.source} yet: nothing to drill")
            name = self.store if self.store in entry.complete_in else next(n for n in reversed(cls.stores) if n in entry.complete_in)
            manifest = entry.manifest()
            self.log.info("drill: restoring %s from %s (%s) to a scratch target", entry.backup_id, name, stores[name].describe())
            engine = engine_for(manifest)
            scratch = engine.open_scratch(CONNECTOR, engine.scratch_conn_id(policy))  # refused when the policy names none
            result = run_drill(manifest, stores[name], policy, scratch=scratch)
            rto = cls.objective.rto.total_seconds()
            record = {**result, "dag_run": context["run_id"]}
            record_verification(stores[name], manifest, record)
        summary = {"backup_id": entry.backup_id, "store": name, "ok": result["ok"], "restore_seconds": result["restore_seconds"],
                   "rto_seconds": rto, "problems": result["problems"]}
        if not result["ok"]:
            raise AirflowFailException(f"drill FAILED for {entry.backup_id} from {name}: " + "; ".join(result["problems"]))
        if result["restore_seconds"] > rto:
            raise AirflowFailException(
                f"drill restored {entry.backup_id} in {format_duration(timedelta(seconds=result['restore_seconds']))}, "
                f"over the class RTO {format_duration(cls.objective.rto)}: recovery would miss its objective"
            )
        self.log.info("drill OK: %s restored from %s in %.2fs (RTO %s)", entry.backup_id, name, result["restore_seconds"],
                      format_duration(cls.objective.rto))
        return summary


class BackupHealthOperator(BaseOperator):
    """The RPO / health monitor: age of the newest verified backup per class, source and store vs
    the RPO, store reachability and capacity, last drill vs RTO. Saves the JSON report in the
    local store and sends an alert (email + Slack) with the reasons when not healthy.

    :param as_of: evaluate as if it were this time (templated; a typed time, read by the one
        parser: an offset, or the policy's time zone when it opts in), e.g. "will we breach the
        RPO by 14:00 if nothing else runs?"; default now
    """

    template_fields: Sequence[str] = ("as_of",)
    ui_color = "#eef8e8"

    def __init__(self, *, policy_path: str | None = None, alert: bool = True, as_of: str | None = None, **kwargs):
        super().__init__(**kwargs)
        self.policy_path = policy_path
        self.alert = alert
        self.as_of = as_of

    def execute(self, context: Context) -> dict[str, Any]:
        from backup_dr.alerts import send_alert
        from backup_dr.core.health import check_health, prune_reports, save_report

        policy = get_policy(self.policy_path)
        stores, unavailable = open_available(policy.stores)  # an unopened store is a finding (critical for its classes)
        with translate_errors():
            as_of = typed_time(policy, self.as_of, "as_of")
        if as_of is not None:
            self.log.info("as of: %s", as_of.echo())
        from backup_dr.core.pitr import pitr_health_check
        from backup_dr.core.restores.health import interrupted_restores_check

        # + the PITR window per source, + interrupted restores (the restore journal)
        report = check_health(policy, stores, now=as_of.utc if as_of else None, unavailable=unavailable,
                              extra_checks=[pitr_health_check, interrupted_restores_check])
        local = local_store(policy)
        key = save_report(local, report)
        prune_reports(local)
        self.log.info("health: %s (report %s)\n  %s", report.status, key, "\n  ".join(report.reasons) or "all good")
        if self.alert and report.status != "healthy":
            send_alert(policy.alerts, report.status, f"backup health is {report.status.upper()}", report.reasons[:30], context)
        return {"status": report.status, "reasons": report.reasons, "report_key": key}
