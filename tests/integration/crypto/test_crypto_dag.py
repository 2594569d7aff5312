"""An encrypted class end to end in Airflow: the operator resolves the key from an Airflow
connection, every store holds the same ciphertext, and the backup restores."""

from __future__ import annotations

from datetime import datetime, timezone
from pathlib import Path

import pytest
import yaml

POLICY = Path(__file__).resolve().parents[3] / "include" / "policy.yaml"


@pytest.fixture
def encrypted_policy(tmp_path, monkeypatch):
    doc = yaml.safe_load(POLICY.read_text(encoding="utf-8"))
    doc["classes"]["critical_data"]["encryption"] = {"key_conn_id": "backup_encryption_key"}
    path = tmp_path / "policy.yaml"
    path.write_text(yaml.safe_dump(doc, allow_unicode=True, sort_keys=False), encoding="utf-8")
    monkeypatch.setenv("BACKUP_DR_POLICY", str(path))
    return path


def test_encrypted_critical_data_dag_stores_ciphertext_everywhere(airflow_db, seeded_mongo, s3_bucket, gcs_bucket,
                                                                  local_store_root, app_dir, sinks, keys, encrypted_policy,
                                                                  mongo_client, tmp_path):
    from backup_dr.core.catalog import Catalog
    from backup_dr.core.crypto.stream import MAGIC
    from backup_dr.core.mongo.backup import restore_mongodb
    from backup_dr.core.policy import load_policy
    from backup_dr.core.stores.factory import open_stores
    from backup_dr.core.verify import verify_copy
    from tests.dags.conftest import run_dag

    dr, states = run_dag("backup_critical_data", logical_date=datetime(2026, 11, 27, 4, 0, tzinfo=timezone.utc))
    assert str(dr.state) == "success", states
    policy = load_policy(encrypted_policy)
    stores = open_stores(policy.stores[n] for n in ("local", "s3", "gcs"))
    entry = Catalog(stores).newest("critical_data", "mongodb")
    assert entry is not None and sorted(entry.complete_in) == ["gcs", "local", "s3"]
    m = entry.manifest()
    f = m.files[0]
    assert f.encryption["key_id"] == "k1" and f.encryption["key_conn_id"] == "backup_encryption_key"
    for name, store in stores.items():
        assert verify_copy(store, m)["ok"], name
        with store.open(m.id.key(f.name)) as src:
            assert src.read(len(MAGIC)) == MAGIC, name
    target = "enc_dag_restore"
    try:
        restore_mongodb(mongo_client, stores["gcs"], m, workdir=tmp_path / "w", safety_dir=tmp_path / "s", target_db=target)
        db = mongo_client[target]
        assert {c: db[c].count_documents({}) for c in m.counts} == m.counts
    finally:
        mongo_client.drop_database(target)


def test_a_missing_key_connection_fails_the_backup_task_without_retries(airflow_db, seeded_mongo, s3_bucket, gcs_bucket,
                                                                         local_store_root, app_dir, sinks, keys,
                                                                         encrypted_policy, monkeypatch):
    from tests.dags.conftest import run_dag

    monkeypatch.delenv("AIRFLOW_CONN_BACKUP_ENCRYPTION_KEY")
    dr, states = run_dag("backup_critical_data", logical_date=datetime(2026, 11, 27, 8, 0, tzinfo=timezone.utc))
    assert str(dr.state) == "failed"
    failed = [t for t, s in states.items() if s == "failed"]
    assert failed and all("mongodb" in t for t in failed), states
    assert not list(local_store_root.rglob("*.archive*"))  # nothing was dumped
