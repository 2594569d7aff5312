"""The break-glass CLI (Airflow blocked) reads an S3 store through an aws connection's ``role_arn``.

Only the role may use S3 (``s3_role``: moto enforcing IAM), the backup exists only in that
bucket, and the CLI gets nothing but the connection JSON — the same one the Airflow hook reads.
"""

from __future__ import annotations

import json
import shutil
from dataclasses import replace
from datetime import timedelta

from backup_dr.core.connections import parse_conn
from backup_dr.core.files import backup_files
from backup_dr.core.replicate import replicate
from backup_dr.core.stores.factory import open_store
from backup_dr.core.stores.local import LocalStore

from cli_support import POLICY, Cli, History, tree


def test_cli_verifies_and_restores_a_backup_held_only_behind_an_assumed_role(policy, s3_role, cli_app, tmp_path):
    root = tmp_path / "h"
    (root / "backups").mkdir(parents=True)
    conn_json = json.dumps(s3_role["conn"])
    h = History(policy, root, s3_role["bucket"], "no-gcs-here")
    h.stores = {"local": LocalStore(root / "backups", name="local"),
                "s3": open_store(replace(policy.stores["s3"], bucket=s3_role["bucket"]), parse_conn("backup_s3", conn_json))}
    source = replace(policy.sources["app_config"], path=str(cli_app / "config"))
    m = backup_files(source, h._writer("configuration", source, age=timedelta(hours=1)))
    replicate(h.local, m, h.stores["s3"])
    shutil.rmtree(root / "backups")
    (root / "backups").mkdir()  # the local copy is gone: only the role's bucket holds the backup

    cli = Cli({"BACKUP_DR_POLICY": str(POLICY), "BACKUP_DR_LOCAL_PATH": str(root / "backups"),
               "BACKUP_DR_S3_BUCKET": s3_role["bucket"], "BACKUP_DR_APP_DIR": str(root / "app"),
               "BACKUP_DR_TEST_AIRFLOW_MARK": str(root / "airflow-imports.txt"), "AIRFLOW_CONN_BACKUP_S3": conn_json}, root)
    data = cli.json("verify", m.backup_id, "--store", "s3")
    assert data["ok"] is True and data["good_stores"] == ["s3"], data
    target = tmp_path / "restored"
    data = cli.json("restore", "files", m.backup_id, "--to", str(target))
    assert (data["backup_id"], data["store"]) == (m.backup_id, "s3"), data
    assert tree(target) == tree(cli_app / "config")
    assert not cli.airflow_mark.exists(), cli.airflow_mark.read_text()
