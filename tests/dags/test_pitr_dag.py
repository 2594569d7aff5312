"""pitr_oplog_archive with dag.test() against real servers: a slice run lands a verified slice in
the local store and every PITR store; a run that finds a gap alerts by email + Slack and
triggers the full backup DAG, while the run itself succeeds."""

from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone
from types import SimpleNamespace

import pytest

from tests.dags.conftest import run_dag

DAG_ID = "pitr_oplog_archive"


def _xcom(dr, task_id):
    from airflow.models.xcom import XComModel
    from airflow.utils.session import create_session

    with create_session() as session:
        row = session.query(XComModel).filter_by(dag_id=dr.dag_id, run_id=dr.run_id, task_id=task_id, key="return_value").first()
        return row.value if row is not None else None


@pytest.fixture
def pitr_stack(airflow_db, s3_bucket, local_store_root, sinks, tmp_path, monkeypatch):
    """Our own SecantusDB as the policy's MongoDB connection (writes here disturb no other test)."""
    from backup_dr.devstack import sample_data
    from backup_dr.devstack.servers import MongoServer

    with MongoServer(tmp_path / "mongo", oplog_max_entries=100_000) as server:
        monkeypatch.setenv("AIRFLOW_CONN_MONGO_KOREA_PUBLIC_DATA", json.dumps(
            {"conn_type": "mongo", "host": "127.0.0.1", "port": server.port, "extra": {"directConnection": True}}))
        client = server.client()
        sample_data.seed_mongo(client, {"announcements": 300, "businesses": 200, "contents": 100, "statistics": 50})
        yield SimpleNamespace(client=client, db=client[sample_data.DATABASE], local=local_store_root, smtp=sinks[0],
                              slack=sinks[1])
        client.close()


def _stores():
    from backup_dr.core.policy import default_policy_path, load_policy
    from backup_dr.core.stores.factory import open_stores

    policy = load_policy(default_policy_path())
    return policy, open_stores(policy.stores[n] for n in ("local", "s3"))


def _full_backup(policy, client, when):
    from backup_dr.core.artifacts.layout import BackupId
    from backup_dr.core.artifacts.writer import ArtifactWriter
    from backup_dr.core.mongo.backup import backup_mongodb
    from backup_dr.core.stores.factory import open_store

    cls = policy.classes["critical_data"]
    job = next(j for j in cls.jobs if j.source == "mongodb")
    writer = ArtifactWriter(open_store(policy.stores["local"]), BackupId.new(cls.name, "mongodb", "full", when),
                            source_type="mongodb", retention=cls.retention)
    return backup_mongodb(client, policy.sources["mongodb"], job, writer)


def _slice_run(stack, when, tag):
    stack.db.contents.insert_one({"_id": tag, "slug": f"pitr-dag-test-{tag}", "title": f"written before the {tag} run"})
    dr, states = run_dag(DAG_ID, logical_date=when)
    assert str(dr.state) == "success", states
    return dr, states, _xcom(dr, "archive_oplog_mongodb")


