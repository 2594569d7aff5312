"""docker-compose.yaml cannot run here (no Docker engine); test everything it references instead."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from backup_dr.core.connections import mongo_uri, parse_conn
from backup_dr.core.policy import load_policy

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def compose():
    return yaml.safe_load((ROOT / "docker-compose.yaml").read_text())


@pytest.fixture(scope="module")
def airflow_env(compose):
    return compose["x-airflow-common"]["environment"]


AIRFLOW_SERVICES = ("airflow-apiserver", "airflow-scheduler", "airflow-dag-processor", "airflow-worker", "airflow-triggerer", "airflow-init")


def test_every_service_of_the_stack_is_there(compose):
    services = set(compose["services"])
    expected = {
        "postgres", "airflow-broker", "airflow-worker-near-db", *AIRFLOW_SERVICES,
        "mongo1", "mongo2", "mongo3", "mongo-init", "mongo-scratch", "app-redis",
        "minio", "minio-init", "fake-gcs", "mailpit", "slack-sink", "api", "mongo-dr", "redis-dr",
    }
    assert expected <= services, expected - services


def test_images_are_pinned(compose):
    for name, svc in compose["services"].items():
        image = svc.get("image")
        assert image, f"{name} has no image"
        assert ":" in image and not image.endswith(":latest"), f"{name}: pin the image tag ({image})"


def test_airflow_services_share_the_common_block(compose):
    commands = {"airflow-apiserver": "api-server", "airflow-scheduler": "scheduler", "airflow-dag-processor": "dag-processor",
                "airflow-triggerer": "triggerer", "airflow-worker": "celery worker --queues default",
                "airflow-worker-near-db": "celery worker --queues default,near_db"}
    for name, command in commands.items():
        svc = compose["services"][name]
        assert svc["command"] == command
        assert svc["image"] == "backup-dr-airflow:3.3.2"
        mounts = {v.split(":")[1] for v in svc["volumes"]}
        assert {"/opt/airflow/dags", "/opt/airflow/plugins", "/opt/airflow/include", "/opt/airflow/backups"} <= mounts, name
    # the airflow CLI really has these sub-commands
    out = subprocess.run([str(ROOT / ".venv/bin/airflow"), "--help"], capture_output=True, text=True, timeout=120).stdout
    for command in ("api-server", "scheduler", "dag-processor", "triggerer", "celery"):
        assert re.search(rf"^\s+{command}\s", out, re.M), command
    worker = subprocess.run([str(ROOT / ".venv/bin/airflow"), "celery", "worker", "--help"], capture_output=True, text=True,
                            timeout=120).stdout
    assert "--queues" in worker and "--skip-serve-logs" in worker


def test_init_job_creates_the_pools_the_dags_need(compose):
    script = compose["services"]["airflow-init"]["command"][-1]
    assert "python -m backup_dr pools --out /tmp/backup_dr_pools.json" in script
    assert "airflow pools import /tmp/backup_dr_pools.json" in script


def test_celery_executor_with_rabbitmq_broker_and_postgres(airflow_env, compose):
    assert airflow_env["AIRFLOW__CORE__EXECUTOR"] == "CeleryExecutor"
    broker = compose["services"]["airflow-broker"]
    assert broker["image"].startswith("rabbitmq:")
    user, vhost = broker["environment"]["RABBITMQ_DEFAULT_USER"], broker["environment"]["RABBITMQ_DEFAULT_VHOST"]
    assert airflow_env["AIRFLOW__CELERY__BROKER_URL"] == (
        f"amqp://{user}:{broker['environment']['RABBITMQ_DEFAULT_PASS']}@airflow-broker:5672/{vhost}")
    # a dump holds its (late-acknowledged) message for hours: RabbitMQ's 30 min consumer_timeout is raised
    conf = (ROOT / "docker" / "rabbitmq" / "backup-dr.conf").read_text()
    timeout_ms = int(re.search(r"^consumer_timeout\s*=\s*(\d+)$", conf, re.M).group(1))
    longest_job = max(j.timeout for c in load_policy(ROOT / "include" / "policy.yaml").classes.values() for j in c.jobs)
    assert timeout_ms / 1000 > longest_job.total_seconds()
    assert any(v.startswith("./docker/rabbitmq/backup-dr.conf:/etc/rabbitmq/conf.d/") for v in broker["volumes"])
    assert airflow_env["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"].startswith("postgresql+psycopg2://") and "@postgres/" in airflow_env["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"]
    assert compose["services"]["airflow-init"]["environment"]["_AIRFLOW_DB_MIGRATE"] == "true"


def test_auth_manager_class_exists(airflow_env):
    import importlib

    module, _, cls = airflow_env["AIRFLOW__CORE__AUTH_MANAGER"].rpartition(".")
    assert hasattr(importlib.import_module(module), cls)


def test_every_policy_connection_is_provisioned(airflow_env):
    policy = load_policy(ROOT / "include" / "policy.yaml")
    needed = {s.conn_id for s in policy.stores.values() if s.conn_id}
    needed |= {getattr(s, "conn_id", None) for s in policy.sources.values()} - {None}
    needed |= {policy.alerts.email_conn_id, policy.alerts.slack_conn_id, policy.ops.scratch_mongodb_conn_id, policy.ops.repoint_webhook_conn_id}
    needed |= {c for sc in policy.scenarios.values() for c in (sc.target_conn_id, sc.redis_target_conn_id) if c}
    provisioned = {k[len("AIRFLOW_CONN_"):].lower(): v for k, v in airflow_env.items() if k.startswith("AIRFLOW_CONN_")}
    assert needed <= set(provisioned), needed - set(provisioned)
    conns = {cid: parse_conn(cid, provisioned[cid]) for cid in needed}
    assert conns["mongo_korea_public_data"].conn_type == "mongo"
    uri = mongo_uri(conns["mongo_korea_public_data"])
    assert uri.startswith("mongodb://backup:backup-secret@mongo1:27017,mongo2:27017,mongo3:27017/") and "replicaSet=rs0" in uri
    assert conns["backup_s3"].extra["endpoint_url"] == "http://minio:9000"
    assert conns["backup_gcs"].extra["is_anonymous"] is True
    assert conns["smtp_backup_alerts"].host == "mailpit"
    assert conns["redis_cache"].host == "app-redis"


def test_policy_variables_point_into_the_stack(airflow_env, compose, monkeypatch):
    for key in ("BACKUP_DR_POLICY", "BACKUP_DR_LOCAL_PATH", "BACKUP_DR_S3_BUCKET", "BACKUP_DR_GCS_BUCKET", "BACKUP_DR_APP_DIR", "STORAGE_EMULATOR_HOST"):
        assert airflow_env.get(key), key
        monkeypatch.setenv(key, airflow_env[key])
    policy = load_policy(ROOT / "include" / "policy.yaml")
    assert policy.stores["local"].path == "/opt/airflow/backups"
    # the S3 bucket exists in MinIO and the GCS bucket is preloaded into fake-gcs-server
    init = " ".join(compose["services"]["minio-init"]["entrypoint"])
    assert f"mc mb --ignore-existing local/{policy.stores['s3'].bucket}" in init
    assert "--with-lock" in init
    assert (ROOT / "docker" / "gcs" / policy.stores["gcs"].bucket).is_dir()
    assert policy.sources["app_config"].path == "/app/config"


def test_mongo_replica_set_has_three_members_and_an_init_job(compose):
    js = (ROOT / "docker" / "mongo" / "init-replica-set.js").read_text()
    assert js.count('host: "mongo') == 3 and '_id: "rs0"' in js
    for m in ("mongo1", "mongo2", "mongo3"):
        assert "--replSet" in compose["services"][m]["command"] and "rs0" in compose["services"][m]["command"]
    assert "/scripts/init-replica-set.js" in compose["services"]["mongo-init"]["entrypoint"]
    keyfile = (ROOT / "docker" / "mongo" / "keyfile").read_text().strip()
    assert 6 <= len(keyfile) <= 1024 and re.fullmatch(r"[A-Za-z0-9+/=]+", keyfile)


def test_app_redis_has_aof_and_a_minimal_backup_user(compose, airflow_env):
    conf = (ROOT / "docker" / "redis" / "redis.conf").read_text()
    assert re.search(r"^appendonly yes$", conf, re.M)
    acl = (ROOT / "docker" / "redis" / "users.acl").read_text()
    backup = next(line for line in acl.splitlines() if line.startswith("user backup "))
    assert all(p in backup.split() for p in ("+sync", "+psync", "+replconf"))
    redis_conn = parse_conn("redis_cache", airflow_env["AIRFLOW_CONN_REDIS_CACHE"])
    assert f">{redis_conn.password}" in backup.split() and redis_conn.login == "backup"


def test_ports_and_volumes(compose):
    published = {p.split(":")[0] for svc in compose["services"].values() for p in svc.get("ports", [])}
    assert {"8080", "8025", "9000", "9001", "4443"} <= published
    declared = set(compose["volumes"])
    for name, svc in compose["services"].items():
        for v in svc.get("volumes", []):
            src = v.split(":")[0]
            if src.startswith("."):
                assert (ROOT / src).exists(), f"{name}: {src} does not exist"
            else:
                assert src in declared, f"{name}: named volume {src} not declared"


def test_dockerfile_pins_airflow_and_installs_worker_tools():
    text = (ROOT / "docker" / "Dockerfile").read_text()
    assert "FROM apache/airflow:3.3.2-python3.11" in text
    assert "redis-server" in text and "git" in text
    reqs = (ROOT / "docker" / "requirements-docker.txt").read_text()
    pins = dict(line.split("==") for line in reqs.splitlines() if "==" in line)
    local = dict(line.split("==") for line in (ROOT / "constraints-3.3.2-py3.11.txt").read_text().splitlines() if "==" in line)
    for name, version in pins.items():
        assert local.get(name) == version, f"{name}: docker pin {version} differs from constraints {local.get(name)}"


def test_connection_json_is_valid(airflow_env):
    for key, value in airflow_env.items():
        if key.startswith("AIRFLOW_CONN_"):
            conn = json.loads(value)
            assert isinstance(conn, dict) and conn.get("conn_type"), key


def test_the_stand_in_api_serves_health_and_accepts_repoint(tmp_path):
    import os
    import time
    import urllib.request

    from backup_dr.devstack.servers import free_port

    port = free_port()
    proc = subprocess.Popen([sys.executable, str(ROOT / "docker" / "api" / "fake_api.py")],
                            env={**os.environ, "APP_DIR": str(tmp_path), "HOST": "127.0.0.1", "PORT": str(port)})
    try:
        for _ in range(100):
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=1) as r:
                    assert r.status == 200 and json.loads(r.read())["status"] == "ok"
                break
            except OSError:
                time.sleep(0.1)
        req = urllib.request.Request(f"http://127.0.0.1:{port}/admin/repoint", data=b'{"mongodb": {"host": "mongo-dr"}}', method="POST")
        with urllib.request.urlopen(req, timeout=5) as r:
            assert r.status == 200
        assert json.loads((tmp_path / "config" / "datasources.json").read_text())["mongodb"]["host"] == "mongo-dr"
    finally:
        proc.terminate()
        proc.wait(10)


def test_the_fallback_alert_route_is_configured_and_provisioned(airflow_env):
    """An unreadable policy must still alert: the watchdog's route lives in the environment."""
    from backup_dr.core.policy_fallback import fallback_alerts

    fallback = fallback_alerts({k: str(v) for k, v in airflow_env.items()})
    assert fallback.problems == () and fallback.alerts.email_to and fallback.alerts.slack_conn_id
    for conn_id in (fallback.alerts.email_conn_id, fallback.alerts.slack_conn_id):
        assert f"AIRFLOW_CONN_{conn_id.upper()}" in airflow_env, conn_id


