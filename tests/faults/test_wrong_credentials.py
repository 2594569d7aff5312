"""Row 9: wrong credentials for each service, through the DAGs.

MongoDB (a private SecantusDB with ``--auth`` and a real user), Redis (``requirepass``), S3
(moto enforcing IAM signatures), GCS (a service-account keyfile that is not a key), and the
alert routes (SMTP with AUTH, Slack webhook with a revoked token). Each wrong secret is a
recognisable string; what must hold:

* the task fails with a clear error that names the CONNECTION ID to fix;
* a wrong credential is not retried (it cannot heal by itself);
* the secret appears nowhere: not in the error, not in the task log, not in any XCom, not
  in the failure alert.
"""

from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone

import pytest

from backup_dr.devstack.servers import MongoServer
from tests.dags.conftest import run_dag
from tests.faults.conftest import AuthSmtpSink, all_xcom_text, task_tries

MONGO_WRONG = "Wr0ng-MONGO-pw-4f1d"
REDIS_WRONG = "Wr0ng-REDIS-pw-9c2e"
S3_WRONG = "Wr0ng-S3-secret/7b3a+QzX"
GCS_KEY = "MIIEvQ-Wr0ng-GCS-KEY-5d6e0f"


def _when(minutes: int) -> datetime:
    return datetime.now(timezone.utc).replace(microsecond=0) - timedelta(minutes=minutes)


def _no_secret_anywhere(secret: str, dr, output, smtp, slack) -> None:
    texts = {"task log / errors": output.text(), "xcom": all_xcom_text({dr.dag_id}),
             "emails": "\n".join(smtp.text(m) for m in smtp.messages), "slack": json.dumps([p["body"] for p in slack.requests])}
    for where, text in texts.items():
        assert secret not in text, f"the secret leaked into the {where}"


@pytest.fixture
def auth_mongo(tmp_path, monkeypatch):
    """A SecantusDB requiring SCRAM auth, with a real backup user; the policy's connection
    names that user with a WRONG password."""
    server = MongoServer(tmp_path / "auth-mongo").start()
    try:
        with server.client() as c:
            c.admin.command("createUser", "backup", pwd="the-right-password-1", roles=["root"])
        server.stop()
        server.auth = True
        server.start()
        monkeypatch.setenv("AIRFLOW_CONN_MONGO_KOREA_PUBLIC_DATA", json.dumps({
            "conn_type": "mongo", "host": "127.0.0.1", "port": server.port, "login": "backup", "password": MONGO_WRONG,
            "extra": {"directConnection": True, "authSource": "admin", "serverSelectionTimeoutMS": 3000}}))
        yield server
    finally:
        server.cleanup()


def test_mongodb_wrong_password(backup_stack, auth_mongo, output):
    smtp, slack = backup_stack["smtp"], backup_stack["slack"]
    dr, states = run_dag("backup_critical_data", logical_date=_when(10), run_after=_when(10))
    assert states["backup_mongodb"] == "failed" and task_tries(dr, "backup_mongodb") == 1, states
    log = output.text()
    assert "MongoDB refused the credentials or the permission" in log
    assert "connection 'mongo_korea_public_data'" in log, "the error must name the connection to fix"
    mail = smtp.wait_for(lambda m: "backup_mongodb" in m["Subject"])
    assert mail and "connection 'mongo_korea_public_data'" in smtp.text(mail[0])
    _no_secret_anywhere(MONGO_WRONG, dr, output, smtp, slack)


def test_redis_wrong_password(backup_stack, seeded_mongo, app_dir, redis_server, monkeypatch, output):
    smtp, slack = backup_stack["smtp"], backup_stack["slack"]
    monkeypatch.setenv("AIRFLOW_CONN_REDIS_CACHE", json.dumps(
        {"conn_type": "redis", "host": "127.0.0.1", "port": redis_server.port, "password": REDIS_WRONG}))
    dr, states = run_dag("backup_operational_data", logical_date=_when(11), run_after=_when(11))
    assert states["backup_redis_cache"] == "failed" and task_tries(dr, "backup_redis_cache") == 1, states
    log = output.text()
    assert "redis connection 'redis_cache'" in log and "authentication failed" in log
    assert "check the login and password of Airflow connection 'redis_cache'" in log
    mail = smtp.wait_for(lambda m: "backup_redis_cache" in m["Subject"])
    assert mail and "redis connection 'redis_cache'" in smtp.text(mail[0])
    _no_secret_anywhere(REDIS_WRONG, dr, output, smtp, slack)


