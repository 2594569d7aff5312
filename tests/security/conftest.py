"""The secrets-hygiene stack: every service with a recognisable secret, and a /proc sampler.

Every credential the system uses is set to a value nobody could produce by accident
(``S3cr3t-<SERVICE>-<hex>``): MongoDB users on private SecantusDB instances started with
``--auth`` (production, the drill's scratch server, the DR target), a Redis ``requirepass``,
the S3 secret key, the SMTP password (the sink requires AUTH), the Slack webhook token, the
repoint webhook token and the master key of an encrypted class. The tests then look for
those values everywhere a person or another process could see them.
"""

from __future__ import annotations

import base64
import json
import threading
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import yaml

from backup_dr.devstack import sample_data
from backup_dr.devstack.servers import HttpSink, MongoServer, RedisServer
from tests.faults.conftest import AuthSmtpSink, Output

ROOT = Path(__file__).resolve().parents[2]

SECRETS = {
    "mongo": "S3cr3t-MONGO-4f1d",
    "mongo_scratch": "S3cr3t-SCRATCH-8e2a",
    "mongo_dr": "S3cr3t-DRTGT-6b1c",
    "redis": "S3cr3t-REDIS-2c9d",
    "s3": "S3cr3t-S3KEY-7a3f/abc+XYZ",
    "smtp": "S3cr3t-SMTP-0d4a",
    "slack": "S3cr3t-SLACK-5e8b",
    "repoint": "S3cr3t-REPOINT-3f7c",
    "encryption_key": base64.b64encode(b"S3cr3t-ENCKEY-9a0b-32-bytes-key!").decode(),
}


class ArgvSampler:
    """Reads /proc/<pid>/cmdline of every process every ``every`` seconds while running and
    records any command line holding a secret (a password on argv is visible to every user
    of the machine through ``ps``)."""

    def __init__(self, secrets: dict[str, str], every: float = 0.05):
        self.secrets, self.every = secrets, every
        self.hits: list[tuple[str, int, str]] = []
        self.samples = 0
        self.commands: set[str] = set()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True, name="argv-sampler")

    def _run(self) -> None:
        while not self._stop.is_set():
            for d in Path("/proc").iterdir():
                if not d.name.isdigit():
                    continue
                try:
                    argv = (d / "cmdline").read_bytes().replace(b"\0", b" ").decode("utf-8", "replace").strip()
                except OSError:
                    continue
                if not argv:
                    continue
                self.commands.add(argv[:160])
                for name, secret in self.secrets.items():
                    if secret in argv:
                        self.hits.append((name, int(d.name), argv[:300]))
            self.samples += 1
            self._stop.wait(self.every)

    def __enter__(self) -> "ArgvSampler":
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join(10)


def auth_mongo(workdir: Path, password: str) -> MongoServer:
    """A SecantusDB requiring SCRAM auth with user ``backup`` / ``password`` (created, then restarted with --auth)."""
    server = MongoServer(workdir, oplog_max_entries=200_000).start()
    with server.client() as c:
        c.admin.command("createUser", "backup", pwd=password, roles=["root"])
    server.stop()
    server.auth = True
    return server.start()


def _mongo_conn(server: MongoServer, password: str) -> str:
    return json.dumps({"conn_type": "mongo", "host": "127.0.0.1", "port": server.port, "login": "backup", "password": password,
                       "extra": {"directConnection": True, "authSource": "admin", "serverSelectionTimeoutMS": 3000,
                                 "connectTimeoutMS": 3000}})


@dataclass
class SecretStack:
    prod: MongoServer
    scratch: MongoServer
    dr_target: MongoServer
    redis: RedisServer
    smtp: AuthSmtpSink
    slack: HttpSink
    webhook: HttpSink
    local: Path
    s3_bucket: str
    gcs_bucket: str
    servers: list = field(default_factory=list)

    def admin(self, server: MongoServer, password: str):
        return server.client(username="backup", password=password, authSource="admin")


