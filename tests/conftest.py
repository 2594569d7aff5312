"""The real test stack: servers on 127.0.0.1, started here, stopped by PID at the end.

* MongoDB wire protocol: SecantusDB (``prod`` seeded with sample data, and a separate
  ``scratch`` instance that drills restore into).
* Redis: a private Debian ``redis-server`` per test (own port, own dir).
* S3: ``moto_server``; GCS: ``gcp-storage-emulator --in-memory``.
* SMTP sink (aiosmtpd) and an HTTP sink for Slack webhooks.
* PostgreSQL: the machine's server (127.0.0.1:5432, trust auth), one database per session
  standing in for the policy's ``airflow_db`` source (``metadata_pg``).
* Airflow: a temporary AIRFLOW_HOME with SQLite, migrated once, connections from
  ``AIRFLOW_CONN_*`` environment variables.

The Airflow environment variables are set at import time, before anything imports
airflow (Airflow reads its configuration once, on first import).
"""

from __future__ import annotations

import json
import os
import sys
import tempfile
import uuid
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
_SESSION_TMP = Path(tempfile.mkdtemp(prefix="backup-dr-tests-"))
_AIRFLOW_HOME = _SESSION_TMP / "airflow-home"
_AIRFLOW_HOME.mkdir()
os.environ.update(
    {
        "AIRFLOW_HOME": str(_AIRFLOW_HOME),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "AIRFLOW__CORE__DAGS_FOLDER": str(ROOT / "dags"),
        "AIRFLOW__CORE__PLUGINS_FOLDER": str(ROOT / "plugins"),
        "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"sqlite:///{_AIRFLOW_HOME / 'airflow.db'}",
        "AIRFLOW__CORE__UNIT_TEST_MODE": "False",
        "AIRFLOW__LOGGING__LOGGING_LEVEL": "INFO",
        "BACKUP_DR_POLICY": str(ROOT / "include" / "policy.yaml"),
        "BACKUP_DR_LOCAL_PATH": str(_SESSION_TMP / "backups"),
        "BACKUP_DR_APP_DIR": str(_SESSION_TMP / "app"),
        # retries stay on (>= 2, as in production) but back off in seconds, not minutes
        "BACKUP_DR_RETRY_DELAY": "1s",
        "BACKUP_DR_MAX_RETRY_DELAY": "2s",
    }
)
sys.path.insert(0, str(ROOT / "plugins"))

from backup_dr.devstack import sample_data  # noqa: E402
from backup_dr.devstack.servers import GcsEmulator, HttpSink, MongoServer, MotoServer, RedisServer, SmtpSink  # noqa: E402

SLACK_TOKEN = "T0TEST/B0TEST/slack-webhook-secret"


def set_connection(conn_id: str, **fields) -> None:
    """Provide an Airflow connection through the environment (as production secret backends do)."""
    os.environ[f"AIRFLOW_CONN_{conn_id.upper()}"] = json.dumps(fields)


# ----------------------------------------------------------------------------- servers


@pytest.fixture(scope="session")
def mongo_server():
    with MongoServer(_SESSION_TMP / "mongo-prod", oplog_max_entries=2_000_000) as server:
        set_connection("mongo_korea_public_data", conn_type="mongo", host="127.0.0.1", port=server.port,
                       extra={"directConnection": True})
        yield server


@pytest.fixture(scope="session")
def mongo_scratch_server():
    """A second instance: verification restores never touch the production server."""
    with MongoServer(_SESSION_TMP / "mongo-scratch") as server:
        set_connection("mongo_scratch", conn_type="mongo", host="127.0.0.1", port=server.port,
                       extra={"directConnection": True})
        yield server


@pytest.fixture(scope="session")
def mongo_client(mongo_server):
    client = mongo_server.client()
    yield client
    client.close()


@pytest.fixture(scope="session")
def seeded_mongo(mongo_client):
    """The sample ``korea_public_data`` database (read-only for tests: copy it to mutate)."""
    counts = sample_data.seed_mongo(mongo_client)
    return counts


@pytest.fixture
def fresh_db_name():
    """A database name no other test uses."""
    return f"t_{uuid.uuid4().hex[:10]}"


@pytest.fixture
def redis_server(tmp_path):
    """A private redis-server for one test, password-protected, its conn set as ``redis_cache``."""
    with RedisServer(tmp_path / "redis", password="redis-test-secret") as server:
        set_connection("redis_cache", conn_type="redis", host="127.0.0.1", port=server.port, password=server.password)
        yield server


