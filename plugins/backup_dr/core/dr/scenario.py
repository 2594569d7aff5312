"""A DR scenario as an ordered plan of steps, and the runner the break-glass CLI uses.

:func:`plan` turns the policy's steps into machine steps (one function each, :data:`STEPS`)
and human steps (``approval``, and ``repoint`` when no webhook is configured): what no machine
here can do is asked of a person, never silently passed. Airflow builds one task per planned
step (approvals are HITL tasks); :func:`run_scenario` runs them in this process, asking
``confirm`` at each human step, stopping at the first failure, and reports what was done.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any, Callable

from backup_dr.core.dr import database, probes, services
from backup_dr.core.dr.run import DrRun
from backup_dr.core.errors import BackupDRError
from backup_dr.core.policy_model import Policy, Scenario, Step

#: machine step kind -> ``fn(run, step) -> dict``
STEPS: dict[str, Callable[[DrRun, Step], dict[str, Any]]] = {
    "detect": probes.detect,
    "pick_backup": database.pick_backup,
    "safety_backup": database.safety_backup,
    "restore": database.restore,
    "restore_redis": services.restore_redis,
    "restore_files": services.restore_files,
    "validate": database.validate,
    "repoint": services.repoint,
    "health_check": probes.health_check,
}

RESTORE_KINDS = ("restore", "restore_redis", "restore_files")


@dataclass(frozen=True)
class PlannedStep:
    step: Step
    human: bool

    @property
    def name(self) -> str:
        return self.step.name


def plan(policy: Policy, sc: Scenario, *, target: str | None = None) -> list[PlannedStep]:
    """The scenario's steps in order; ``target`` names the MongoDB target in a human repoint step."""
    out = []
    for step in sc.steps:
        if step.kind == "approval":
            out.append(PlannedStep(step, True))
        elif step.kind == "repoint" and not policy.ops.repoint_webhook_conn_id:
            manual = Step("approval", step.name, step.title, "Point the application at the restored database "
                          f"(connection `{target or sc.target_conn_id}`) and restart it. No repoint webhook is "
                          "configured (ops.repoint_webhook_conn_id), so this is a human step.")
            out.append(PlannedStep(manual, True))
        elif step.kind in STEPS:
            out.append(PlannedStep(step, False))
        else:  # the policy validator only admits known kinds
            raise ValueError(f"unknown DR step kind {step.kind!r}")
    return out


def _now() -> str:
    return datetime.now(timezone.utc).isoformat().replace("+00:00", "Z")


def copies_plan(results: dict[str, dict]) -> list[dict[str, Any]]:
    """Which copy of which backup each restore step uses (or would), from which store, into which target."""
    rows = []
    pick, restored = results.get("pick_backup") or {}, results.get("restore") or {}
    if pick:
        rows.append({"step": "restore", "backup_id": pick["backup_id"], "captured_at": pick.get("captured_at"),
                     "store": restored.get("store") or pick.get("store"), "target": results.get("_target"),
                     "database": pick.get("database"), "point_in_time": pick.get("point_in_time")})
    redis = results.get("restore_redis") or {}
    if redis.get("backup_id"):
        rows.append({"step": "restore_redis", "backup_id": redis["backup_id"],
                     "store": redis.get("store") or (redis.get("order") or [None])[0], "target": redis.get("target")})
    for name, r in (results.get("restore_files") or {}).items():
        if isinstance(r, dict) and r.get("backup_id"):
            rows.append({"step": "restore_files", "source": name, "backup_id": r["backup_id"],
                         "store": r.get("store") or (r.get("order") or [None])[0], "target": r.get("target") or r.get("target_dir")})
    return rows


def run_scenario(run: DrRun, *, confirm: Callable[[PlannedStep], bool],
                 on_step: Callable[[PlannedStep, dict[str, Any]], None] = lambda p, r: None) -> dict[str, Any]:
    """Run every step in order in this process. ``confirm(planned)`` answers a human step (False
    stops the run); a dry run asks nothing and changes nothing. The report says what each step
    did, which copies were used, the recovery time and point reached, and the outcome."""
    from backup_dr.core.recovery import recovery_time

    results: dict[str, dict] = {"_target": run.target_conn_id}
    run.result = lambda kind: results.get(kind) or {}
    steps: list[dict[str, Any]] = []
    error = None
    started = _now()
    for planned in plan(run.policy, run.scenario, target=run.target_conn_id):
        entry: dict[str, Any] = {"name": planned.name, "kind": planned.step.kind, "human": planned.human, "started_at": _now()}
        if planned.human:
            if run.dry_run:
                entry.update(state="would ask", instructions=planned.step.instructions)
            elif confirm(planned):
                entry.update(state="confirmed")
            else:
                entry.update(state="refused")
                error = f"step {planned.name} ({planned.step.title}) was not confirmed: the recovery stops there"
        else:
            try:
                out = STEPS[planned.step.kind](run, planned.step)
            except BackupDRError as e:
                entry.update(state="failed", error=str(e))
                error = f"step {planned.name} failed: {e.message}"
            else:
                results[planned.step.kind] = out
                entry.update(state="dry run" if run.dry_run else "done", result=out)
        entry["finished_at"] = _now()
        steps.append(entry)
        on_step(planned, entry)
        if error:
            break
    restores = [results.get(k) for k in RESTORE_KINDS if results.get(k)]
    pick = results.get("pick_backup") or {}
    outcome = "failed" if error else "dry run" if run.dry_run else "recovered"
    return {"scenario": run.scenario.name, "dry_run": run.dry_run, "outcome": outcome, "error": error,
            "started_at": started, "finished_at": _now(), "target": run.target_conn_id, "plan": copies_plan(results),
            "recovery_point": pick.get("recovery_point"),
            "recovery_time": recovery_time(restores, (results.get("validate") or {}).get("validated_at")),
            "steps": steps}
