"""The proof of issue 16: back up AIRFLOW'S OWN metadata database and bring it back.

A fresh PostgreSQL database is migrated by the venv's ``airflow db migrate`` (temp
AIRFLOW_HOME, a real fernet key; ``airflow_meta.py`` and conftest.py), given a connection and a
variable with the airflow CLI and a DAG run row, then backed up by the engine while an
"Airflow" keeps writing (audit log rows, pool changes), drilled into a scratch database (every table equal to the manifest), restored
onto another database (where the airflow CLI reads the connection's password and the
variable back through the same fernet key), and restored onto a live Airflow database with a
forced failure that must roll back byte for byte as the table hashes measure it.
"""

from __future__ import annotations

import json
from datetime import datetime, timezone

import pytest

from backup_dr.core.artifacts.layout import BackupId
from backup_dr.core.artifacts.writer import ArtifactWriter
from backup_dr.core.errors import RestoreError, TargetNotEmpty
from backup_dr.core.postgres import PostgresSource, restore as restore_mod
from backup_dr.core.postgres.backup import backup_postgres
from backup_dr.core.postgres.drill import drill_postgres
from backup_dr.core.postgres.restore import restore_postgres

from airflow_meta import BASE_URL, CONN_PASSWORD
from pg_support import conninfo, execute, query, then_a_client_writes
from test_pg_tables import prints

pytestmark = pytest.mark.slow  # `airflow db migrate` alone takes ~30 s on a shared 2-core box
STAMP0 = datetime(2026, 11, 26, 8, 0, tzinfo=timezone.utc)


def airflow_writes(database: str, note: str) -> None:
    """What a running Airflow writes all day: audit log rows and pool changes, in one transaction."""
    execute(database, "BEGIN", f"INSERT INTO log (dttm, event, owner, extra) VALUES (now(), '{note}', 'airflow', '{{}}')",
            "UPDATE slot_pool SET slots = slots + 1 WHERE pool = 'default_pool'", "COMMIT")


def test_airflow_metadata_db_backs_up_during_writes_drills_and_restores(airflow, clone, new_db, store, tmp_path):
    source = clone()
    airflow_writes(source, "before the backup")
    writes = []

    def scheduler_keeps_writing(nbytes: int) -> None:  # pg_dump is streaming its snapshot
        if not writes:
            for i in range(5):
                airflow_writes(source, "after the snapshot")
                writes.append(i)

    writer = ArtifactWriter(store, BackupId.new("configuration", "airflow_db", "full", STAMP0), source_type="postgresql")
    manifest = backup_postgres(conninfo(source), PostgresSource("airflow_db", "airflow_metadata_db"), writer,
                               on_chunk=scheduler_keeps_writing)
    assert writes and len(manifest.counts) >= 50 and manifest.counts["public.alembic_version"] == 1
    assert manifest.counts["public.connection"] == 1 and manifest.counts["public.variable"] == 1
    assert manifest.counts["public.dag_run"] == 1
    live = prints(source)
    assert live["public.log"]["rows"] == manifest.counts["public.log"] + 5  # the snapshot has none of the later writes

    drill = drill_postgres(conninfo("postgres"), store, manifest, workdir=tmp_path / "drill")
    assert drill["ok"], drill["problems"]
    assert drill["details"]["tables"] == len(manifest.counts)

    target = new_db("bdr_af_restored")  # an empty database, as on a rebuilt server
    result = restore_postgres(conninfo(target), store, manifest, workdir=tmp_path / "w", safety_dir=tmp_path / "safety")
    assert result.tables == len(manifest.counts) and prints(target) == manifest.details["tables"]
    assert [r[0] for r in query(target, "SELECT event FROM log WHERE event LIKE '%backup%' OR event LIKE '%snapshot%'")] \
        == ["before the backup"]
    assert query(target, "SELECT dag_id, state, logical_date AT TIME ZONE 'Asia/Seoul' FROM dag_run")[0][:2] == \
        ("backup_critical_data", "success")

    back = airflow.run(target, ["connections", "get", "korea_api_db", "-o", "json"],
                       ["variables", "get", "korea_api_base_url"])
    (conn,) = json.loads(back["connections get"])
    assert (conn["conn_type"], conn["host"], conn["port"], conn["login"], conn["password"]) == \
        ("mongo", "mongo1.internal", "27017", "api", CONN_PASSWORD)
    assert back["variables get"].strip() == BASE_URL


def test_restore_onto_a_live_airflow_db_refuses_then_rolls_back_byte_for_byte(clone, store, tmp_path, monkeypatch):
    source = clone()
    manifest = backup_postgres(conninfo(source), PostgresSource("airflow_db", "airflow_metadata_db"),
                               ArtifactWriter(store, BackupId.new("configuration", "airflow_db", "full", STAMP0),
                                              source_type="postgresql"))
    target = clone("bdr_af_live")
    for i in range(3):
        airflow_writes(target, f"live airflow {i}")
    before = prints(target)
    with pytest.raises(TargetNotEmpty, match=r"already has \d+ table\(s\) this restore would replace: "
                                             r"public\.alembic_version, public\.asset"):
        restore_postgres(conninfo(target), store, manifest, workdir=tmp_path / "w", safety_dir=tmp_path / "safety")
    assert prints(target) == before

    monkeypatch.setattr(restore_mod, "_apply", then_a_client_writes(  # the scheduler still running
        lambda: airflow_writes(target, "scheduler heartbeat after the restore")))
    with pytest.raises(RestoreError, match="the target was rolled back to its state before the restore") as e:
        restore_postgres(conninfo(target), store, manifest, workdir=tmp_path / "w", safety_dir=tmp_path / "safety",
                         replace=True)
    assert "public.log: " in e.value.detail and "public.slot_pool: same 1 rows but different contents" in e.value.detail
    assert prints(target) == before
