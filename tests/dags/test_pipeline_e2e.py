"""The whole daily life of the system with dag.test() on the real stack:
every class backs up (Airflow's metadata DB too, through the PostgreSQL engine), the drill
restores every newest backup into scratch targets and
records the time, the health monitor reports healthy, then critical once the backups age
past their RPO, and a forced failure alerts by email and Slack with the right content."""

from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone

import pytest

from backup_dr.core.verify import latest_verification
from tests.dags.conftest import run_dag

pytestmark = pytest.mark.slow


def _xcom(dr, task_id):
    from airflow.models.xcom import XComModel
    from airflow.utils.session import create_session

    with create_session() as session:
        row = session.query(XComModel).filter_by(dag_id=dr.dag_id, run_id=dr.run_id, task_id=task_id, key="return_value").first()
        return row.value if row is not None else None


def open_policy_store(name: str):
    """A store of the policy as the operators open it (this test's buckets and local dir)."""
    from backup_dr.operators._common import get_policy, open_store

    return open_store(get_policy().stores[name])


def test_backup_drill_health_and_alerts(stack, mongo_client, mongo_scratch_server):
    smtp, slack = stack["smtp"], stack["slack"]
    now = datetime.now(timezone.utc).replace(microsecond=0)
    runs = {}
    for dag_id, conf in (
        ("backup_critical_data", None),
        ("backup_operational_data", None),
        ("backup_configuration", None),
        ("backup_application_code", {"ref": "v1.0.0", "image": "registry.example/korea-public-data-api:1.0.0",
                                     "image_digest": "sha256:" + "ab" * 32}),
    ):
        dr, states = run_dag(dag_id, logical_date=now - timedelta(minutes=30), run_conf=conf)
        assert str(dr.state) == "success", (dag_id, states)
        runs[dag_id] = dr
    # the application_code bundle recorded the deploy
    bundle = _xcom(runs["backup_application_code"], "backup_app_repository")
    assert bundle["kind"] == "bundle"

    # drill: every newest backup restored into scratch targets, times recorded
    scratch_before = set(mongo_scratch_server.client().list_database_names())
    dr, states = run_dag("ops_restore_drill", logical_date=now - timedelta(minutes=20))
    assert str(dr.state) == "success", states
    drill = _xcom(dr, "drill_critical_data_mongodb")
    assert drill["ok"] is True and 0 < drill["restore_seconds"] < drill["rto_seconds"]
    assert drill["store"] == "gcs"  # the most remote copy is the one drilled
    backup = _xcom(runs["backup_critical_data"], "backup_mongodb")
    record = latest_verification(open_policy_store("gcs"), backup["backup_id"], kind="drill")
    # the drill really restored the whole backup into scratch (every document, download included in its time) ...
    assert record["ok"] is True and record["details"]["documents"] == sum(backup["counts"].values()) > 0
    assert record["restore_seconds"] == drill["restore_seconds"] and record["fetch_seconds"] > 0
    # ... into the scratch server, never production, and dropped its scratch database afterwards
    assert record["details"]["scratch_db"] not in mongo_client.list_database_names()
    assert set(mongo_scratch_server.client().list_database_names()) == scratch_before

    # Airflow's own metadata DB (the PostgreSQL engine): backed up with the class, replicated, drilled table by table
    pg = _xcom(runs["backup_configuration"], "backup_airflow_db")
    assert pg["kind"] == "full" and pg["counts"]["public.dag_run"] == 50
    pg_drill = _xcom(dr, "drill_configuration_airflow_db")
    assert pg_drill["ok"] is True and pg_drill["store"] == "gcs", pg_drill
    record = latest_verification(open_policy_store("gcs"), pg["backup_id"], kind="drill")
    assert record["details"]["tables"] == len(pg["counts"]) and record["details"]["rows"] == sum(pg["counts"].values())

    # health: fresh backups, fresh drills -> healthy, no alert
    smtp.messages.clear(), slack.requests.clear()
    dr, states = run_dag("ops_backup_health", logical_date=now - timedelta(minutes=10))
    health = _xcom(dr, "check_backup_health")
    assert health["status"] == "healthy", health["reasons"]
    report = json.loads((stack["local"] / "backup-dr-v1" / "_reports" / "health" / "latest.json").read_text())
    assert report["classes"]["critical_data"]["sources"]["mongodb"]["stores"]["gcs"]["status"] == "healthy"
    assert report["classes"]["critical_data"]["sources"]["mongodb"]["last_drill"]["ok"] is True

    # five hours later with no new backup: critical_data breaches its 4 h RPO -> critical + alert
    later = (now + timedelta(hours=5)).isoformat()
    dr, states = run_dag("ops_backup_health", logical_date=now - timedelta(minutes=5), run_conf={"as_of": later})
    health = _xcom(dr, "check_backup_health")
    assert health["status"] == "critical"
    assert any("critical_data/mongodb: RPO BREACHED" in r for r in health["reasons"]), health["reasons"]
    mail = smtp.wait_for(lambda m: "backup health is CRITICAL" in m["Subject"])
    assert mail and "RPO BREACHED" in smtp.text(mail[0])
    assert slack.wait_for(lambda r: "RPO BREACHED" in str(r["body"]))

    # a forced failure: the Redis source is gone -> the task fails, email + Slack name it
    smtp.messages.clear(), slack.requests.clear()
    stack["redis"].stop()
    dr, states = run_dag("backup_operational_data", logical_date=now - timedelta(minutes=1))
    assert str(dr.state) == "failed"
    assert states["backup_redis_cache"] == "failed" and states["backup_mongodb"] == "success"
    assert states["prune"] == "upstream_failed"
    mails = smtp.wait_for(lambda m: "backup_redis_cache" in m["Subject"])
    assert mails, [m["Subject"] for m in smtp.messages]
    text = smtp.text(mails[0])
    assert "backup class operational_data" in text and "redis_cache" in text and "/dags/backup_operational_data/runs/" in text
    posts = slack.wait_for(lambda r: "backup_redis_cache" in str(r["body"]))
    assert posts and "failed" in posts[0]["body"]["text"]
    assert "redis-test-secret" not in text and "redis-test-secret" not in json.dumps(posts[0]["body"])


def test_critical_failure_stops_the_run(stack, monkeypatch):
    """The seed's rule: if the critical MongoDB backup fails, the other jobs of the run do not start."""
    import os

    conn = json.loads(os.environ["AIRFLOW_CONN_MONGO_KOREA_PUBLIC_DATA"])
    conn["port"] = 1  # nothing listens there
    monkeypatch.setenv("AIRFLOW_CONN_MONGO_KOREA_PUBLIC_DATA", json.dumps(conn | {"extra": {"directConnection": True, "serverSelectionTimeoutMS": 500}}))
    dr, states = run_dag("backup_operational_data", logical_date=datetime(2026, 11, 20, 2, tzinfo=timezone.utc))
    assert states["backup_mongodb"] == "failed"
    for task in ("backup_redis_cache", "backup_app_logs", "backup_app_uploads", "prune"):
        assert states[task] == "upstream_failed", (task, states)
    assert stack["smtp"].wait_for(lambda m: "backup_mongodb" in m["Subject"])
