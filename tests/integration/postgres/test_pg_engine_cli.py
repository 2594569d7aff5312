"""The fifth engine wired in (issue 16): the policy's ``airflow_db`` source, a REAL Airflow
metadata DB, backed up through the engine registry as the backup operator does, then
drilled (``verify --scratch``) and restored (``restore postgres``) by the break-glass CLI
with Airflow unimportable, until the restored database equals the source table by table and
the airflow CLI reads the connection's password back through the fernet key.
"""

from __future__ import annotations

import json
import sys
from datetime import datetime, timezone
from pathlib import Path

import pytest

from backup_dr.core.artifacts.layout import BackupId, kind_for
from backup_dr.core.artifacts.writer import ArtifactWriter
from backup_dr.core.engines import BackupRequest, Connector, engine_for
from backup_dr.core.policy import load_policy
from backup_dr.core.stores.local import LocalStore

from airflow_meta import CONN_PASSWORD
from pg_support import HOST, PORT, USER, databases, query
from test_pg_tables import prints

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "cli"))
from cli_support import Cli  # noqa: E402 - the CLI tests' runner: Airflow blocked, minimal env

pytestmark = pytest.mark.slow  # the migrated template: `airflow db migrate` takes ~30 s
WHEN = datetime(2026, 11, 29, 3, 0, tzinfo=timezone.utc)

POLICY = """
version: 1
recovery_objectives:
  non_critical: {rpo: 7d, rto: 4h}
stores:
  local: {type: local, path: LOCAL}
sources:
  airflow_db: {type: postgresql, conn_id: airflow_metadata_db}
classes:
  configuration:
    description: Airflow's own metadata DB
    schedule: "0 3 * * 0"
    retention: 6 months
    stores: [local]
    objective: non_critical
    jobs:
      - {source: airflow_db, priority: 3, timeout: 30m}
alerts:
  email: {conn_id: smtp_backup_alerts, to: [dba@example.org]}
ops:
  drill_scratch: {postgresql_conn_id: pg_scratch}
"""


def _pg(conn_id: str, database: str) -> str:
    return json.dumps({"conn_type": "postgres", "host": HOST, "port": PORT, "login": USER, "schema": database})


def test_airflow_db_backs_up_drills_and_restores_through_the_registry_and_the_cli(airflow, clone, new_db, tmp_path):
    source, target = clone(), new_db("bdr_af_cli")
    policy_file = tmp_path / "policy.yaml"
    policy_file.write_text(POLICY.replace("LOCAL", str(tmp_path / "backups")))
    policy = load_policy(policy_file)
    src = policy.sources["airflow_db"]
    conns = {"airflow_metadata_db": _pg("airflow_metadata_db", source), "pg_scratch": _pg("pg_scratch", "postgres"),
             "af_restored": _pg("af_restored", target)}

    # the backup, as the configuration DAG's SourceBackupOperator runs it: the engine registry
    from backup_dr.core.connections import parse_conn

    connector = Connector(conn_info=lambda cid: parse_conn(cid, conns[cid]), mongo_client=None)
    store = LocalStore(tmp_path / "backups", name="local")
    writer = ArtifactWriter(store, BackupId.new("configuration", "airflow_db", kind_for(src), WHEN), source_type=src.type)
    manifest = engine_for(src).backup(src, writer, connector, BackupRequest())
    assert manifest.counts["public.connection"] == 1 and manifest.counts["public.dag_run"] == 1
    assert len(manifest.counts) >= 50

    home = tmp_path / "cli"
    home.mkdir()
    cli = Cli({"BACKUP_DR_POLICY": str(policy_file), "BACKUP_DR_TEST_AIRFLOW_MARK": str(home / "airflow-imports"),
               **{f"AIRFLOW_CONN_{k.upper()}": v for k, v in conns.items()}}, home)
    before_drill = set(databases("bdr_drill_"))

    out = cli.run("--json", "verify", manifest.backup_id, "--scratch")
    assert out.returncode == 0, out.stderr
    drill = json.loads(out.stdout)["drill"]
    assert drill["ok"] is True and drill["details"]["tables"] == len(manifest.counts), drill
    assert set(databases("bdr_drill_")) == before_drill  # the scratch database was dropped

    wrong = cli.run("restore", "files", manifest.backup_id, "--to", str(tmp_path / "nowhere"))
    assert wrong.returncode == 2 and "use: python -m backup_dr restore postgres" in wrong.stderr

    refused = cli.run("restore", "postgres", "latest", "--to", "airflow_metadata_db", "--safety-dir", str(tmp_path / "safety"))
    assert refused.returncode != 0 and "--replace" in refused.stderr, refused.stderr

    out = cli.run("--json", "restore", "postgres", "latest", "--to", "af_restored", "--safety-dir", str(tmp_path / "safety"))
    assert out.returncode == 0, out.stderr
    result = json.loads(out.stdout)
    assert result["backup_id"] == manifest.backup_id and result["store"] == "local"
    assert prints(target) == prints(source) == manifest.details["tables"]  # the round trip, table by table
    assert query(target, "SELECT dag_id, state FROM dag_run") == [("backup_critical_data", "success")]
    assert not cli.airflow_mark.exists(), "the CLI imported airflow"

    back = airflow.run(target, ["connections", "get", "korea_api_db", "-o", "json"])
    (conn,) = json.loads(back["connections get"])
    assert (conn["host"], conn["password"]) == ("mongo1.internal", CONN_PASSWORD)
