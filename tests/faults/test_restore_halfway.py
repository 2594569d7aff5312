"""Row 6: a restore fails halfway, and the target is exactly as it was before.

The target is a production-like database on a private SecantusDB with mongod's test commands
on: its collections hold DIFFERENT data than the backup, one has a JSON-schema validator,
plus a capped collection and a collated one the backup does not touch. A ``failCommand``
fail point closes the restore's connection on its third insert (twice, so the driver's
retryable write fails too): a real network fault in the middle of writing the target.

Through both restore paths (the break-glass CLI and the DR DAG's restore step) the restore
fails with an error saying it was rolled back, and every document (raw BSON by _id), every
index and every collection option of the target database is as before. (The target and the
backup are the ``target`` and ``backup_id`` fixtures of the faults conftest.)
"""

from __future__ import annotations

from backup_dr.devstack import sample_data
from tests.dags.conftest import Approver, run_dag
from tests.faults.conftest import APP, raw_snapshot, run_cli

def _break_the_third_insert(client) -> None:
    client.admin.command("configureFailPoint", "failCommand", mode={"skip": 2, "times": 2},
                         data={"failCommands": ["insert"], "closeConnection": True, "appName": APP})


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