def test_slice_runs_replicate_and_a_gap_run_alerts_and_triggers_the_full_backup(pitr_stack):
    from airflow.models.dagrun import DagRun
    from airflow.utils.session import create_session

    from backup_dr.core.artifacts.layout import BackupId
    from backup_dr.core.catalog import Catalog
    from backup_dr.core.verify import verify_copy

    policy, stores = _stores()
    now = datetime.now(timezone.utc).replace(microsecond=0)
    full = _full_backup(policy, pitr_stack.client, now - timedelta(hours=1))

    dr, states, first = _slice_run(pitr_stack, now - timedelta(minutes=45), "first")
    assert states["archive_oplog_mongodb"] == "success" and states["replicate_slice_mongodb[0]"] == "success", states
    assert states["alert_gap_mongodb"] == "skipped" and states["trigger_full_backup_mongodb"] == "skipped", states
    assert first["status"] == "archived" and first["gap"] is False and first["entries"] >= 1
    assert first["consistent_point"]["start"] == full.consistent_point["end"]  # the chain starts at the full backup
    entry = Catalog(stores).find(first["backup_id"])
    assert sorted(entry.complete_in) == ["local", "s3"]
    for store in stores.values():
        assert verify_copy(store, entry.manifest())["ok"]
    assert not pitr_stack.smtp.messages and not pitr_stack.slack.requests

    _, _, second = _slice_run(pitr_stack, now - timedelta(minutes=30), "second")
    assert second["previous_id"] == first["backup_id"] and second["consistent_point"]["start"] == first["consistent_point"]["end"]

    # the restore operator: to the second of the "first" write = full backup + slice 1, not slice 2's write
    from backup_dr.operators.pitr import PointInTimeRestoreOperator

    first_write = pitr_stack.client.local["oplog.rs"].find_one({"ns": "korea_public_data.contents", "o._id": "first"})["ts"]
    at = datetime.fromtimestamp(first_write.time, timezone.utc).isoformat()
    op = PointInTimeRestoreOperator(task_id="pitr_restore", target_conn_id="mongo_korea_public_data", at=at,
                                    target_db="pitr_restored", drop="False")
    out = op.execute({})
    restored = pitr_stack.client["pitr_restored"]
    assert out["base_backup"] == full.backup_id and out["slice_ids"] == [first["backup_id"]] and out["validated"], out
    assert restored.contents.find_one({"_id": "first"}) is not None and restored.contents.find_one({"_id": "second"}) is None
    assert restored.contents.count_documents({}) == pitr_stack.db.contents.count_documents({}) - 1

    # lose the first slice everywhere: the chain from the full backup is broken
    prefix = BackupId.parse(first["backup_id"]).prefix
    for store in stores.values():
        for info in list(store.list(prefix)):
            store.delete(info.key)
    dr, states, third = _slice_run(pitr_stack, now - timedelta(minutes=15), "third")
    assert third["gap"] is True and third["new_gap"] is True and third["needs_full_backup"] is True, third
    assert states["alert_gap_mongodb"] == "success" and states["trigger_full_backup_mongodb"] == "success", states
    assert third["backup_id"] and states["replicate_slice_mongodb[0]"] == "success"  # the chain itself goes on
    mail = pitr_stack.smtp.wait_for(lambda m: "PITR GAP" in m["Subject"])[0]
    assert "critical_data/mongodb" in mail["Subject"] and first["backup_id"] in pitr_stack.smtp.text(mail)
    assert any("PITR GAP" in json.dumps(r) for r in pitr_stack.slack.requests)
    with create_session() as session:
        triggered = session.query(DagRun).filter_by(dag_id="backup_critical_data", run_id=third["trigger_run_id"]).one_or_none()
    assert triggered is not None, f"no backup_critical_data run {third['trigger_run_id']}"


@pytest.mark.parametrize("interval, expected", [
    (timedelta(minutes=15), "*/15 * * * *"), (timedelta(minutes=1), "* * * * *"), (timedelta(hours=2), "0 */2 * * *"),
    (timedelta(minutes=7), None), (timedelta(minutes=90), None),
])
def test_schedule_is_a_cron_when_the_interval_divides_the_clock_else_a_delta(policy, interval, expected):
    from airflow.sdk import CronTriggerTimetable, DeltaTriggerTimetable

    from backup_dr.dag_factory.pitr import pitr_timetable

    tt = pitr_timetable(policy, interval)
    if expected is None:
        assert isinstance(tt, DeltaTriggerTimetable) and tt.delta == interval
    else:
        assert isinstance(tt, CronTriggerTimetable) and tt.expression == expected


def test_dag_shape_deadline_and_gap_branching(airflow_db, policy):
    from tests.dags.conftest import load_dag

    from backup_dr.dag_factory.pitr import gap_branch

    dag = load_dag(DAG_ID)
    spec = policy.pitr["mongodb"]
    assert [d.interval for d in dag.deadline] == [spec.interval]
    assert dag.max_active_runs == 1 and "pitr" in dag.tags and "whole second" in dag.doc_md.lower()
    trigger = dag.get_task("trigger_full_backup_mongodb")
    assert trigger.trigger_dag_id == "backup_critical_data" and trigger.skip_when_already_exists is True
    assert dag.get_task("replicate_slice_mongodb").expand_input.value["store"] == ["s3"]  # local is the staging store
    assert {t.task_id for t in dag.get_task("on_gap_mongodb").downstream_list} == {"alert_gap_mongodb", "trigger_full_backup_mongodb"}
    ok = {"new_gap": False, "needs_full_backup": False, "trigger_run_id": None}
    assert gap_branch(ok, "a", "t") == []
    assert gap_branch({**ok, "new_gap": True, "needs_full_backup": True, "trigger_run_id": "r"}, "a", "t") == ["a", "t"]
    assert gap_branch({**ok, "new_gap": True}, "a", "t") == ["a"]  # a gap a newer full backup already bridges
    assert gap_branch({**ok, "needs_full_backup": True, "trigger_run_id": "r"}, "a", "t") == ["t"]  # no full backup yet
