"""Emergency decryption without our restore code: ``python -m backup_dr decrypt`` gives the stock
tools their input (a gzip'd mongodump archive here), verified, from a good copy or a file."""

from __future__ import annotations

import gzip
import hashlib
import json
import os
import stat

import pytest

from backup_dr.core.mongo.backup import backup_mongodb
from backup_dr.core.policy_model import Job, MongoSource, StoreSpec
from backup_dr.core.replicate import replicate
from backup_dr.core.stores.factory import open_store

ARCHIVE_MAGIC = b"\x6d\xe2\x99\x81"


@pytest.fixture
def encrypted_backup(mongo_client, seeded_mongo, keys, enc_writer, store, s3_bucket):
    """An encrypted critical_data MongoDB backup in the local store, replicated to S3."""
    source = MongoSource(name="mongodb", conn_id="mongo_korea_public_data", database="korea_public_data")
    m = backup_mongodb(mongo_client, source, Job(source="mongodb", collections=("contents",)),
                       enc_writer("mongodb", "full", "mongodb", chunk_size=16 * 1024))
    s3 = open_store(StoreSpec(name="s3", type="s3", bucket=s3_bucket, prefix="backup-dr", conn_id="backup_s3"))
    replicate(store, m, s3)
    return m


@pytest.fixture
def env(store, s3_bucket, key_var):
    return {"BACKUP_DR_LOCAL_PATH": str(store.root), "BACKUP_DR_S3_BUCKET": s3_bucket,
            "AIRFLOW_CONN_BACKUP_S3": os.environ["AIRFLOW_CONN_BACKUP_S3"], **key_var()}


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def test_decrypt_falls_back_to_a_good_copy_and_writes_a_stock_mongodump_archive(encrypted_backup, store, env, run_cli,
                                                                                tmp_path, keys):
    m = encrypted_backup
    entry = m.files[0]
    local = store.path(m.id.key(entry.name))
    bad = bytearray(local.read_bytes())
    bad[len(bad) // 2] ^= 0x01  # the local copy rots
    local.write_bytes(bytes(bad))
    out_path = tmp_path / "dump.archive.gz"
    out = run_cli("decrypt", m.backup_id, entry.name, "--out", str(out_path), "--json", env=env)
    assert out.returncode == 0, out.stderr
    result = json.loads(out.stdout)
    assert result["store"] == "s3" and result["fell_back_from"][0]["store"] == "local"
    assert result["key_id"] == "k1" and result["sha256"] == entry.plain_sha256
    data = out_path.read_bytes()
    assert sha(data) == entry.plain_sha256 and len(data) == entry.plain_size
    assert gzip.decompress(data)[:4] == ARCHIVE_MAGIC  # what `mongorestore --gzip --archive` reads
    assert stat.S_IMODE(out_path.stat().st_mode) == 0o600
    assert all(t not in out.stdout + out.stderr for t in keys.texts)
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".backup-dr-decrypt-")] == []

    again = run_cli("decrypt", m.backup_id, entry.name, "--out", str(out_path), env=env)
    assert again.returncode == 2 and "exists" in again.stderr  # never overwrites without --force


def test_decrypt_a_file_fetched_by_hand(encrypted_backup, store, env, run_cli, tmp_path):
    m = encrypted_backup
    entry = m.files[0]
    copy = tmp_path / "fetched.enc"
    copy.write_bytes(store.path(m.id.key(entry.name)).read_bytes())
    out = run_cli("decrypt", m.backup_id, entry.name, "--in", str(copy), "--out", str(tmp_path / "plain.gz"),
                  "--key-conn", "backup_encryption_key", env=env)
    assert out.returncode == 0, out.stderr
    assert sha((tmp_path / "plain.gz").read_bytes()) == entry.plain_sha256 and entry.plain_sha256 in out.stdout

    other = "critical_data.mongodb.full.20200101T000000Z"  # the header binds the file to its backup
    out = run_cli("decrypt", other, entry.name, "--in", str(copy), "--out", str(tmp_path / "x.gz"),
                  "--key-conn", "backup_encryption_key", env=env)
    assert out.returncode == 1 and f"the file belongs to '{m.backup_id}/{entry.name}'" in out.stderr
    assert not (tmp_path / "x.gz").exists()

    cut = tmp_path / "cut.enc"
    body = entry.size - entry.encryption["header_size"]
    last = body % (16 * 1024 + 16) or 16 * 1024 + 16
    cut.write_bytes(copy.read_bytes()[:-last])  # exactly the last chunk lost in transfer
    out = run_cli("decrypt", m.backup_id, entry.name, "--in", str(cut), "--out", str(tmp_path / "y.gz"),
                  "--key-conn", "backup_encryption_key", env=env)
    assert out.returncode == 1 and "truncated" in out.stderr and not (tmp_path / "y.gz").exists()


def test_decrypt_with_the_wrong_key_names_key_and_connection_only(encrypted_backup, env, run_cli, tmp_path, keys, key_var):
    keys.k1 = keys.k2
    keys.use("k1", "k1")
    out = run_cli("decrypt", encrypted_backup.backup_id, "--out", str(tmp_path / "o.gz"), env={**env, **key_var()})
    assert out.returncode == 2
    assert "wrong key: connection 'backup_encryption_key' holds a key 'k1'" in out.stderr
    assert all(t not in out.stderr + out.stdout for t in keys.texts)
    assert not (tmp_path / "o.gz").exists()
