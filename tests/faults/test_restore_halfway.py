"""Row 6: a restore fails halfway, and the target is exactly as it was before.

The target is a production-like database on a private SecantusDB with mongod's test commands
on: its collections hold DIFFERENT data than the backup, one has a JSON-schema validator,
plus a capped collection and a collated one the backup does not touch. A ``failCommand``
fail point closes the restore's connection on its third insert (twice, so the driver's
retryable write fails too): a real network fault in the middle of writing the target.

Through both restore paths (the break-glass CLI and the DR DAG's restore step) the restore
fails with an error saying it was rolled back, and every document (raw BSON by _id), every
index and every collection option of the target database is as before.
"""

from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone

import pytest

from backup_dr.devstack import sample_data
from backup_dr.devstack.servers import MongoServer
from tests.dags.conftest import Approver, run_dag
from tests.faults.conftest import raw_snapshot, run_cli, xcom

APP = "restore-under-test"


class _TestCommandsMongo(MongoServer):
    def command(self):
        return super().command() + ["--enable-test-commands"]


@pytest.fixture
def target(tmp_path, monkeypatch):
    """The production-like target and its ``mongo_dr_target`` connection (clients named APP)."""
    with _TestCommandsMongo(tmp_path / "target") as server:
        client = server.client()
        db = client[sample_data.DATABASE]
        sample_data.seed_mongo(client, {"announcements": 700, "businesses": 400, "contents": 90, "statistics": 60}, seed=99)
        db.command("collMod", "businesses", validator={"$jsonSchema": {"bsonType": "object", "required": ["business_number"]}})
        db.announcements.update_many({}, {"$set": {"edited_in_production": True}})
        db.create_collection("audit", capped=True, size=1 << 20)
        db.audit.insert_many([{"_id": i, "event": f"login {i}"} for i in range(50)])
        db.create_collection("지역", collation={"locale": "ko", "strength": 2})
        db["지역"].insert_many([{"_id": i, "name": n} for i, n in enumerate(["서울", "부산", "대구"])])
        monkeypatch.setenv("AIRFLOW_CONN_MONGO_DR_TARGET", json.dumps({
            "conn_type": "mongo", "host": "127.0.0.1", "port": server.port,
            "extra": {"directConnection": True, "appname": APP}}))
        yield server, client
        client.admin.command("configureFailPoint", "failCommand", mode="off")
        client.close()


def _break_the_third_insert(client) -> None:
    client.admin.command("configureFailPoint", "failCommand", mode={"skip": 2, "times": 2},
                         data={"failCommands": ["insert"], "closeConnection": True, "appName": APP})


@pytest.fixture
def backup_id(backup_stack, seeded_mongo):
    when = datetime.now(timezone.utc).replace(microsecond=0) - timedelta(hours=1)
    dr, states = run_dag("backup_critical_data", logical_date=when, run_after=when)
    assert str(dr.state) == "success", states
    return xcom(dr, "backup_mongodb")["backup_id"]


def test_cli_restore_broken_halfway_leaves_the_target_byte_for_byte(backup_id, target, tmp_path):
    server, client = target
    db = client[sample_data.DATABASE]
    before = raw_snapshot(db)
    _break_the_third_insert(client)
    out = run_cli("restore", "mongo", backup_id, "--to", "mongo_dr_target", "--drop", "--safety-dir", str(tmp_path / "safety"))
    assert out.returncode == 1, out.stdout + out.stderr
    assert "restore into 'korea_public_data' failed; the target was rolled back to its state before the restore" in out.stderr
    assert "cannot reach the MongoDB server" in out.stderr or "AutoReconnect" in out.stderr, out.stderr
    assert "safety backup" in out.stderr  # and where the kept safety copy is
    assert raw_snapshot(db) == before


def test_dr_restore_step_broken_halfway_leaves_the_target_byte_for_byte(backup_id, target, webhook_sink, sinks, output):
    server, client = target
    db = client[sample_data.DATABASE]
    before = raw_snapshot(db)
    webhook_sink.requests.clear()
    _break_the_third_insert(client)
    with Approver({"provision_mongodb": ("Approve", {})}):
        dr, states = run_dag("dr_database_server_failure", run_conf={"dry_run": False, "drop": True})
    assert str(dr.state) == "failed"
    assert states["safety_backup"] == "success" and states["restore"] == "failed", states
    assert states["validate"] == states["repoint"] == "upstream_failed", states
    assert "failed; the target was rolled back to its state before the restore" in output.text()
    assert raw_snapshot(db) == before
    assert not webhook_sink.wait_for(lambda r: r["path"] == "/admin/repoint", timeout=1)  # the app was not repointed
    smtp = sinks[0]
    mail = smtp.wait_for(lambda m: "DR database_server_failure: failed" in m["Subject"])
    assert mail and "restore" in smtp.text(mail[0])
