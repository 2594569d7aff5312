"""The Airflow-free alert sender (core/notify.py) against the real SMTP and webhook sinks: the
same message as the notifiers', the providers' connection fields, and a broken route returned
(secrets redacted) while the other still goes out."""

from __future__ import annotations

from backup_dr.core.connections import ConnInfo, conn_from_env
from backup_dr.core.notify import send_routes, slack_webhook_url
from backup_dr.core.policy_model import Alerts


def test_both_routes_arrive_and_a_broken_one_is_returned_not_raised(sinks):
    smtp, slack = sinks
    alerts = Alerts("smtp_backup_alerts", ("dba@example.test",), "slack_backup_alerts")
    sent, errors = send_routes(alerts, "warning", "DR x: recovered", ["RTO: MISSED"], conn_from_env)
    assert sent == ["email", "slack"] and errors == []
    [mail] = smtp.wait_for()
    assert mail["Subject"] == "[backup-dr] WARNING: DR x: recovered" and "<li>RTO: MISSED</li>" in smtp.text(mail)
    assert mail["To"] == "dba@example.test" and mail["From"] == "backup-dr@korea-public-data.example"
    [post] = slack.wait_for()
    assert post["body"]["text"] == ":large_orange_circle: *WARNING: DR x: recovered*\n• RTO: MISSED"

    def broken(conn_id):
        if conn_id == "slack_backup_alerts":
            return ConnInfo(conn_id, "slackwebhook", host="http://127.0.0.1:9/services", password="T/B/secret-token")
        return conn_from_env(conn_id)

    sent, errors = send_routes(alerts, "critical", "DR x: failed", ["a"], broken)
    assert sent == ["email"] and len(errors) == 1 and "slack (connection 'slack_backup_alerts')" in errors[0]
    assert "secret-token" not in errors[0]
    sent, errors = send_routes(Alerts("no_such_smtp", ("a@b.test",), None), "info", "t", [], conn_from_env)
    assert sent == [] and "no_such_smtp" in errors[0]


def test_slack_webhook_url_follows_the_provider():
    assert slack_webhook_url(ConnInfo("s", password="https://hooks.example/services/T/B/x")) == "https://hooks.example/services/T/B/x"
    assert slack_webhook_url(ConnInfo("s", password="T/B/x")) == "https://hooks.slack.com/services/T/B/x"
    assert slack_webhook_url(ConnInfo("s", host="hooks.example/services/", password="/T/B/x")) == "https://hooks.example/services/T/B/x"
    assert slack_webhook_url(ConnInfo("s", host="http://127.0.0.1:1/s", password="t")) == "http://127.0.0.1:1/s/t"
