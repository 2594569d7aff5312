"""Alerts without Airflow: the policy's email and Slack routes sent by plain SMTP / HTTPS.

Inside Airflow alerts go through the provider notifiers (:mod:`backup_dr.alerts`); the
break-glass CLI runs with Airflow gone, so it sends the same message (:func:`format_alert`,
which both use) itself, reading the SAME connection ids (``alerts.email.conn_id``,
``alerts.slack.conn_id``) as the policy's routes, fields read as the providers read them:
SMTP host/port/login/password with extra ``disable_tls`` / ``disable_ssl`` / ``from_email``;
a Slack webhook's URL is its password when that is a URL, else host + ``/`` + password.
A failed route is returned, never raised: the caller decides what a lost alert means.
"""

from __future__ import annotations

import html
import json
import smtplib
import urllib.request
from email.message import EmailMessage
from typing import Callable

from backup_dr.core.connections import ConnInfo, redact
from backup_dr.core.policy_model import Alerts

SUBJECT_PREFIX = "[backup-dr]"
_ICONS = {"critical": ":red_circle:", "warning": ":large_orange_circle:", "info": ":large_green_circle:"}


def format_alert(severity: str, title: str, lines: list[str]) -> tuple[str, str, str]:
    """(email subject, email HTML body, Slack text) of one alert: one look on every route."""
    subject = f"{SUBJECT_PREFIX} {severity.upper()}: {title}"
    body = f"<h3>{html.escape(title)}</h3><ul>" + "".join(f"<li>{html.escape(x)}</li>" for x in lines) + "</ul>"
    text = f"{_ICONS.get(severity, ':white_circle:')} *{severity.upper()}: {title}*\n" + "\n".join(f"• {x}" for x in lines)
    return subject, body, text


def _extra_flag(conn: ConnInfo, key: str) -> bool:
    return str(conn.extra.get(key, False)).strip().lower() in ("true", "1", "yes")


def send_email(conn: ConnInfo, to: list[str], subject: str, body_html: str, *, timeout: float = 30) -> None:
    msg = EmailMessage()
    msg["Subject"] = subject
    msg["From"] = conn.extra.get("from_email") or conn.login or "backup-dr@localhost"
    msg["To"] = ", ".join(to)
    msg.set_content(body_html, subtype="html")
    ssl = not _extra_flag(conn, "disable_ssl")
    port = conn.port or (465 if ssl else 25)
    cls = smtplib.SMTP_SSL if ssl else smtplib.SMTP
    with cls(conn.host or "localhost", port, timeout=timeout) as smtp:
        if not ssl and not _extra_flag(conn, "disable_tls"):
            smtp.starttls()
        if conn.login and conn.password:
            smtp.login(conn.login, conn.password)
        smtp.send_message(msg)


def slack_webhook_url(conn: ConnInfo) -> str:
    token = conn.password or ""
    if token.startswith(("http://", "https://")):
        return token
    if not token:
        raise ValueError("the Slack webhook connection has no password (the webhook token or URL)")
    base = conn.host or "https://hooks.slack.com/services"
    if "://" not in base:
        base = f"{conn.schema or 'https'}://{base}"
    return base.rstrip("/") + "/" + token.lstrip("/")


def send_slack(conn: ConnInfo, text: str, *, timeout: float = 30) -> None:
    req = urllib.request.Request(slack_webhook_url(conn), data=json.dumps({"text": text}).encode(),
                                 headers={"Content-Type": "application/json"}, method="POST")
    with urllib.request.urlopen(req, timeout=timeout) as resp:
        if not 200 <= resp.status < 300:
            raise OSError(f"HTTP {resp.status}")


def send_routes(alerts: Alerts, severity: str, title: str, lines: list[str],
                conn: Callable[[str], ConnInfo]) -> tuple[list[str], list[str]]:
    """Send one alert on every configured route: (routes sent, why each other failed, secrets redacted)."""
    subject, body, text = format_alert(severity, title, lines)
    routes = []
    if alerts.email_conn_id and alerts.email_to:
        routes.append(("email", alerts.email_conn_id, lambda c: send_email(c, list(alerts.email_to), subject, body)))
    if alerts.slack_conn_id:
        routes.append(("slack", alerts.slack_conn_id, lambda c: send_slack(c, text)))
    sent, errors = [], []
    for name, conn_id, send in routes:
        secrets: list[str] = []
        try:
            c = conn(conn_id)
            secrets = c.secrets
            send(c)
            sent.append(name)
        except Exception as e:  # noqa: BLE001 - one broken route must not stop the other
            reason = getattr(e, "message", None) or f"{type(e).__name__}: {getattr(e, 'reason', e)}"
            errors.append(f"{name} (connection {conn_id!r}): {redact(str(reason), secrets)[:500]}")
    return sent, errors
