"""The end of every DR run, DAG or CLI: measure what was achieved, keep it, say it.

One function for both, so the DR DAG's summary task and ``dr run`` report the same numbers
in the same words and keep the report in the same place:

* **Recovery time achieved** (compared with the RTO): from the first byte a restore step
  fetched from a store to the validated target (:func:`backup_dr.core.recovery.recovery_time`).
  The whole run (start → health check, human steps included) is reported beside it.
* **Recovery point**: the picked backup's capture point (its consistent point, never its
  slot), or the point in time replayed to. **Data loss** (achieved RPO): the incident time
  (typed by the one parser, default the run's start) minus the recovery point.

The JSON report is kept under ``_reports/dr/<scenario>/`` of the local store; the returned
lines and severity are what the caller sends on the policy's alert routes (Airflow notifiers
in the DAG, :mod:`backup_dr.core.notify` in the CLI).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Any, Iterable

from backup_dr.core.artifacts.layout import ROOT
from backup_dr.core.artifacts.manifest import parse_iso
from backup_dr.core.durations import format_duration
from backup_dr.core.policy_model import Policy, Scenario
from backup_dr.core.recovery import recovery_time
from backup_dr.core.stores.base import Store
from backup_dr.core.times import BadTimeInput, TimeRule, is_blank, parse_user_time


@dataclass
class DrSummary:
    report: dict[str, Any]
    lines: list[str]
    severity: str
    key: str

    @property
    def title(self) -> str:
        return f"DR {self.report['scenario']}: {self.report['outcome']}"


def report_key(scenario: str, now: datetime) -> str:
    """Where a DR report is kept in the local store."""
    return f"{ROOT}/_reports/dr/{scenario}/{now:%Y%m%dT%H%M%SZ}.json"


def summarize(policy: Policy, sc: Scenario, store: Store, *, run_id: str | None, started: datetime,
              finished: datetime | None, failed: Iterable[str], pick: dict, restores: list[dict],
              validated: Any, incident_time: Any, dry_run: bool, now: datetime | None = None) -> DrSummary:
    """Measure the run, save its JSON report in ``store`` and return it with the alert's lines.

    ``failed``: the steps that failed (or were refused); ``pick`` / ``restores`` / ``validated``:
    what the pick, restore and validate steps returned; ``incident_time``: as typed (blank: the start).
    """
    now = now or datetime.now(timezone.utc)
    failed = sorted(failed)
    finished = finished or now
    run_time = finished - started
    achieved = recovery_time(restores, validated)
    recovery_time_s = achieved["seconds"]
    recovery_point = parse_iso(pick.get("recovery_point"))
    incident_in, incident_error = None, None
    try:
        if not is_blank(incident_time):
            incident_in = parse_user_time(str(incident_time), TimeRule.of(policy), what="incident_time")
    except BadTimeInput as e:  # reported; the run's start stands in (the pick step failed on it already)
        incident_error = f"{e.message} ({e.hint})" if e.hint else e.message
    incident = incident_in.utc if incident_in else started
    data_loss = (incident - recovery_point) if recovery_point else None
    rto_met = not failed and recovery_time_s is not None and recovery_time_s <= sc.rto.total_seconds()
    rpo_met = data_loss is not None and data_loss <= sc.rpo
    report = {
        "scenario": sc.name, "title": sc.title, "dag_run": run_id, "dry_run": dry_run,
        "outcome": "failed" if failed else ("dry run" if dry_run else "recovered"), "failed_steps": failed,
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
    key = report_key(sc.name, now)
    store.put_bytes(key, (json.dumps(report, indent=2, ensure_ascii=False) + "\n").encode())
    lines = [
        f"outcome: {report['outcome'].upper()}" + (f" (failed steps: {', '.join(failed)})" if failed else ""),
        (f"RTO: recovered in {format_duration(timedelta(seconds=recovery_time_s))} (first byte fetched → validated target) "
         f"vs target {format_duration(sc.rto)}: {'MET' if rto_met else 'MISSED'}") if recovery_time_s is not None
        else "RTO: not measured (nothing was fetched or restored)",
        f"whole run: {format_duration(run_time)} (start → health check, human steps included)",
        (f"RPO: recovery point {report['recovery_point']}, data loss {format_duration(data_loss)} vs target "
         f"{format_duration(sc.rpo)}: {'MET' if rpo_met else 'MISSED'}") if data_loss is not None else "RPO: no recovery point (no backup picked)",
        f"backup: {pick.get('backup_id') or 'none'} (data captured {pick.get('captured_at') or '-'}) from {report['store'] or '-'}",
        f"report: {store.name}:{key}",
    ]
    for what, t in (("point in time", (pick.get("typed_point_in_time") or {}).get("echo")),
                    ("incident time", incident_in.echo() if incident_in else incident_error)):
        if t:
            lines.append(f"{what}: {t}")
    if dry_run:
        lines.insert(0, "DRY RUN: nothing was restored or repointed; trigger again with dry_run=false to recover")
    severity = "critical" if failed else ("info" if dry_run or (rto_met and rpo_met) else "warning")
    return DrSummary(report, lines, severity, key)
