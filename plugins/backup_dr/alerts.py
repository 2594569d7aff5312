"""Alerts: email (SmtpNotifier) and Slack (SlackWebhookNotifier) through Airflow connections.

Three kinds of alert, one look:

* task failure callbacks (``failure_notifiers``): which class/source failed, the error (our
  exceptions carry detail and hint, never a secret) and the link to the task log;
* deadline callbacks (``deadline_missed``): an ``async`` function that Airflow's triggerer
  imports from this module (it lives under ``plugins/``, which the triggerer has on its
  path; a module under ``dags/`` would not be importable there) when a DAG run misses its
  RTO/RPO deadline;
* conditions found by tasks (``send_alert``): RPO staleness, PITR gaps, failed drills.
"""

from __future__ import annotations

import asyncio
import html
import logging
from datetime import timedelta
from typing import Any

from backup_dr.core.durations import format_duration
from backup_dr.core.errors import BackupDRError
from backup_dr.core.notify import SUBJECT_PREFIX as _SUBJECT_PREFIX, format_alert
from backup_dr.core.policy_model import Alerts

log = logging.getLogger(__name__)


def _smtp(alerts: Alerts, subject: str, html_content: str):
    from airflow.providers.smtp.notifications.smtp import SmtpNotifier

    return SmtpNotifier(to=list(alerts.email_to), smtp_conn_id=alerts.email_conn_id, subject=subject, html_content=html_content)


def _slack(alerts: Alerts, text: str):
    from airflow.providers.slack.notifications.slack_webhook import SlackWebhookNotifier

    return SlackWebhookNotifier(slack_webhook_conn_id=alerts.slack_conn_id, text=text)


def failure_notifiers(alerts: Alerts, what: str) -> list:
    """Task ``on_failure_callback`` notifiers for one DAG (``what``: e.g. "backup class critical_data")."""
    subject = f"{_SUBJECT_PREFIX} FAILED: {what}: {{{{ ti.task_id }}}} (try {{{{ ti.try_number }}}})"
    body = (
        f"<h3>{html.escape(what)}: task <code>{{{{ ti.task_id }}}}</code> failed</h3>"
        "<p>DAG <code>{{ ti.dag_id }}</code>, run <code>{{ ti.run_id }}</code>, try {{ ti.try_number }}.</p>"
        "<pre>{{ exception }}</pre>"
        '<p><a href="{{ ti.log_url }}">Open the task log</a></p>'
    )
    text = (
        f":red_circle: *{what}*: task `{{{{ ti.task_id }}}}` failed (DAG `{{{{ ti.dag_id }}}}`, "
        "run `{{ ti.run_id }}`, try {{ ti.try_number }})\n```{{ exception }}```\n<{{ ti.log_url }}|task log>"
    )
    out = []
    if alerts.email_conn_id and alerts.email_to:
        out.append(_smtp(alerts, subject, body))
    if alerts.slack_conn_id:
        out.append(_slack(alerts, text))
    return out


def send_alert(alerts: Alerts, severity: str, title: str, lines: list[str], context: dict | None = None) -> list[str]:
    """Send one alert on every route from inside a task. Returns the routes that succeeded.

    A route that fails is logged and the others still go out; if every route fails the
    error is raised, because an alert nobody receives must fail the task.
    """
    subject, body, text = format_alert(severity, title, lines)
    ctx: dict[str, Any] = dict(context or {})
    sent, errors = [], []
    routes = []
    if alerts.email_conn_id and alerts.email_to:
        routes.append(("email", alerts.email_conn_id, _smtp(alerts, subject, body)))
    if alerts.slack_conn_id:
        routes.append(("slack", alerts.slack_conn_id, _slack(alerts, text)))
    for name, conn_id, notifier in routes:
        try:
            notifier.notify(ctx)  # notify() directly: our text is final, no Jinja rendering
            sent.append(name)
        except Exception as e:  # noqa: BLE001 - one broken route must not stop the other
            reason = _route_failure(conn_id, e)
            log.error("alert route %s FAILED (Airflow connection %r): %s; fix that connection", name, conn_id, reason)
            errors.append(f"{name} (connection {conn_id!r}): {reason}")
    if routes and not sent:
        raise BackupDRError(f"no alert route delivered {title!r}: every route failed", detail="; ".join(errors),
                            hint="fix the alert connections named above (Admin > Connections); the alert was not received")
    log.info("alert sent (%s) via %s: %s", severity, ", ".join(sent) or "no route", title)
    return sent


def _route_failure(conn_id: str, e: Exception) -> str:
    """Why a route failed, without the connection's secrets (a webhook URL holds its token)."""
    from backup_dr.core.connections import redact

    secrets: list[str] = []
    try:
        from backup_dr.hooks import conn_info

        secrets = conn_info(conn_id).secrets
    except Exception:  # noqa: BLE001 - an undefined connection has no secret to hide
        pass
    return redact(f"{type(e).__name__}: {e}", secrets)[:500]


async def deadline_missed(*, what: str, deadline: str, interval_seconds: float, email_conn_id: str | None = None,
                          email_to: list[str] | None = None, slack_conn_id: str | None = None, context: dict | None = None) -> str:
    """Deadline Alert callback (runs in the triggerer): a DAG run missed its RTO/RPO deadline."""
    dag_run = (context or {}).get("dag_run") or {}
    run = f"{dag_run.get('dag_id', '?')} / {dag_run.get('run_id', '?')}"
    title = f"DEADLINE MISSED: {what}: {deadline} of {format_duration(timedelta(seconds=interval_seconds))} exceeded"
    lines = [
        f"DAG run {run} (state {dag_run.get('state', '?')}) has not finished within {format_duration(timedelta(seconds=interval_seconds))}.",
        f"Queued at {dag_run.get('queued_at') or dag_run.get('run_after') or '?'}; deadline {((context or {}).get('deadline') or {}).get('deadline_time', '?')}.",
        "Check the run in the Airflow UI; recovery objectives are at risk until it completes.",
    ]
    alerts = Alerts(email_conn_id, tuple(email_to or ()), slack_conn_id)
    sent = await asyncio.to_thread(send_alert, alerts, "critical", title, lines, {})
    return f"deadline alert sent via {', '.join(sent)}"


def deadline_alert(alerts: Alerts, *, what: str, deadline: str, interval: timedelta):
    """A DeadlineAlert measured from when the run was queued, calling :func:`deadline_missed`."""
    from airflow.sdk import AsyncCallback, DeadlineAlert, DeadlineReference

    return DeadlineAlert(
        reference=DeadlineReference.DAGRUN_QUEUED_AT,
        interval=interval,
        callback=AsyncCallback(
            deadline_missed,
            kwargs={
                "what": what,
                "deadline": deadline,
                "interval_seconds": interval.total_seconds(),
                "email_conn_id": alerts.email_conn_id,
                "email_to": list(alerts.email_to),
                "slack_conn_id": alerts.slack_conn_id,
            },
        ),
    )