@pytest.fixture(scope="session")
def s3_server():
    with MotoServer(_SESSION_TMP / "moto") as server:
        set_connection(
            "backup_s3", conn_type="aws", login=server.access_key, password=server.secret_key,
            extra={"endpoint_url": server.endpoint_url, "region_name": "us-east-1"},
        )
        yield server


@pytest.fixture
def s3_bucket(s3_server, monkeypatch):
    """A new empty bucket, named in BACKUP_DR_S3_BUCKET for the policy."""
    name = f"bkt-{uuid.uuid4().hex[:12]}"
    s3_server.client().create_bucket(Bucket=name)
    monkeypatch.setenv("BACKUP_DR_S3_BUCKET", name)
    return name


@pytest.fixture(scope="session")
def gcs_server():
    with GcsEmulator(_SESSION_TMP / "gcs") as server:
        os.environ["STORAGE_EMULATOR_HOST"] = server.endpoint_url
        set_connection("backup_gcs", conn_type="google_cloud_platform", extra={"is_anonymous": True, "project": "test"})
        yield server


@pytest.fixture
def gcs_bucket(gcs_server, monkeypatch):
    name = f"bkt-{uuid.uuid4().hex[:12]}"
    gcs_server.client().create_bucket(name)
    monkeypatch.setenv("BACKUP_DR_GCS_BUCKET", name)
    return name


@pytest.fixture(scope="session")
def s3_role(tmp_path_factory):
    """An S3 reachable only through an assumed role: moto enforcing IAM after its setup calls.

    The connection's own key may call ``sts:AssumeRole`` and nothing else; the role
    ``backup-writer`` may use S3. So an S3 request succeeds only if it was signed with the
    role's temporary credentials. Yields a dict: ``server``, ``bucket``, ``role_arn``,
    ``key_id``, ``secret`` and ``conn`` (the ``aws`` connection fields, role included)."""
    import boto3

    class AuthMoto(MotoServer):
        name = "moto-role"

        def env(self):
            return {**super().env(), "INITIAL_NO_AUTH_ACTION_COUNT": "6"}  # the six setup calls below

    def doc(statement: dict) -> str:
        return json.dumps({"Version": "2012-10-17", "Statement": [statement]})

    with AuthMoto(tmp_path_factory.mktemp("moto-role")) as server:
        kw = {"endpoint_url": server.endpoint_url, "region_name": "us-east-1", "aws_access_key_id": "setup",
              "aws_secret_access_key": "setup"}
        iam = boto3.client("iam", **kw)
        iam.create_user(UserName="backup-caller")
        iam.put_user_policy(UserName="backup-caller", PolicyName="assume-only",
                            PolicyDocument=doc({"Effect": "Allow", "Action": "sts:AssumeRole", "Resource": "*"}))
        key = iam.create_access_key(UserName="backup-caller")["AccessKey"]
        role_arn = iam.create_role(RoleName="backup-writer", AssumeRolePolicyDocument=doc(
            {"Effect": "Allow", "Principal": {"AWS": "*"}, "Action": "sts:AssumeRole"}))["Role"]["Arn"]
        iam.put_role_policy(RoleName="backup-writer", PolicyName="s3",
                            PolicyDocument=doc({"Effect": "Allow", "Action": "s3:*", "Resource": "*"}))
        bucket = f"role-{uuid.uuid4().hex[:12]}"
        boto3.client("s3", **kw).create_bucket(Bucket=bucket)
        conn = {"conn_type": "aws", "login": key["AccessKeyId"], "password": key["SecretAccessKey"],
                "extra": {"endpoint_url": server.endpoint_url, "region_name": "us-east-1", "role_arn": role_arn,
                          "assume_role_kwargs": {"RoleSessionName": "backup-dr-test", "ExternalId": "korea-public-data"},
                          "service_config": {"sts": {"endpoint_url": server.endpoint_url}}}}
        yield {"server": server, "bucket": bucket, "role_arn": role_arn, "key_id": key["AccessKeyId"],
               "secret": key["SecretAccessKey"], "conn": conn}


@pytest.fixture(scope="session")
def smtp_sink():
    sink = SmtpSink().start()
    set_connection("smtp_backup_alerts", conn_type="smtp", host="127.0.0.1", port=sink.port,
                   extra={"disable_tls": True, "disable_ssl": True, "from_email": "backup-dr@korea-public-data.example"})
    yield sink
    sink.stop()


