"""The system as a newcomer runs it: `airflow standalone` (scheduler, dag-processor, triggerer,
api-server, LocalExecutor) on a PostgreSQL metadata DB, driven only through the REST API:
backup_critical_data triggered through the API runs to success, every task (replication reads
every copy back and hashes it), in its pool (imported first, as every deployment must).

The distributed deployment users run (docker-compose: CeleryExecutor, two workers) is
test_celery_executor.py, which also covers the Asset-triggered deploy backup, the deadline alert
from the triggerer and the approval through the API on that deployment.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import urllib.parse
import uuid
from pathlib import Path

import pytest

from backup_dr.devstack.servers import free_port
from tests.system.airflow_deploy import PG, Api, import_pools, psql

pytestmark = pytest.mark.slow
ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def airflow_standalone(tmp_path, seeded_mongo, mongo_scratch_server, s3_bucket, gcs_bucket, local_store_root, app_dir,
                       redis_server, sinks, webhook_sink):
    db = f"backup_dr_e2e_{uuid.uuid4().hex[:8]}"
    psql(f"CREATE DATABASE {db}")
    home = tmp_path / "airflow-home"
    home.mkdir()
    port = free_port()
    env = {
        **os.environ,
        "AIRFLOW_HOME": str(home),
        "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": PG + db,
        "AIRFLOW__CORE__EXECUTOR": "LocalExecutor",
        "AIRFLOW__CORE__PARALLELISM": "4",
        "AIRFLOW__API__HOST": "127.0.0.1",
        "AIRFLOW__API__PORT": str(port),
        "AIRFLOW__API__BASE_URL": f"http://127.0.0.1:{port}",
        "AIRFLOW__CORE__EXECUTION_API_SERVER_URL": f"http://127.0.0.1:{port}/execution/",
        "AIRFLOW__SCHEDULER__MIN_FILE_PROCESS_INTERVAL": "5",
        "AIRFLOW__DAG_PROCESSOR__REFRESH_INTERVAL": "5",
        "PYTHONPATH": str(ROOT / "plugins"),
        "PYTHONDONTWRITEBYTECODE": "1",  # no dags/__pycache__ in the checkout (the DagBag I/O test would see it)
        "PATH": f"{Path(sys.executable).parent}:{os.environ.get('PATH', '/usr/bin:/bin')}",  # standalone spawns `airflow`
    }
    env.pop("AIRFLOW__CORE__UNIT_TEST_MODE", None)
    set_target = {"conn_type": "mongo", "host": "127.0.0.1", "port": mongo_scratch_server.port, "extra": {"directConnection": True}}
    env["AIRFLOW_CONN_MONGO_DR_TARGET"] = json.dumps(set_target)
    subprocess.run([str(Path(sys.executable).parent / "airflow"), "db", "migrate"], env=env, check=True, capture_output=True,
                   timeout=600, cwd=tmp_path)
    import_pools(env, tmp_path)  # every backup task runs in its source's pool; a missing pool is never scheduled
    log = open(tmp_path / "standalone.log", "wb")
    proc = subprocess.Popen([str(Path(sys.executable).parent / "airflow"), "standalone"], env=env, stdout=log,
                            stderr=subprocess.STDOUT, start_new_session=True, cwd=tmp_path)
    api = Api(f"http://127.0.0.1:{port}", home / "simple_auth_manager_passwords.json.generated")
    try:
        deadline = time.monotonic() + 180
        healthy = False
        while not healthy and time.monotonic() < deadline:
            assert proc.poll() is None, (tmp_path / "standalone.log").read_text()[-3000:]
            try:
                health = api.call("GET", "/api/v2/monitor/health")
                healthy = health["scheduler"]["status"] == "healthy" and health.get("triggerer", {}).get("status") == "healthy"
            except (OSError, AssertionError, KeyError, TypeError):
                pass
            time.sleep(1)
        assert healthy, (tmp_path / "standalone.log").read_text()[-3000:]
        api.login()
        for _ in range(120):  # the dag-processor needs a moment to serialize the DAGs
            dags = {d["dag_id"] for d in api.call("GET", "/api/v2/dags?limit=100")["dags"]}
            if "backup_critical_data" in dags:
                break
            time.sleep(1)
        yield api, sinks, tmp_path
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(60)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(10)
        log.close()
        psql(f"DROP DATABASE IF EXISTS {db} WITH (FORCE)")


def test_real_scheduler_runs_a_class_triggered_through_the_rest_api(airflow_standalone):
    api, _sinks, _tmp = airflow_standalone
    run_id = api.trigger("backup_critical_data")
    run = api.wait_run("backup_critical_data", run_id, timeout=420)
    tis = api.call("GET", f"/api/v2/dags/backup_critical_data/dagRuns/{urllib.parse.quote(run_id, safe='')}/taskInstances")
    assert run["state"] == "success", [(t["task_id"], t["state"]) for t in tis["task_instances"]]
    assert sorted(t["state"] for t in tis["task_instances"]) == ["success"] * len(tis["task_instances"])
    assert {t["pool"] for t in tis["task_instances"] if t["task_id"] == "backup_mongodb"} == {"backup_dr_mongodb"}
