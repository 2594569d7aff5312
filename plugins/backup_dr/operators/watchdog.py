"""The DAGs that exist when the policy file cannot be loaded: the watchdog and the degraded health check.

Both alert through the FALLBACK route (:mod:`backup_dr.core.policy_fallback`): the policy's
own routes are in the file that cannot be read. Both re-read the policy file when they run,
so a file fixed since the last parse does not page anyone (the DAGs come back at the next
parse of the DAG files).

Usage (``dag_factory.watchdog`` builds them)::

    PolicyWatchdogOperator(task_id="policy_error")
    DegradedHealthOperator(task_id="check_backup_health")
"""

from __future__ import annotations

from typing import Any

from airflow.sdk import BaseOperator, Context
from airflow.sdk.exceptions import AirflowFailException

from backup_dr.core.errors import BackupDRError, PolicyError, PolicyFileError


def current_policy_error() -> tuple[PolicyError | None, str, str]:
    """The error loading the policy file NOW (None when it loads), its path and where the path came from."""
    from backup_dr.core.policy import load_policy, policy_location

    path, origin = policy_location()
    try:
        load_policy(path, strict=False, origin=origin)
    except PolicyError as e:
        return e, str(path), origin
    return None, str(path), origin


def problem_lines(error: PolicyError, path: str, origin: str) -> list[str]:
    """File, line, the parser's message, the excerpt and the fix, one fact per line."""
    lines = [f"file: {path} (from {origin})"]
    if isinstance(error, PolicyFileError):
        if error.line:
            lines.append(f"line: {error.line}" + (f", column {error.column}" if error.column else ""))
        lines.append(f"problem: {error.reason}")
        if error.detail:
            lines.append("at " + " ".join(x.strip() for x in error.detail.splitlines()[:2]))
    else:
        lines += [f"problem: {p}: {r}" if p else f"problem: {r}" for p, r in error.issues[:20]]
    if error.hint:
        lines.append(f"fix: {error.hint}")
    lines.append("until it is fixed NO backup, PITR, drill or DR DAG exists; fixing the file brings them back at the "
                 f"next parse (no restart); `python -m backup_dr policy check --policy {path}` shows the problem")
    return lines


def _alert(severity: str, title: str, lines: list[str], context: Context) -> str:
    """Send on the fallback route; returns how it went (for the task's error and log)."""
    from backup_dr.alerts import send_alert
    from backup_dr.core.policy_fallback import fallback_alerts

    fallback = fallback_alerts()
    if not fallback.configured:
        return "NOT alerted: " + "; ".join(fallback.problems)
    try:
        sent = send_alert(fallback.alerts, severity, title, lines + [f"fallback route: {p}" for p in fallback.problems], context)
    except BackupDRError as e:
        return f"NOT alerted: {e}"
    return f"alerted via the fallback route ({', '.join(sent)}: {fallback.describe()})"


class PolicyWatchdogOperator(BaseOperator):
    """Fails, and alerts by email and Slack through the fallback route, while the policy file
    cannot be loaded, naming the file, the line and the parser's message."""

    ui_color = "#f8d7da"

    def execute(self, context: Context) -> dict[str, Any]:
        error, path, origin = current_policy_error()
        if error is None:
            self.log.info("the policy file %s loads again: every DAG comes back at the next parse; nothing to alert", path)
            return {"ok": True, "path": path}
        lines = problem_lines(error, path, origin)
        delivery = _alert("critical", f"POLICY FILE CANNOT BE LOADED: {path}: no backup DAG can be built", lines, context)
        self.log.error("policy file %s cannot be loaded (%s):\n  %s", path, delivery, "\n  ".join(lines))
        raise AirflowFailException(f"the policy file cannot be loaded, so nothing is being backed up ({delivery}):\n  "
                                   + "\n  ".join(lines))


class DegradedHealthOperator(BaseOperator):
    """``ops_backup_health`` without a policy: backup ages from the fallback stores (no RPO can be
    judged), or a plain statement that none can be read; alerts through the fallback route."""

    ui_color = "#eef8e8"

    def execute(self, context: Context) -> dict[str, Any]:
        from backup_dr.core.health_fallback import degraded_report
        from backup_dr.core.policy_fallback import fallback_stores
        from backup_dr.hooks import open_available

        error, path, origin = current_policy_error()
        if error is None:
            self.log.info("the policy file %s loads again: the full health check comes back at the next parse", path)
            return {"status": "unknown", "reasons": ["the policy loads again; the full check runs from the next parse"]}
        specs, problems = fallback_stores()
        stores, unavailable = open_available(specs)
        report = degraded_report(stores, unavailable, problems, error.message.splitlines()[0])
        delivery = _alert("critical", "backup health is UNKNOWN: the policy file cannot be loaded", report["reasons"][:30], context)
        self.log.error("degraded health check (%s):\n  %s", delivery, "\n  ".join(report["reasons"]))
        return {**report, "alert": delivery}