@pytest.fixture(scope="session")
def slack_sink():
    sink = HttpSink().start()
    set_connection("slack_backup_alerts", conn_type="slackwebhook", host=f"{sink.url}/services", password=SLACK_TOKEN)
    yield sink
    sink.stop()


@pytest.fixture(scope="session")
def webhook_sink():
    """The app's side of DR: the repoint webhook (POST) and the health URL (GET answers 200)."""
    sink = HttpSink().start()
    set_connection("dr_repoint_webhook", conn_type="http", host=f"{sink.url}/admin/repoint", password="repoint-token-secret")
    os.environ["BACKUP_DR_APP_HEALTH_URL"] = f"{sink.url}/health"
    yield sink
    sink.stop()


@pytest.fixture
def sinks(smtp_sink, slack_sink):
    """Both alert sinks, emptied for this test."""
    smtp_sink.messages.clear()
    slack_sink.requests.clear()
    return smtp_sink, slack_sink


@pytest.fixture
def local_store_root(tmp_path, monkeypatch):
    root = tmp_path / "backups"
    root.mkdir()
    monkeypatch.setenv("BACKUP_DR_LOCAL_PATH", str(root))
    return root


@pytest.fixture
def app_dir(tmp_path, monkeypatch):
    """Config, logs and uploads directories like the API server's /app."""
    from backup_dr.devstack.app_files import make_app_dir

    root = make_app_dir(tmp_path / "app")
    monkeypatch.setenv("BACKUP_DR_APP_DIR", str(root))
    return root


# ----------------------------------------------------------------------------- airflow


@pytest.fixture(scope="session")
def airflow_db():
    """Migrate the SQLite metadata DB once per session."""
    from airflow.utils import db

    db.upgradedb()
    return _AIRFLOW_HOME


PG_HOST, PG_PORT, PG_USER = "127.0.0.1", 5432, "postgres"  # the machine's PostgreSQL, trust auth


def pg_conn_fields(database: str) -> dict:
    return {"conn_type": "postgres", "host": PG_HOST, "port": PG_PORT, "login": PG_USER, "schema": database}


def _pg_admin(sql: str, *params) -> None:
    import psycopg2

    db = psycopg2.connect(host=PG_HOST, port=PG_PORT, user=PG_USER, dbname="postgres")
    db.autocommit = True
    try:
        with db.cursor() as cur:
            cur.execute(sql, params or None)
    finally:
        db.close()


@pytest.fixture(scope="session")
def metadata_pg():
    """The policy's ``airflow_db`` source (``airflow_metadata_db``) and its drill scratch
    (``pg_scratch``) on the machine's PostgreSQL. The session's own Airflow runs on SQLite, so
    the source is a database of its own with Airflow-like tables (the real, migrated Airflow
    metadata DB is backed up in tests/integration/postgres/test_pg_airflow_metadata.py and by the
    Celery system test, whose Airflow runs on PostgreSQL); dropped at the end."""
    import psycopg2

    name = f"bdr_meta_{os.getuid()}_{uuid.uuid4().hex[:8]}"
    _pg_admin(f'CREATE DATABASE "{name}"')
    try:
        db = psycopg2.connect(host=PG_HOST, port=PG_PORT, user=PG_USER, dbname=name)
        with db, db.cursor() as cur:
            cur.execute("CREATE TABLE dag_run (id serial PRIMARY KEY, dag_id text NOT NULL, run_id text NOT NULL, state text)")
            cur.execute("CREATE TABLE variable (id serial PRIMARY KEY, key text UNIQUE, val text)")
            cur.execute("INSERT INTO dag_run (dag_id, run_id, state) SELECT 'backup_critical_data', 'scheduled__' || g, 'success' "
                        "FROM generate_series(1, 50) g")
            cur.execute("INSERT INTO variable (key, val) VALUES ('korea_api_base_url', 'https://apis.data.go.kr')")
        db.close()
        set_connection("airflow_metadata_db", **pg_conn_fields(name))
        set_connection("pg_scratch", **pg_conn_fields("postgres"))
        yield name
    finally:
        _pg_admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture(scope="session")
def policy():
    from backup_dr.core.policy import load_policy

    return load_policy(ROOT / "include" / "policy.yaml")
