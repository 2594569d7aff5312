"""docker-compose.yaml's Airflow deployment, mapped onto this machine for the Celery system test.

Docker does not run here, so the system test runs the SAME deployment as plain processes: every
variable the compose file gives the Airflow services is carried over, either verbatim or (for
endpoints and paths) rewritten to the local stand-in by a rule below. A variable the compose file
sets and this module has no rule for is an error, so the two cannot drift apart silently; what the
test adds on top (loopback ports, short heartbeat timeouts, ...) is listed in ``TEST_ONLY`` with
the reason. ``agreement(compose_env, ran_env)`` is what both the unit test (on the mapping) and
the system test (on the environment of the processes it really started) check.
"""

from __future__ import annotations

import json
import shlex
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable
from urllib.parse import urlsplit

import yaml

ROOT = Path(__file__).resolve().parents[2]
COMPOSE_FILE = ROOT / "docker-compose.yaml"


def load_compose() -> dict:
    return yaml.safe_load(COMPOSE_FILE.read_text(encoding="utf-8"))


def compose_airflow_env(compose: dict) -> dict[str, str]:
    """The environment every Airflow service of the compose file gets (``x-airflow-common``)."""
    return {k: str(v) for k, v in compose["x-airflow-common"]["environment"].items()}


def compose_workers(compose: dict) -> dict[str, list[str]]:
    """Celery worker services -> the queues each consumes (``celery worker --queues a,b``)."""
    out = {}
    for name, svc in compose["services"].items():
        argv = shlex.split(svc.get("command", "")) if isinstance(svc.get("command"), str) else []
        if argv[:2] == ["celery", "worker"]:
            queues = argv[argv.index("--queues") + 1] if "--queues" in argv else "default"
            out[name] = queues.split(",")
    return out


@dataclass
class Local:
    """Where the stand-ins of the compose services listen on this machine."""

    home: Path
    api_port: int
    pg_database: str
    amqp_vhost: str
    policy: Path
    local_store: Path
    s3_bucket: str
    gcs_bucket: str
    gcs_endpoint: str
    app_dir: Path
    app_health_url: str
    connections: dict[str, dict] = field(default_factory=dict)

    @property
    def api_url(self) -> str:
        return f"http://127.0.0.1:{self.api_port}"


def _pg(value: str, local: Local) -> str:
    """Same scheme and driver (``postgresql+psycopg2``, ``db+postgresql``); the local server and database."""
    scheme = value.split("://", 1)[0]
    return f"{scheme}://postgres@127.0.0.1:5432/{local.pg_database}"


def _amqp(value: str, local: Local) -> str:
    scheme = value.split("://", 1)[0]
    return f"{scheme}://guest:guest@127.0.0.1:5672/{local.amqp_vhost}"


def _api(value: str, local: Local) -> str:
    return local.api_url + urlsplit(value).path  # same path (``/execution/``), local api-server


#: compose variable -> how its value is rewritten for this machine (endpoints and paths only)
RULES: dict[str, Callable[[str, Local], str]] = {
    "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE": lambda v, loc: str(loc.home / Path(v).name),
    "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": _pg,
    "AIRFLOW__CELERY__RESULT_BACKEND": _pg,
    "AIRFLOW__CELERY__BROKER_URL": _amqp,
    "AIRFLOW__CORE__EXECUTION_API_SERVER_URL": _api,
    "AIRFLOW__API__BASE_URL": _api,
    "BACKUP_DR_POLICY": lambda v, loc: str(loc.policy),
    "BACKUP_DR_LOCAL_PATH": lambda v, loc: str(loc.local_store),
    "BACKUP_DR_S3_BUCKET": lambda v, loc: loc.s3_bucket,
    "BACKUP_DR_GCS_BUCKET": lambda v, loc: loc.gcs_bucket,
    "BACKUP_DR_APP_DIR": lambda v, loc: str(loc.app_dir),
    "BACKUP_DR_APP_HEALTH_URL": lambda v, loc: loc.app_health_url,
    "STORAGE_EMULATOR_HOST": lambda v, loc: loc.gcs_endpoint,
}

#: compose variables carried over verbatim
SAME = (
    "AIRFLOW__CORE__EXECUTOR",
    "AIRFLOW__CORE__AUTH_MANAGER",
    "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS",
    "AIRFLOW__CORE__FERNET_KEY",
    "AIRFLOW__CORE__DAGS_ARE_PAUSED_AT_CREATION",
    "AIRFLOW__CORE__LOAD_EXAMPLES",
    "AIRFLOW__SCHEDULER__ENABLE_HEALTH_CHECK",
    # the fallback alert route (policy unloadable): recipients and the connection ids, which the
    # test provisions itself (smtp/slack stand-ins), so the values carry over unchanged
    "BACKUP_DR_FALLBACK_EMAIL_TO",
    "BACKUP_DR_FALLBACK_SMTP_CONN_ID",
    "BACKUP_DR_FALLBACK_SLACK_CONN_ID",
)

