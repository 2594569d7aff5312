"""The system as users run it: `airflow standalone` (scheduler, dag-processor, triggerer,
api-server) on a PostgreSQL metadata DB, driven only through the REST API.

* backup_critical_data triggered through the API runs to success (verified copies in 3 stores);
* an Asset event posted by a "deploy pipeline" runs backup_application_code with its ref/image;
* a DR run that waits for a human past its RTO fires the deadline alert: the AsyncCallback
  runs in the triggerer and the alert reaches the SMTP and Slack sinks; approving through the
  API then lets the run finish.
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
    # a copy of the shipped policy with one change: the database-server-failure RTO is 20 s, so a
    # run waiting for its human approval is bound to miss it
    policy = (ROOT / "include" / "policy.yaml").read_text(encoding="utf-8")
    policy = policy.replace("    rpo: 4h\n    rto: 30m\n    backup_class: critical_data\n    target_conn_id: mongo_dr_target",
                            "    rpo: 4h\n    rto: 20s\n    backup_class: critical_data\n    target_conn_id: mongo_dr_target")
    assert "rto: 20s" in policy
    (tmp_path / "policy.yaml").write_text(policy, encoding="utf-8")
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
        "BACKUP_DR_POLICY": str(tmp_path / "policy.yaml"),
        "PYTHONPATH": str(ROOT / "plugins"),
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
            if {"backup_critical_data", "dr_database_server_failure", "backup_application_code"} <= dags:
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


def test_real_scheduler_backup_asset_trigger_and_deadline_alert(airflow_standalone):
    api, (smtp, slack), tmp = airflow_standalone
    # 1. a scheduled class, triggered through the REST API
    run_id = api.trigger("backup_critical_data")
    run = api.wait_run("backup_critical_data", run_id, timeout=420)
    tis = api.call("GET", f"/api/v2/dags/backup_critical_data/dagRuns/{urllib.parse.quote(run_id, safe='')}/taskInstances")
    assert run["state"] == "success", [(t["task_id"], t["state"]) for t in tis["task_instances"]]
    assert sorted(t["state"] for t in tis["task_instances"]) == ["success"] * len(tis["task_instances"])

    # 2. a deploy pipeline posts an Asset event: backup_application_code runs with its ref/image
    api.call("PATCH", "/api/v2/dags/backup_application_code", {"is_paused": False})
    assets = api.call("GET", "/api/v2/assets?uri_pattern=korea-public-data-api")["assets"]
    asset_id = assets[0]["id"]
    api.call("POST", "/api/v2/assets/events", {"asset_id": asset_id, "extra": {
        "ref": "v1.0.0", "image": "registry.example/korea-public-data-api:1.0.0", "image_digest": "sha256:" + "cd" * 32}})
    deadline = time.monotonic() + 300
    runs = []
    while time.monotonic() < deadline and not runs:
        runs = [r for r in api.call("GET", "/api/v2/dags/backup_application_code/dagRuns")["dag_runs"] if r["state"] in ("success", "failed")]
        time.sleep(2)
    assert runs and runs[0]["state"] == "success" and runs[0]["run_type"] == "asset_triggered", runs
    manifests = list((tmp.parent / "backups").rglob("application_code.app_repository.bundle.*/manifest.json")) or \
        list(Path(os.environ["BACKUP_DR_LOCAL_PATH"]).rglob("application_code.app_repository.bundle.*/manifest.json"))
    assert manifests and json.loads(manifests[0].read_text())["details"]["image_digest"] == "sha256:" + "cd" * 32

    # 3. a DR run waits for a human longer than its (test) RTO of 20 s: the deadline alert fires
    smtp.messages.clear(), slack.requests.clear()
    dr_run = api.trigger("dr_database_server_failure", {"dry_run": True})
    mail = smtp.wait_for(lambda m: "DEADLINE MISSED" in m["Subject"] and "dr_database_server_failure" in smtp.text(m), timeout=180)
    assert mail, [m["Subject"] for m in smtp.messages]
    assert "RTO of 20s exceeded" in mail[0]["Subject"]
    assert slack.wait_for(lambda r: "DEADLINE MISSED" in str(r["body"]), timeout=60)
    # 4. the human approves through the API; the (dry) run completes
    quoted = urllib.parse.quote(dr_run, safe="")
    api.call("PATCH", f"/api/v2/dags/dr_database_server_failure/dagRuns/{quoted}/taskInstances/provision_mongodb/-1/hitlDetails",
             {"chosen_options": ["Approve"], "params_input": {}})
    final = api.wait_run("dr_database_server_failure", dr_run, timeout=300)
    assert final["state"] == "success"