@pytest.fixture
def auth_s3(tmp_path_factory, monkeypatch):
    """moto enforcing IAM signatures (after the setup calls); the connection has a real access
    key id with a WRONG secret."""
    import boto3

    from backup_dr.devstack.servers import MotoServer

    class AuthMoto(MotoServer):
        name = "moto-auth"

        def env(self):
            return {**super().env(), "INITIAL_NO_AUTH_ACTION_COUNT": "4"}

    with AuthMoto(tmp_path_factory.mktemp("moto-auth")) as server:
        iam = boto3.client("iam", endpoint_url=server.endpoint_url, region_name="us-east-1",
                           aws_access_key_id="setup", aws_secret_access_key="setup")
        iam.create_user(UserName="backup")
        iam.put_user_policy(UserName="backup", PolicyName="all", PolicyDocument=json.dumps(
            {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "*", "Resource": "*"}]}))
        key = iam.create_access_key(UserName="backup")["AccessKey"]
        boto3.client("s3", endpoint_url=server.endpoint_url, region_name="us-east-1", aws_access_key_id=key["AccessKeyId"],
                     aws_secret_access_key=key["SecretAccessKey"]).create_bucket(Bucket="auth-bucket")
        monkeypatch.setenv("BACKUP_DR_S3_BUCKET", "auth-bucket")
        monkeypatch.setenv("AIRFLOW_CONN_BACKUP_S3", json.dumps({
            "conn_type": "aws", "login": key["AccessKeyId"], "password": S3_WRONG,
            "extra": {"endpoint_url": server.endpoint_url, "region_name": "us-east-1"}}))
        yield server


def test_s3_wrong_secret(backup_stack, seeded_mongo, auth_s3, output):
    smtp, slack = backup_stack["smtp"], backup_stack["slack"]
    dr, states = run_dag("backup_critical_data", logical_date=_when(12), run_after=_when(12))
    assert states["backup_mongodb"] == "success" and states["replicate_mongodb[1]"] == "success", states
    assert states["replicate_mongodb[0]"] == "failed" and task_tries(dr, "replicate_mongodb", 0) == 1, states
    log = output.text()
    assert "S3 store 's3' (s3://auth-bucket/backup-dr): access denied for connection 'backup_s3'" in log
    assert "hint: check the access key/secret of connection 'backup_s3'" in log
    mail = smtp.wait_for(lambda m: "replicate_mongodb" in m["Subject"])
    assert mail and "connection 'backup_s3'" in smtp.text(mail[0])
    _no_secret_anywhere(S3_WRONG, dr, output, smtp, slack)


def test_gcs_bad_keyfile(backup_stack, seeded_mongo, monkeypatch, output):
    smtp, slack = backup_stack["smtp"], backup_stack["slack"]
    keyfile = {"type": "service_account", "project_id": "p", "private_key_id": "1", "client_email": "b@p.iam.gserviceaccount.com",
               "private_key": f"-----BEGIN PRIVATE KEY-----\n{GCS_KEY}\n-----END PRIVATE KEY-----\n",
               "token_uri": "https://oauth2.googleapis.com/token"}
    monkeypatch.setenv("AIRFLOW_CONN_BACKUP_GCS", json.dumps(
        {"conn_type": "google_cloud_platform", "extra": {"keyfile_dict": json.dumps(keyfile), "project": "p"}}))
    dr, states = run_dag("backup_critical_data", logical_date=_when(13), run_after=_when(13))
    assert states["replicate_mongodb[0]"] == "success" and states["replicate_mongodb[1]"] == "failed", states
    assert task_tries(dr, "replicate_mongodb", 1) == 1
    log = output.text()
    assert "connection 'backup_gcs'" in log and "keyfile_dict" in log, log[-3000:]
    mail = smtp.wait_for(lambda m: "replicate_mongodb" in m["Subject"])
    assert mail and "connection 'backup_gcs'" in smtp.text(mail[0])
    _no_secret_anywhere(GCS_KEY, dr, output, smtp, slack)