#: what the test adds, and why (none of these is set by the compose file)
TEST_ONLY: dict[str, str] = {
    "AIRFLOW_HOME": "a temporary home shared by every process (the compose file's airflow-logs/config volumes)",
    "AIRFLOW__CORE__DAGS_FOLDER": "this checkout's dags/ (compose mounts it at /opt/airflow/dags)",
    "AIRFLOW__CORE__PLUGINS_FOLDER": "this checkout's plugins/ (compose mounts it at /opt/airflow/plugins)",
    "AIRFLOW__CORE__HOSTNAME_CALLABLE": "socket.gethostname: each worker's own (UTS namespace) name without a DNS lookup of it",
    "AIRFLOW__API__HOST": "127.0.0.1 only (compose publishes the container's port 8080)",
    "AIRFLOW__API__PORT": "a free port on a shared machine",
    "AIRFLOW__SCHEDULER__SCHEDULER_HEALTH_CHECK_SERVER_HOST": "127.0.0.1 only",
    "AIRFLOW__SCHEDULER__SCHEDULER_HEALTH_CHECK_SERVER_PORT": "a free port on a shared machine",
    "AIRFLOW__CORE__PARALLELISM": "4 on a 2-core machine shared by several test runs",
    "AIRFLOW__SCHEDULER__TASK_INSTANCE_HEARTBEAT_TIMEOUT": "30 s instead of 300 s, so a lost worker's task is failed and retried within the test",
    "AIRFLOW__SCHEDULER__TASK_INSTANCE_HEARTBEAT_TIMEOUT_DETECTION_INTERVAL": "2 s instead of 10 s (same reason)",
    "AIRFLOW__DAG_PROCESSOR__REFRESH_INTERVAL": "5 s: the DAGs appear soon after start",
    "AIRFLOW__SCHEDULER__MIN_FILE_PROCESS_INTERVAL": "5 s (same reason)",
    "BACKUP_DR_RETRY_DELAY": "retries back off in seconds, not minutes (the retry count stays as in production)",
    "BACKUP_DR_MAX_RETRY_DELAY": "(same reason)",
    "PYTHONPATH": "plugins/ importable by every process, as the image's /opt/airflow/plugins is",
    "PATH": "the venv's airflow and celery executables first",
    "PYTHONDONTWRITEBYTECODE": "no __pycache__ written into this checkout's dags/",
}


def local_env(compose_env: dict[str, str], local: Local) -> dict[str, str]:
    """The compose file's Airflow environment with every endpoint and path pointed at ``local``."""
    out = {}
    for key, value in compose_env.items():
        if key in SAME:
            out[key] = value
        elif key in RULES:
            out[key] = RULES[key](value, local)
        elif key.startswith("AIRFLOW_CONN_"):
            conn_id = key[len("AIRFLOW_CONN_"):].lower()
            if conn_id not in local.connections:
                raise KeyError(f"docker-compose.yaml provisions connection {conn_id!r}; the system test has no local stand-in for it")
            out[key] = json.dumps(local.connections[conn_id])
        else:
            raise KeyError(f"docker-compose.yaml sets {key}; tests/system/compose_env.py has no rule for it "
                           "(add it to SAME or RULES so the Celery system test runs with it too)")
    return out


def _scheme(url: str) -> str:
    return url.split("://", 1)[0]


def agreement(compose_env: dict[str, str], ran_env: dict[str, str]) -> list[str]:
    """What must be equal between the compose deployment and a run: returns the differences."""
    problems = []
    for key in compose_env:
        if key not in ran_env:
            problems.append(f"{key}: set by docker-compose.yaml, missing from the run")
    for key in SAME:
        if key in compose_env and ran_env.get(key) != compose_env[key]:
            problems.append(f"{key}: compose {compose_env[key]!r} != run {ran_env.get(key)!r}")
    for key in ("AIRFLOW__CELERY__BROKER_URL", "AIRFLOW__CELERY__RESULT_BACKEND", "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"):
        if key in compose_env and _scheme(ran_env.get(key, "")) != _scheme(compose_env[key]):
            problems.append(f"{key}: compose uses {_scheme(compose_env[key])}://, the run {_scheme(ran_env.get(key, ''))}://")
    for key, value in compose_env.items():
        if key.startswith("AIRFLOW_CONN_") and key in ran_env:
            want, got = json.loads(value).get("conn_type"), json.loads(ran_env[key]).get("conn_type")
            if want != got:
                problems.append(f"{key}: conn_type {want!r} in compose, {got!r} in the run")
    extra = sorted(k for k in ran_env if (k.startswith("AIRFLOW__") or k.startswith("BACKUP_DR_") or k.startswith("AIRFLOW_CONN_"))
                   and k not in compose_env and k not in TEST_ONLY)
    problems += [f"{k}: set by the run, neither in docker-compose.yaml nor in TEST_ONLY" for k in extra]
    return problems
