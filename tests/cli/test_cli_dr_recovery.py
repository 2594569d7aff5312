"""THE break-glass test: recover from a database server failure with the CLI alone.

A dedicated "production" server is seeded, backed up by the core job function and
replicated to S3 and GCS (as the critical_data DAG does). Then the server is lost (its
process stopped, its data directory deleted), and so is the machine that held the local
backup store. On a new empty server, with only the policy file and credentials in the
environment (no AIRFLOW_HOME, Airflow unimportable), ``list``, ``verify`` and
``restore mongo latest`` bring back every document (byte for byte, by _id) and index.
"""

from __future__ import annotations

import shutil

import pymongo

from backup_dr.devstack import sample_data
from backup_dr.devstack.servers import MongoServer

from cli_support import snapshot_db
from cli_support import mongo_conn_json

CRITICAL = ["announcements", "businesses", "contents"]


def test_database_server_failure_recovery_through_the_cli_alone(fresh_history, tmp_path):
    h = fresh_history()
    prod = MongoServer(tmp_path / "prod").start()
    try:
        with prod.client() as client:
            sample_data.seed_mongo(client, {"announcements": 1500, "businesses": 1200, "contents": 300, "statistics": 200})
            manifest = h.mongo(client)
            before = snapshot_db(client, "korea_public_data", CRITICAL)
    finally:
        prod.cleanup()
    # the production server is gone, and so is the host that kept the local store
    shutil.rmtree(prod.workdir, ignore_errors=True)
    shutil.rmtree(h.local.root)
    try:
        pymongo.MongoClient(prod.uri, serverSelectionTimeoutMS=500).admin.command("ping")
        raise AssertionError("the lost server still answers")
    except pymongo.errors.ServerSelectionTimeoutError:
        pass

    with MongoServer(tmp_path / "replacement") as new:
        cli = h.cli(mongo_new_primary=mongo_conn_json(new))
        listed = cli.json("list", "--source", "mongodb")
        assert [b["backup_id"] for b in listed["backups"]] == [manifest.backup_id]
        assert listed["backups"][0]["complete_in"] == ["s3", "gcs"]
        assert "does not exist on this machine" in listed["unavailable_stores"]["local"]

        verified = cli.json("verify", manifest.backup_id)
        assert verified["ok"] is True and verified["good_stores"] == ["s3", "gcs"]

        out = cli.run("restore", "mongo", "latest", "--to", "mongo_new_primary", "--json", importtime=True)
        assert out.returncode == 0, out.stderr[-3000:]
        import json

        restored = json.loads(out.stdout)
        assert restored["backup_id"] == manifest.backup_id and restored["store"] == "s3"
        assert restored["restore"]["validation"]["ok"] is True
        assert restored["restore"]["safety_backup"] is None  # the new server was empty
        # Airflow was never imported: not by the import-time trace, not past the blocker
        imported = [line for line in out.stderr.splitlines() if line.startswith("import time:")]
        assert len(imported) > 100 and not [line for line in imported if "airflow" in line.split("|")[-1]]
        assert not cli.airflow_mark.exists()

        with new.client() as client:
            after = snapshot_db(client, "korea_public_data", CRITICAL)
            assert sorted(client["korea_public_data"].list_collection_names()) == CRITICAL
    for name in CRITICAL:
        assert after[name]["count"] == before[name]["count"] == manifest.counts[name]
        assert after[name]["docs"] == before[name]["docs"], f"{name}: documents differ"
        assert after[name]["indexes"] == before[name]["indexes"], f"{name}: indexes differ"
