"""Row 10: the oplog rolled past the last slice (a real rollover on a SecantusDB that keeps only
300 oplog entries), driven through the ``pitr_oplog_archive`` DAG.

full backup -> slice run (archived) -> a burst of 1500 writes rolls the oplog past the
slice's end -> the next slice run detects the gap: it writes NO slice (nothing that would
pretend to chain), alerts by email and Slack once, and triggers ``backup_critical_data``
(the forced full backup). After that full backup, the next slice run starts a new chain.
"""

from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone

import pytest

from backup_dr.core.catalog import Catalog
from backup_dr.devstack import sample_data
from backup_dr.devstack.servers import MongoServer
from tests.dags.conftest import run_dag
from tests.faults.conftest import mongo_conn, xcom

DAG_ID = "pitr_oplog_archive"


@pytest.fixture
def tiny_oplog(tmp_path, monkeypatch):
    with MongoServer(tmp_path / "mongo", oplog_max_entries=300) as server:
        client = server.client()
        sample_data.seed_mongo(client, {"announcements": 300, "businesses": 200, "contents": 100, "statistics": 50})
        monkeypatch.setenv("AIRFLOW_CONN_MONGO_KOREA_PUBLIC_DATA", mongo_conn(server))
        yield client
        client.close()


def _run(dag_id: str, when: datetime):
    dr, states = run_dag(dag_id, logical_date=when, run_after=when)
    return dr, states


def test_oplog_rollover_alerts_once_forces_a_full_backup_and_a_new_chain_starts(backup_stack, tiny_oplog, policy_stores):
    smtp, slack = backup_stack["smtp"], backup_stack["slack"]
    db = tiny_oplog[sample_data.DATABASE]
    now = datetime.now(timezone.utc).replace(microsecond=0)
    dr, states = _run("backup_critical_data", now - timedelta(hours=1))
    assert str(dr.state) == "success", states

    db.contents.insert_one({"_id": "before-slice-1", "slug": "pitr-rollover-1"})
    dr, states = _run(DAG_ID, now - timedelta(minutes=50))
    first = xcom(dr, "archive_oplog_mongodb")
    assert first["status"] == "archived" and not first["gap"], first
    assert states["replicate_slice_mongodb[0]"] == "success" and states["alert_gap_mongodb"] == "skipped", states

    # a burst of writes: the oplog (300 entries) rolls past the end of slice 1
    db.contents.insert_many([{"_id": f"burst-{i}", "slug": f"burst-{i}"} for i in range(1500)])
    oldest = tiny_oplog.local["oplog.rs"].find_one({}, sort=[("$natural", 1)])["ts"]
    end = first["consistent_point"]["end"]
    assert (oldest.time, oldest.inc) > (end["t"], end["i"]), "precondition: the oplog rolled past slice 1"

    smtp.messages.clear(), slack.requests.clear()
    dr, states = _run(DAG_ID, now - timedelta(minutes=35))
    gap = xcom(dr, "archive_oplog_mongodb")
    # what happens: the run succeeds visibly differently: no slice, the gap tasks ran
    assert str(dr.state) == "success", states
    assert gap["gap"] and gap["new_gap"] and gap["needs_full_backup"] and gap["backup_id"] is None, gap
    assert gap["gaps"][0]["kind"] == "oplog_rollover" and "the oplog rolled over" in gap["gaps"][0]["reason"]
    assert states["replicate_slice_mongodb[0]"] == "skipped"
    assert states["alert_gap_mongodb"] == "success" and states["trigger_full_backup_mongodb"] == "success", states
    # what the user sees: one alert by email and by Slack naming the chain and the cause
    mail = smtp.wait_for(lambda m: "PITR GAP" in m["Subject"])
    assert mail and "critical_data/mongodb" in mail[0]["Subject"] and "the oplog rolled over" in smtp.text(mail[0])
    assert slack.wait_for(lambda p: "PITR GAP" in json.dumps(p["body"]))
    # the forced full backup: a backup_critical_data run was triggered, once per gap
    from airflow.models.dagrun import DagRun
    from airflow.utils.session import create_session

    with create_session() as session:
        triggered = session.query(DagRun).filter_by(dag_id="backup_critical_data", run_id=gap["trigger_run_id"]).one()
        assert triggered.conf["triggered_by"] == DAG_ID
    # what is left behind: still exactly one slice (nothing half-written), in local and S3
    slices = Catalog({n: policy_stores[n] for n in ("local", "s3")}).list("critical_data", "mongodb", "oplog", include_incomplete=True)
    assert [s.backup_id for s in slices] == [first["backup_id"]] and sorted(slices[0].complete_in) == ["local", "s3"]

    # the next run while still broken does not alert again
    smtp.messages.clear(), slack.requests.clear()
    dr, states = _run(DAG_ID, now - timedelta(minutes=30))
    again = xcom(dr, "archive_oplog_mongodb")
    assert again["gap"] and not again["new_gap"] and states["alert_gap_mongodb"] == "skipped", (again, states)
    assert not smtp.wait_for(lambda m: "PITR GAP" in m["Subject"], timeout=1)

    # the forced full backup runs; the next slice starts a new chain at its end point
    dr, states = _run("backup_critical_data", now - timedelta(minutes=25))
    assert str(dr.state) == "success", states
    full = xcom(dr, "backup_mongodb")
    db.contents.insert_one({"_id": "after-full", "slug": "pitr-rollover-2"})
    dr, states = _run(DAG_ID, now - timedelta(minutes=20))
    healed = xcom(dr, "archive_oplog_mongodb")
    assert healed["status"] == "archived" and not healed["gap"] and healed["backup_id"], healed
    assert healed["consistent_point"]["start"] == full["consistent_point"]["end"]
