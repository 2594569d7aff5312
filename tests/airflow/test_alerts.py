"""Alerts reach the SMTP and Slack sinks through the real provider notifiers."""

from __future__ import annotations

import asyncio

from backup_dr.alerts import deadline_missed, send_alert
from backup_dr.core.policy_model import Alerts


def test_send_alert_reaches_email_and_slack(airflow_db, sinks, policy):
    smtp, slack = sinks
    sent = send_alert(policy.alerts, "critical", "RPO breached for critical_data/mongodb", ["newest verified backup is 5h old (RPO 4h)"])
    assert sent == ["email", "slack"]
    mail = smtp.wait_for(lambda m: "RPO breached" in m["Subject"])
    assert mail and mail[0]["Subject"].startswith("[backup-dr] CRITICAL")
    assert set(mail[0]["To"].replace(" ", "").split(",")) == set(policy.alerts.email_to)
    assert "newest verified backup is 5h old (RPO 4h)" in smtp.text(mail[0])
    post = slack.wait_for(lambda r: "RPO breached" in str(r["body"]))
    assert post and post[0]["path"] == "/services/T0TEST/B0TEST/slack-webhook-secret"


def test_one_broken_route_does_not_stop_the_other(airflow_db, sinks, policy):
    smtp, slack = sinks
    broken = Alerts("no_such_smtp_conn", policy.alerts.email_to, policy.alerts.slack_conn_id)
    assert send_alert(broken, "warning", "half the routes", ["x"]) == ["slack"]
    assert slack.wait_for(lambda r: "half the routes" in str(r["body"]))


def test_deadline_callback_sends_both(airflow_db, sinks, policy):
    smtp, slack = sinks
    ctx = {"dag_run": {"dag_id": "dr_data_corruption", "run_id": "manual__1", "state": "running", "queued_at": "2026-11-26T08:00:00Z"},
           "deadline": {"deadline_time": "2026-11-26T10:00:00Z"}}
    result = asyncio.run(deadline_missed(what="DR scenario data_corruption", deadline="RTO", interval_seconds=7200,
                                         email_conn_id=policy.alerts.email_conn_id, email_to=list(policy.alerts.email_to),
                                         slack_conn_id=policy.alerts.slack_conn_id, context=ctx))
    assert "email" in result and "slack" in result
    assert smtp.wait_for(lambda m: "DEADLINE MISSED" in m["Subject"] and "RTO of 2h" in m["Subject"])
    assert slack.wait_for(lambda r: "dr_data_corruption / manual__1" in str(r["body"]))
