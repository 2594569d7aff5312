"""DR scenario DAGs end to end with dag.test(): real restores, human approvals answered as a
person would, repoint webhook, post-recovery health check, measured RPO/RTO summary."""

from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone

import pytest

from backup_dr.devstack.servers import MongoServer, RedisServer
from tests.conftest import set_connection
from tests.dags.conftest import Approver, run_dag

COLLS = ("announcements", "businesses", "contents")


@pytest.fixture
def replacement_mongo(tmp_path):
    """The new database server a DBA provisions during the incident."""
    with MongoServer(tmp_path / "replacement") as server:
        set_connection("mongo_dr_target", conn_type="mongo", host="127.0.0.1", port=server.port, extra={"directConnection": True})
        yield server


def _raw_by_id(db, coll):
    from bson.raw_bson import RawBSONDocument

    return {d["_id"]: d.raw for d in db.get_collection(coll, codec_options=db.codec_options.with_options(document_class=RawBSONDocument)).find()}


def _backup_now(when):
    dr, states = run_dag("backup_critical_data", logical_date=when)
    assert str(dr.state) == "success", states


def test_database_server_failure_recovers_onto_a_new_server(stack, webhook_sink, replacement_mongo, mongo_client):
    smtp, slack = stack["smtp"], stack["slack"]
    now = datetime.now(timezone.utc).replace(microsecond=0)
    _backup_now(now - timedelta(hours=1))
    webhook_sink.requests.clear()
    with Approver({"provision_mongodb": ("Approve", {})}) as approver:
        dr, states = run_dag("dr_database_server_failure", run_conf={"dry_run": False})
    assert approver.answered == ["provision_mongodb"]
    assert str(dr.state) == "success", states
    assert set(states.values()) == {"success"}, states
    # the new server holds exactly the backed-up data, byte for byte
    src, dst = mongo_client["korea_public_data"], replacement_mongo.client()["korea_public_data"]
    for coll in COLLS:
        assert _raw_by_id(dst, coll) == _raw_by_id(src, coll), coll
        assert set(dst[coll].index_information()) == set(src[coll].index_information())
    # the app was told where its data now lives (no credentials in the payload)
    posts = webhook_sink.wait_for(lambda r: r["path"] == "/admin/repoint")
    assert posts and posts[0]["body"]["mongodb"]["port"] == replacement_mongo.port
    assert posts[0]["headers"]["Authorization"] == "Bearer repoint-token-secret"
    assert "password" not in json.dumps(posts[0]["body"])
    # summary: measured RTO and RPO against the targets, by email and Slack
    mail = smtp.wait_for(lambda m: "DR database_server_failure: recovered" in m["Subject"])
    assert mail, [(m["Subject"], smtp.text(m)[:300]) for m in smtp.messages]
    text = smtp.text(mail[0])
    assert "RTO: recovered in" in text and "vs target 30m: MET" in text
    assert "RPO: recovery point" in text and "vs target 4h: MET" in text
    assert slack.wait_for(lambda r: "DR database_server_failure" in str(r["body"]))
    reports = list((stack["local"] / "backup-dr-v1" / "_reports" / "dr" / "database_server_failure").glob("*.json"))
    report = json.loads(reports[0].read_text())
    assert report["outcome"] == "recovered" and report["rto_met"] and report["rpo_met"]
    assert 0 < report["recovery_time_seconds"] < 1800 and report["data_loss_seconds"] < 4 * 3600


def test_dry_run_is_the_default_and_changes_nothing(stack, webhook_sink, replacement_mongo):
    now = datetime.now(timezone.utc).replace(microsecond=0)
    _backup_now(now - timedelta(hours=2))
    webhook_sink.requests.clear()
    with Approver({"provision_mongodb": ("Approve", {})}):
        dr, states = run_dag("dr_database_server_failure")
    assert str(dr.state) == "success", states
    assert "korea_public_data" not in replacement_mongo.client().list_database_names()
    assert not webhook_sink.wait_for(lambda r: r["path"] == "/admin/repoint", timeout=1)
    assert stack["smtp"].wait_for(lambda m: "DR database_server_failure: dry run" in m["Subject"])


def test_rejected_approval_stops_the_recovery(stack, webhook_sink, replacement_mongo):
    now = datetime.now(timezone.utc).replace(microsecond=0)
    _backup_now(now - timedelta(hours=3))
    with Approver({"provision_mongodb": ("Reject", {})}):
        dr, states = run_dag("dr_database_server_failure", run_conf={"dry_run": False})
    assert str(dr.state) == "failed"
    assert states["provision_mongodb"] == "failed" and states["restore"] == "upstream_failed"
    assert states["summary"] == "failed"  # it reports, then fails so the run shows red
    assert "korea_public_data" not in replacement_mongo.client().list_database_names()
    mail = stack["smtp"].wait_for(lambda m: "DR database_server_failure: failed" in m["Subject"])
    assert mail and "provision_mongodb" in stack["smtp"].text(mail[0])


