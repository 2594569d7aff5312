"""Row 5: bit rot and truncation of stored objects.

One backup in three stores: the local copy gets ONE flipped bit, the S3 copy is truncated by
1000 bytes; the GCS copy is intact. Then:

* ``verify`` re-hashes every copy, exits 1, names both bad copies with the reason and points
  to the good one (``--from-store gcs``);
* ``restore`` insisting on a bad copy (``--from-store local``) refuses before touching the
  target, and says how to get the good copy;
* ``restore`` without ``--from-store`` falls back on its own, says so, and restores the data
  byte for byte from GCS;
* the DR DAG's ``pick_backup`` does the same: it re-hashes the copies in policy order, logs
  the bad ones, picks GCS, and the real recovery run restores from it.
"""

from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone

import pytest

from backup_dr.core.artifacts.layout import BackupId
from backup_dr.core.artifacts.reader import load_manifest
from backup_dr.devstack.servers import MongoServer
from tests.conftest import set_connection
from tests.dags.conftest import Approver, run_dag
from tests.faults.conftest import raw_snapshot, run_cli, xcom

CRITICAL = ["announcements", "businesses", "contents"]


@pytest.fixture
def damaged_backup(backup_stack, seeded_mongo, s3_server, policy_stores):
    """A critical_data backup made by the DAG, then damaged in two of its three stores."""
    when = datetime.now(timezone.utc).replace(microsecond=0) - timedelta(hours=1)
    dr, states = run_dag("backup_critical_data", logical_date=when, run_after=when)
    assert str(dr.state) == "success", states
    bid = BackupId.parse(xcom(dr, "backup_mongodb")["backup_id"])
    manifest = load_manifest(policy_stores["local"], bid)
    name = manifest.files[0].name
    path = policy_stores["local"].path(bid.key(name))
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0x04  # one bit of rot in the middle of the local archive
    path.write_bytes(bytes(data))
    s3 = s3_server.client()
    key = f"backup-dr/{bid.key(name)}"
    body = s3.get_object(Bucket=backup_stack["s3"], Key=key)["Body"].read()
    s3.put_object(Bucket=backup_stack["s3"], Key=key, Body=body[:-1000])  # a truncated upload
    return manifest


def test_verify_names_the_bad_copies_and_the_good_one(damaged_backup):
    out = run_cli("verify", damaged_backup.backup_id, "--no-record")
    assert out.returncode == 1, out.stdout + out.stderr
    lines = out.stdout
    assert "BAD local" in lines and "BAD s3" in lines and "OK  gcs" in lines, lines
    assert "result: BAD copy in local, s3; good copy in gcs (restore with --from-store gcs)" in lines
    data = json.loads(run_cli("verify", damaged_backup.backup_id, "--no-record", "--json").stdout)
    assert data["good_stores"] == ["gcs"] and sorted(data["bad_stores"]) == ["local", "s3"]
    problems = {n: " ".join(c["problems"]) for n, c in data["copies"].items()}
    assert "sha256" in problems["local"] and "size" in problems["s3"], problems


def test_cli_restore_refuses_the_bad_copy_and_falls_back_to_the_good_one(damaged_backup, mongo_client, mongo_scratch_server,
                                                                          fresh_db_name, tmp_path):
    scratch = mongo_scratch_server.client()
    # insisting on the rotten copy: refused before the target is touched, pointed to the way out
    out = run_cli("restore", "mongo", damaged_backup.backup_id, "--to", "mongo_scratch", "--db", fresh_db_name,
                  "--from-store", "local", "--safety-dir", str(tmp_path / "safety"))
    assert out.returncode == 1, out.stderr
    assert f"no store holds a usable copy of {damaged_backup.backup_id} among those tried (--from-store local)" in out.stderr
    assert "does not match its manifest (corrupt or tampered)" in out.stderr
    assert "run it again without --from-store" in out.stderr and f"verify {damaged_backup.backup_id}" in out.stderr
    assert fresh_db_name not in scratch.list_database_names()

    # without --from-store: local (bit flip) and S3 (truncated) are refused, GCS's copy is used
    out = run_cli("restore", "mongo", damaged_backup.backup_id, "--to", "mongo_scratch", "--db", fresh_db_name, "--json",
                  "--safety-dir", str(tmp_path / "safety"))
    assert out.returncode == 0, out.stderr
    data = json.loads(out.stdout)
    assert data["store"] == "gcs" and [s["store"] for s in data["fell_back_from"]] == ["local", "s3"]
    assert all("does not match its manifest" in s["reason"] for s in data["fell_back_from"])
    assert "falling back to store s3" in out.stderr and "falling back to store gcs" in out.stderr
    assert raw_snapshot(scratch[fresh_db_name]) == raw_snapshot(mongo_client["korea_public_data"], CRITICAL)


@pytest.fixture
def replacement_mongo(tmp_path):
    with MongoServer(tmp_path / "replacement") as server:
        set_connection("mongo_dr_target", conn_type="mongo", host="127.0.0.1", port=server.port, extra={"directConnection": True})
        yield server


def test_dr_pick_backup_skips_the_bad_copies_and_the_recovery_uses_the_good_one(damaged_backup, mongo_client, webhook_sink,
                                                                                 replacement_mongo, output):
    with Approver({"provision_mongodb": ("Approve", {})}):
        dr, states = run_dag("dr_database_server_failure", run_conf={"dry_run": False})
    assert str(dr.state) == "success", states
    pick = xcom(dr, "pick_backup")  # a real run downloads nothing to pick: the restore verifies as it fetches
    assert pick["backup_id"] == damaged_backup.backup_id and pick["order"] == ["local", "s3", "gcs"], pick
    log = output.text()
    for store, then in (("local", "s3"), ("s3", "gcs")):
        assert f"the copy of {damaged_backup.backup_id} in store {store} is not usable" in log, store
        assert f"falling back to store {then}" in log
    restored = xcom(dr, "restore")
    assert restored["dry_run"] is False and restored["store"] == "gcs"
    assert [s["store"] for s in restored["fell_back_from"]] == ["local", "s3"]
    assert all("does not match its manifest" in s["reason"] for s in restored["fell_back_from"])
    assert raw_snapshot(replacement_mongo.client()["korea_public_data"]) == \
        raw_snapshot(mongo_client["korea_public_data"], CRITICAL)