@pytest.fixture
def output(capfd, caplog) -> Output:
    caplog.set_level("INFO")
    return Output(capfd, caplog)


@pytest.fixture
def secret_stack(airflow_db, metadata_pg, local_store_root, s3_server, s3_bucket, gcs_bucket, app_dir, tmp_path, monkeypatch):
    prod = auth_mongo(tmp_path / "prod", SECRETS["mongo"])
    scratch = auth_mongo(tmp_path / "scratch", SECRETS["mongo_scratch"])
    dr_target = auth_mongo(tmp_path / "dr", SECRETS["mongo_dr"])
    redis = RedisServer(tmp_path / "redis", password=SECRETS["redis"]).start()
    smtp = AuthSmtpSink("alerts", SECRETS["smtp"]).start()
    slack = HttpSink().start()
    webhook = HttpSink().start()
    stack = SecretStack(prod, scratch, dr_target, redis, smtp, slack, webhook, local_store_root, s3_bucket, gcs_bucket)
    try:
        with stack.admin(prod, SECRETS["mongo"]) as c:
            sample_data.seed_mongo(c, {"announcements": 600, "businesses": 400, "contents": 100, "statistics": 200})
        with redis.client() as r:
            sample_data.seed_redis(r, 800)
        # every connection the policy names, with its recognisable secret
        env = {
            "MONGO_KOREA_PUBLIC_DATA": _mongo_conn(prod, SECRETS["mongo"]),
            "MONGO_SCRATCH": _mongo_conn(scratch, SECRETS["mongo_scratch"]),
            "MONGO_DR_TARGET": _mongo_conn(dr_target, SECRETS["mongo_dr"]),
            "REDIS_CACHE": json.dumps({"conn_type": "redis", "host": "127.0.0.1", "port": redis.port, "password": SECRETS["redis"]}),
            "BACKUP_S3": json.dumps({"conn_type": "aws", "login": "AKIAHYGIENETEST00001", "password": SECRETS["s3"],
                                     "extra": {"endpoint_url": s3_server.endpoint_url, "region_name": "us-east-1"}}),
            "SMTP_BACKUP_ALERTS": json.dumps({"conn_type": "smtp", "host": "127.0.0.1", "port": smtp.port, "login": "alerts",
                                              "password": SECRETS["smtp"], "extra": {
                                                  "disable_tls": True, "disable_ssl": True,
                                                  "from_email": "backup-dr@korea-public-data.example"}}),
            "SLACK_BACKUP_ALERTS": json.dumps({"conn_type": "slackwebhook", "host": f"{slack.url}/services",
                                               "password": f"T0HYG/B0HYG/{SECRETS['slack']}"}),
            "DR_REPOINT_WEBHOOK": json.dumps({"conn_type": "http", "host": f"{webhook.url}/admin/repoint",
                                              "password": SECRETS["repoint"]}),
            "BACKUP_ENCRYPTION_KEY": json.dumps({"conn_type": "generic", "password": SECRETS["encryption_key"]}),
        }
        for conn_id, value in env.items():
            monkeypatch.setenv(f"AIRFLOW_CONN_{conn_id}", value)
        monkeypatch.setenv("BACKUP_DR_APP_HEALTH_URL", f"{webhook.url}/health")
        # the critical class is encrypted: its master key is a secret too
        doc = yaml.safe_load((ROOT / "include" / "policy.yaml").read_text(encoding="utf-8"))
        doc["classes"]["critical_data"]["encryption"] = {"key_conn_id": "backup_encryption_key"}
        policy = tmp_path / "policy.yaml"
        policy.write_text(yaml.safe_dump(doc, allow_unicode=True, sort_keys=False), encoding="utf-8")
        monkeypatch.setenv("BACKUP_DR_POLICY", str(policy))
        yield stack
    finally:
        smtp.stop()
        slack.stop()
        webhook.stop()
        for server in (prod, scratch, dr_target, redis):
            server.cleanup()