@pytest.mark.slow
def test_full_infrastructure_failure_restores_db_cache_and_files(stack, webhook_sink, replacement_mongo, tmp_path, mongo_client):
    import shutil

    now = datetime.now(timezone.utc).replace(microsecond=0)
    for dag_id in ("backup_critical_data", "backup_operational_data", "backup_configuration"):
        dr, states = run_dag(dag_id, logical_date=now - timedelta(hours=1))
        assert str(dr.state) == "success", (dag_id, states)
    source_redis = stack["redis"].client()
    expected_keys = source_redis.dbsize()
    # the whole site is gone: app files too
    app = stack["app"]
    config_before = {p.relative_to(app): p.read_bytes() for p in (app / "config").rglob("*") if p.is_file()}
    shutil.rmtree(app / "config")
    shutil.rmtree(app / "uploads")
    with RedisServer(tmp_path / "new-redis", password="new-redis-secret") as new_redis:
        set_connection("redis_dr_target", conn_type="redis", host="127.0.0.1", port=new_redis.port, password=new_redis.password)
        answers = {n: ("Approve", {}) for n in ("provision_instances", "docker_environment", "change_dns")}
        with Approver(answers) as approver:
            dr, states = run_dag("dr_full_infrastructure_failure", run_conf={"dry_run": False})
        assert sorted(approver.answered) == sorted(answers)
        assert str(dr.state) == "success", states
        assert new_redis.client().dbsize() == expected_keys
    assert {p.relative_to(app): p.read_bytes() for p in (app / "config").rglob("*") if p.is_file()} == config_before
    assert any((app / "uploads").rglob("*.pdf"))
    dst = replacement_mongo.client()["korea_public_data"]
    assert dst.announcements.count_documents({}) == mongo_client["korea_public_data"].announcements.count_documents({})


@pytest.mark.slow
def test_data_corruption_rolls_back_to_the_second_before_it(stack, webhook_sink, tmp_path, monkeypatch):
    """Point-in-time recovery through the DR DAG: the on-call DBA enters the time in the
    analyze_damage approval form; the database comes back exactly as it was at that second."""
    import time

    from backup_dr.devstack import sample_data

    with MongoServer(tmp_path / "prod", oplog_max_entries=500_000) as prod:
        conn = {"conn_type": "mongo", "host": "127.0.0.1", "port": prod.port, "extra": {"directConnection": True}}
        monkeypatch.setenv("AIRFLOW_CONN_MONGO_KOREA_PUBLIC_DATA", json.dumps(conn))
        client = prod.client()
        sample_data.seed_mongo(client, {"announcements": 400, "businesses": 300, "contents": 50, "statistics": 100})
        db = client["korea_public_data"]
        now = datetime.now(timezone.utc).replace(microsecond=0)
        _backup_now(now - timedelta(minutes=40))
        dr, states = run_dag("pitr_oplog_archive", logical_date=now - timedelta(minutes=30))
        assert str(dr.state) == "success", states
        # good writes, then the moment to go back to, then the corruption (in a later second)
        db.announcements.update_many({"status": "모집중"}, {"$set": {"status": "마감", "closed_by": "batch-2026-11"}})
        db.businesses.insert_one({"business_number": "999-99-99999", "name": "(주)새사업체"})
        time.sleep(1.1)
        good_at = datetime.now(timezone.utc).replace(microsecond=0)
        expected = {c: _raw_by_id(db, c) for c in COLLS}
        time.sleep(1.1)
        db.announcements.delete_many({"region": {"$in": ["서울특별시", "부산광역시"]}})  # the "corruption"
        db.businesses.update_many({}, {"$set": {"name": None}})
        dr, states = run_dag("pitr_oplog_archive", logical_date=now - timedelta(minutes=15))
        assert str(dr.state) == "success", states
        point = good_at.isoformat()
        with Approver({"analyze_damage": ("Approve", {"point_in_time": point})}) as approver:
            dr, states = run_dag("dr_data_corruption", run_conf={"dry_run": False, "drop": True})
        assert approver.answered == ["analyze_damage"]
        assert str(dr.state) == "success", states
        for coll in COLLS:
            assert _raw_by_id(db, coll) == expected[coll], coll
        mail = stack["smtp"].wait_for(lambda m: "DR data_corruption: recovered" in m["Subject"])
        assert mail and f"recovery point {point}" in stack["smtp"].text(mail[0])