# ----------------------------------------------------------------------------- alert routes

SMTP_WRONG = "Wr0ng-SMTP-pw-1a2b"
SLACK_REVOKED = "T0REVOKED/B0REVOKED/Wr0ng-SLACK-token-3c4d"


@pytest.fixture
def broken_routes(airflow_db, local_store_root, s3_bucket, gcs_bucket, sinks, monkeypatch):
    """Alert connections that do not work: SMTP with a wrong password (the server requires AUTH),
    Slack with a revoked webhook token (the endpoint answers 403 ``invalid_token``)."""
    from backup_dr.devstack.servers import HttpSink

    smtp = AuthSmtpSink().start()
    slack = HttpSink(status=403).start()
    routes = {"smtp": smtp, "slack": slack, "good_smtp": sinks[0], "good_slack": sinks[1]}

    def break_(which: str) -> None:
        if which == "smtp":
            monkeypatch.setenv("AIRFLOW_CONN_SMTP_BACKUP_ALERTS", json.dumps({
                "conn_type": "smtp", "host": "127.0.0.1", "port": smtp.port, "login": "alerts", "password": SMTP_WRONG,
                "extra": {"disable_tls": True, "disable_ssl": True, "from_email": "backup-dr@korea-public-data.example"}}))
        else:
            monkeypatch.setenv("AIRFLOW_CONN_SLACK_BACKUP_ALERTS", json.dumps(
                {"conn_type": "slackwebhook", "host": f"{slack.url}/services", "password": SLACK_REVOKED}))

    routes["break"] = break_
    yield routes
    smtp.stop()
    slack.stop()


@pytest.mark.parametrize("broken", [("smtp",), ("slack",), ("smtp", "slack")])
def test_a_wrong_alert_connection_fails_loudly(broken_routes, broken, output):
    """The health monitor finds nothing backed up (critical) and alerts through broken routes."""
    for which in broken:
        broken_routes["break"](which)
    when = _when(14)
    dr, states = run_dag("ops_backup_health", logical_date=when, run_after=when)
    log = output.text()
    conn = {"smtp": "smtp_backup_alerts", "slack": "slack_backup_alerts"}
    route = {"smtp": "email", "slack": "slack"}
    for which in broken:  # every broken route is an ERROR naming its connection
        assert f"alert route {route[which]} FAILED (Airflow connection '{conn[which]}')" in log, which
    assert "SMTPAuthenticationError: (535" in log if "smtp" in broken else True
    assert "Status Code: 403" in log if "slack" in broken else True
    if "smtp" in broken:
        assert broken_routes["smtp"].refused and not broken_routes["smtp"].messages  # the wrong password was tried
    if "slack" in broken:
        assert broken_routes["slack"].requests  # the revoked hook was called (and refused)
    if len(broken) == 1:  # the alert still reaches people through the other route; the task reports it
        assert states == {"check_backup_health": "success"}
        working = broken_routes["good_slack" if "smtp" in broken else "good_smtp"]
        if "smtp" in broken:
            assert working.wait_for(lambda p: "backup health is CRITICAL" in str(p["body"]))
        else:
            assert working.wait_for(lambda m: "backup health is CRITICAL" in m["Subject"])
    else:  # nobody got the alert: the task fails, naming both connections
        assert states == {"check_backup_health": "failed"}, states
        assert "no alert route delivered 'backup health is CRITICAL': every route failed" in log
        assert "email (connection 'smtp_backup_alerts')" in log and "slack (connection 'slack_backup_alerts')" in log
    for secret in (SMTP_WRONG, SLACK_REVOKED.rsplit("/", 1)[1]):
        assert secret not in log and secret not in all_xcom_text({dr.dag_id}), secret
