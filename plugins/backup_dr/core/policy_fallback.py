"""The fallback alert route and stores: what alerts and reports when the policy cannot say.

When the policy file is unreadable (or its ``alerts`` section is broken), its alert routes
cannot be trusted, so the watchdog DAG alerts through a route configured OUTSIDE the file:

* Airflow connections with fixed ids: ``backup_dr_fallback_smtp`` (an SMTP connection) and
  ``backup_dr_fallback_slack`` (a Slack incoming-webhook connection); the ids can be changed
  with ``$BACKUP_DR_FALLBACK_SMTP_CONN_ID`` / ``$BACKUP_DR_FALLBACK_SLACK_CONN_ID`` (e.g. to
  reuse the policy's own ``smtp_backup_alerts``); an empty value turns that route off;
* ``$BACKUP_DR_FALLBACK_EMAIL_TO``: the recipients (comma separated), which turn email on.

Environment variables are read at DAG-parse time (no I/O); the connections are resolved when
the watchdog runs, which reports a route whose connection is missing.

The degraded health check reads the catalog through fallback stores:
``$BACKUP_DR_FALLBACK_STORES`` (JSON, the same shape as the policy's ``stores:`` section,
validated by the same code), else the local store at ``$BACKUP_DR_LOCAL_PATH``.
"""

from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass
from typing import Mapping

from backup_dr.core.policy_model import Alerts, StoreSpec

FALLBACK_SMTP_CONN_ID = "backup_dr_fallback_smtp"
FALLBACK_SLACK_CONN_ID = "backup_dr_fallback_slack"
ENV_EMAIL_TO = "BACKUP_DR_FALLBACK_EMAIL_TO"
ENV_SMTP_CONN = "BACKUP_DR_FALLBACK_SMTP_CONN_ID"
ENV_SLACK_CONN = "BACKUP_DR_FALLBACK_SLACK_CONN_ID"
ENV_STORES = "BACKUP_DR_FALLBACK_STORES"
_CONN_ID = re.compile(r"[A-Za-z0-9_.-]{1,200}")


@dataclass(frozen=True)
class Fallback:
    """The fallback alert route as configured, and what is wrong with that configuration."""

    alerts: Alerts
    problems: tuple[str, ...] = ()

    @property
    def configured(self) -> bool:
        return bool(self.alerts.email_conn_id and self.alerts.email_to) or bool(self.alerts.slack_conn_id)

    def describe(self) -> str:
        routes = []
        if self.alerts.email_conn_id and self.alerts.email_to:
            routes.append(f"email to {', '.join(self.alerts.email_to)} via connection {self.alerts.email_conn_id!r}")
        if self.alerts.slack_conn_id:
            routes.append(f"Slack via connection {self.alerts.slack_conn_id!r}")
        return "; ".join(routes) or "none"


def fallback_alerts(environ: Mapping[str, str] | None = None) -> Fallback:
    """The fallback route from the environment (see the module docstring); never raises."""
    env = os.environ if environ is None else environ
    problems: list[str] = []
    to = [a for a in re.split(r"[,;\s]+", env.get(ENV_EMAIL_TO, "")) if a]
    bad = [a for a in to if not re.fullmatch(r"[^@\s]+@[^@\s]+\.[^@\s]+", a)]
    if bad:
        problems.append(f"${ENV_EMAIL_TO}: {', '.join(bad)} is not an email address")
    ids = {}
    for var, default in ((ENV_SMTP_CONN, FALLBACK_SMTP_CONN_ID), (ENV_SLACK_CONN, FALLBACK_SLACK_CONN_ID)):
        value = env.get(var, default).strip()
        if value and not _CONN_ID.fullmatch(value):
            problems.append(f"${var}: {value[:60]!r} is not a connection id (letters, digits, '_', '.', '-')")
            value = ""
        ids[var] = value or None
    good = tuple(a for a in to if a not in bad)
    if not good and not ids[ENV_SLACK_CONN]:
        problems.append(f"no fallback alert route: set ${ENV_EMAIL_TO} (and connection {FALLBACK_SMTP_CONN_ID}) or "
                        f"define connection {FALLBACK_SLACK_CONN_ID}, else an unreadable policy file alerts nobody")
    return Fallback(Alerts(ids[ENV_SMTP_CONN] if good else None, good, ids[ENV_SLACK_CONN]), tuple(problems))


def merge_routes(policy_routes: Alerts, fallback: Alerts | None, broken: set[str]) -> Alerts:
    """The policy's routes with each broken one (``"email"``, ``"slack"``) replaced by the fallback's."""
    if fallback is None:
        return policy_routes
    email = (fallback.email_conn_id, fallback.email_to) if "email" in broken else (policy_routes.email_conn_id, policy_routes.email_to)
    slack = fallback.slack_conn_id if "slack" in broken else policy_routes.slack_conn_id
    return Alerts(email[0], tuple(email[1] or ()), slack)


def fallback_stores(environ: Mapping[str, str] | None = None) -> tuple[dict[str, StoreSpec], list[str]]:
    """The stores the degraded health check may read, and the problems of their configuration."""
    from backup_dr.core.policy_fields import _Issues
    from backup_dr.core.policy_inventory import _parse_store

    env = os.environ if environ is None else environ
    raw = env.get(ENV_STORES, "").strip()
    if not raw:
        path = env.get("BACKUP_DR_LOCAL_PATH", "").strip()
        if not path:
            return {}, [f"no fallback store: set ${ENV_STORES} or $BACKUP_DR_LOCAL_PATH"]
        raw_stores = {"local": {"type": "local", "path": path}}
    else:
        try:
            raw_stores = json.loads(raw)
        except ValueError as e:
            return {}, [f"${ENV_STORES} is not JSON: {e}"]
        if not isinstance(raw_stores, dict):
            return {}, [f"${ENV_STORES} must be a JSON object of stores, like the policy's stores: section"]
    issues = _Issues()
    specs = {}
    for name, body in raw_stores.items():
        spec = _parse_store(issues, str(name), body)
        if spec is not None:
            specs[spec.name] = spec
    return specs, [f"${ENV_STORES}: {p.removeprefix('stores.')}: {r}" for p, r in issues]