def test_prometheus_scrapes_the_plugin_with_the_shipped_rules_and_a_refreshed_token(compose, airflow_env, tmp_path):
    """The Prometheus service: the shipped config (valid for promtool once its paths are local),
    its rules mounted where the config looks, the API server as target at the plugin's path,
    and a bearer token that the token service writes where Prometheus reads it, for a
    read-only user the API server knows."""
    import shutil

    from backup_dr.ui import URL_PREFIX

    prom, token = compose["services"]["prometheus"], compose["services"]["prometheus-token"]
    mounts = {v.split(":")[1]: v.split(":")[0] for v in prom["volumes"]}
    config_arg = next(a for a in prom["command"] if a.startswith("--config.file="))
    config_path = Path(config_arg.split("=", 1)[1])
    host_dir = ROOT / mounts[str(config_path.parent)]
    config = yaml.safe_load((host_dir / config_path.name).read_text())
    for rule_file in config["rule_files"]:
        assert (host_dir / rule_file).is_file(), rule_file  # relative to the config, inside the mount
    job = config["scrape_configs"][0]
    assert job["metrics_path"] == f"{URL_PREFIX}/metrics"
    [target] = job["static_configs"][0]["targets"]
    host, port = target.split(":")
    assert host == "airflow-apiserver" and f"{port}:{port}" in compose["services"][host]["ports"]
    # the token: written by the token service into the volume Prometheus reads it from
    credentials = Path(job["authorization"]["credentials_file"])
    token_mounts = {v.split(":")[1]: v.split(":")[0] for v in token["volumes"]}
    out = Path(token["command"][token["command"].index("--out") + 1])
    assert mounts[str(credentials.parent)] == token_mounts[str(out.parent)] and out.name == credentials.name
    assert token["image"] == compose["x-airflow-common"]["image"]  # Airflow's image: python, and the helper via ./include
    assert token_mounts["/opt/airflow/include"] == "./include" and token["entrypoint"][-1].startswith("/opt/airflow/include/")
    assert (ROOT / token["entrypoint"][-1].replace("/opt/airflow/", "")).is_file()
    user = token["command"][token["command"].index("--user") + 1]
    assert f"{user}:viewer" in airflow_env["AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS"].split(",")
    passwords = token["command"][token["command"].index("--passwords-file") + 1]
    assert passwords == airflow_env["AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE"]
    assert token_mounts[str(Path(passwords).parent)] == "airflow-config"
    assert "9090:9090" in prom["ports"] and {"prometheus-data", "prometheus-token"} <= set(compose["volumes"])
    # and promtool accepts the config, with its container paths made local
    promtool = shutil.which("promtool")
    if promtool is None:
        pytest.skip("promtool missing: bash scripts/setup.sh installs the Debian prometheus package")
    (tmp_path / "token").write_text("x")
    job["authorization"]["credentials_file"] = str(tmp_path / "token")
    config["rule_files"] = [str(host_dir / f) for f in config["rule_files"]]
    (tmp_path / "prometheus.yml").write_text(yaml.safe_dump(config))
    out = subprocess.run([promtool, "check", "config", str(tmp_path / "prometheus.yml")], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stdout + out.stderr
