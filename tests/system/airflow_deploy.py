"""Running Airflow for real in system tests: PostgreSQL databases, RabbitMQ vhosts, Airflow
processes started (and stopped) by process group, and a small REST API client.

Shared by test_real_scheduler.py (``airflow standalone``) and test_celery_executor.py (the
docker-compose deployment as separate processes: api-server, scheduler, dag-processor,
triggerer and two Celery workers).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path
from typing import Callable

ROOT = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent
PG = "postgresql+psycopg2://postgres@127.0.0.1:5432/"


def psql(sql: str) -> None:
    subprocess.run(["psql", "-h", "127.0.0.1", "-U", "postgres", "-d", "postgres", "-v", "ON_ERROR_STOP=1", "-c", sql],
                   check=True, capture_output=True, timeout=60)


def rabbitmqctl(*args: str) -> str:
    """The machine's RabbitMQ (127.0.0.1:5672) administered as root; raises with its own message."""
    proc = subprocess.run(["rabbitmqctl", *args], capture_output=True, text=True, timeout=60)
    if proc.returncode != 0:
        raise RuntimeError(f"rabbitmqctl {' '.join(args)} failed: {proc.stderr.strip() or proc.stdout.strip()}")
    return proc.stdout


def wait_until(check: Callable[[], object], what: str, timeout: float, interval: float = 1.0):
    """Poll ``check`` until it returns something truthy (returned); fail naming ``what``."""
    deadline = time.monotonic() + timeout
    last: object = None
    while time.monotonic() < deadline:
        try:
            last = check()
        except (OSError, AssertionError, KeyError, TypeError, ValueError) as e:
            last = e
        if last and not isinstance(last, Exception):
            return last
        time.sleep(interval)
    raise AssertionError(f"{what}: not reached within {timeout:.0f}s (last: {last!r})")


class AirflowProcess:
    """One Airflow component in its own session (process group), its output in a log file."""

    def __init__(self, name: str, argv: list[str], env: dict[str, str], logdir: Path, cwd: Path):
        self.name, self.argv, self.env = name, argv, env
        self.logfile = logdir / f"{name}.log"
        self._log = open(self.logfile, "ab")
        self.proc = subprocess.Popen(argv, env=env, stdout=self._log, stderr=subprocess.STDOUT, cwd=cwd, start_new_session=True)

    @property
    def pid(self) -> int:
        return self.proc.pid

    def alive(self) -> bool:
        return self.proc.poll() is None

    def tail(self, n: int = 3000) -> str:
        return self.logfile.read_text(errors="replace")[-n:]

    def kill_group(self) -> None:
        """SIGKILL the whole process group: the component and every task process it forked (a host lost)."""
        os.killpg(self.proc.pid, signal.SIGKILL)
        self.proc.wait(30)

    def stop(self, timeout: float = 20) -> None:
        if self.alive():
            try:
                os.killpg(self.proc.pid, signal.SIGTERM)
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(10)
            except ProcessLookupError:
                pass
        try:  # leftovers of the group (a task process the component did not reap)
            os.killpg(self.proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        self._log.close()



class Api:
    """Airflow's public REST API, as a user's script would drive it."""

    def __init__(self, base: str, passwords_file: Path):
        self.base, self.passwords_file, self.token = base, passwords_file, None

    def call(self, method: str, path: str, body: dict | None = None, expect: tuple = (200, 201)):
        data = json.dumps(body).encode() if body is not None else None
        req = urllib.request.Request(self.base + path, data=data, method=method, headers={"Content-Type": "application/json"})
        if self.token:
            req.add_header("Authorization", f"Bearer {self.token}")
        try:
            with urllib.request.urlopen(req, timeout=30) as r:
                status, raw = r.status, r.read()
        except urllib.error.HTTPError as e:
            status, raw = e.code, e.read()
        assert status in expect, (method, path, status, raw[:500])
        return json.loads(raw) if raw else None

    def login(self):
        password = json.loads(self.passwords_file.read_text())["admin"]
        self.token = self.call("POST", "/auth/token", {"username": "admin", "password": password})["access_token"]

    def run_path(self, dag_id: str, run_id: str) -> str:
        return f"/api/v2/dags/{dag_id}/dagRuns/{urllib.parse.quote(run_id, safe='')}"

    def wait_run(self, dag_id: str, run_id: str, states=("success", "failed"), timeout: float = 300) -> dict:
        return wait_until(lambda: (lambda r: r if r["state"] in states else None)(self.call("GET", self.run_path(dag_id, run_id))),
                          f"{dag_id} {run_id} in {states}", timeout, interval=2)

    def trigger(self, dag_id: str, conf: dict | None = None) -> str:
        self.call("PATCH", f"/api/v2/dags/{dag_id}", {"is_paused": False})
        return self.call("POST", f"/api/v2/dags/{dag_id}/dagRuns", {"logical_date": None, "conf": conf or {}})["dag_run_id"]

    def task_instances(self, dag_id: str, run_id: str) -> list[dict]:
        return self.call("GET", self.run_path(dag_id, run_id) + "/taskInstances?limit=100")["task_instances"]

    def tries(self, dag_id: str, run_id: str, task_id: str, map_index: int = -1) -> list[dict]:
        """Every attempt of a task instance (hostname, state, start/end), oldest first."""
        path = self.run_path(dag_id, run_id) + f"/taskInstances/{task_id}/{map_index}/tries" if map_index >= 0 else \
            self.run_path(dag_id, run_id) + f"/taskInstances/{task_id}/tries"
        return sorted(self.call("GET", path)["task_instances"], key=lambda t: t["try_number"])

    def wait_dags(self, dag_ids: set[str], timeout: float = 180) -> None:
        wait_until(lambda: dag_ids <= {d["dag_id"] for d in self.call("GET", "/api/v2/dags?limit=100")["dags"]},
                   f"DAGs {sorted(dag_ids)} serialized", timeout)


def import_pools(env: dict[str, str], cwd: Path) -> dict:
    """What a deployment does once (docker-compose's airflow-init): the policy's pools into Airflow."""
    pools_file = cwd / "backup_dr_pools.json"
    subprocess.run([sys.executable, "-m", "backup_dr", "pools", "--out", str(pools_file)], env=env, check=True,
                   capture_output=True, timeout=120, cwd=cwd)
    subprocess.run([str(BIN / "airflow"), "pools", "import", str(pools_file)], env=env, check=True, capture_output=True,
                   timeout=300, cwd=cwd)
    return json.loads(pools_file.read_text())
