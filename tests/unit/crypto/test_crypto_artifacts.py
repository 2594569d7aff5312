"""ArtifactWriter encrypts, fetch_verified decrypts: manifest fields, staging, tampering, keys."""

from __future__ import annotations

import hashlib
import json
import os
import stat
from dataclasses import replace
from datetime import datetime, timezone

import pytest

from backup_dr.core.artifacts.layout import BackupId
from backup_dr.core.artifacts.manifest import Manifest
from backup_dr.core.artifacts.reader import fetch_verified, load_manifest
from backup_dr.core.artifacts.writer import ArtifactWriter
from backup_dr.core.crypto.keys import BackupEncryption, EncryptionKeyError, Keyring
from backup_dr.core.crypto.stream import MAGIC, TAG
from backup_dr.core.connections import ConnInfo
from backup_dr.core.errors import IntegrityError
from backup_dr.core.stores.local import LocalStore
from backup_dr.core.verify import verify_copy

from crypto_support import b64

CONN = "unit_backup_key"
STAMP = datetime(2026, 11, 26, 8, 0, tzinfo=timezone.utc)


@pytest.fixture
def key_env(monkeypatch, k1):
    monkeypatch.setenv(f"AIRFLOW_CONN_{CONN.upper()}", json.dumps({"conn_type": "generic", "password": b64(k1)}))
    return Keyring.from_conn(ConnInfo(CONN, password=b64(k1)))


@pytest.fixture
def store(tmp_path):
    return LocalStore(tmp_path / "store", name="local")


def write_backup(store, keyring, files: dict[str, tuple[bytes, str]], chunk_size: int = 4096) -> Manifest:
    w = ArtifactWriter(store, BackupId.new("critical_data", "mongodb", "full", STAMP), source_type="mongodb",
                       encryption=BackupEncryption.from_keyring(keyring, chunk_size))
    w.begin()
    for name, (data, fmt) in files.items():
        with w.open_file(name, format=fmt) as out:
            for i in range(0, len(data), 3000):
                out.write(data[i:i + 3000])
        if fmt == "rdb":  # the engine re-reads it by path: plaintext until commit
            assert w.store.path(w.bid.key(name)).read_bytes() == data
    return w.commit()


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def test_manifest_records_ciphertext_for_stores_and_plaintext_for_restores(store, key_env, tmp_path):
    data = os.urandom(20_000)
    m = write_backup(store, key_env, {"db.archive.gz": (data, "mongodump-archive")})
    entry = m.file("db.archive.gz")
    on_disk = store.path(m.id.key("db.archive.gz")).read_bytes()
    assert on_disk.startswith(MAGIC) and data[:64] not in on_disk
    assert (entry.size, entry.sha256) == (len(on_disk), sha(on_disk))
    assert (entry.plain_size, entry.plain_sha256) == (len(data), sha(data))
    enc = entry.encryption
    assert enc["scheme"] == "backup_dr-aead-v1" and enc["alg"] == "AES-256-GCM" and enc["chunk_size"] == 4096
    assert enc["key_id"] == "default" and enc["key_conn_id"] == CONN and enc["key_fingerprint"] == key_env.active.fp_hex
    assert enc["context"] == f"{m.backup_id}/db.archive.gz"
    assert entry.size == enc["header_size"] + len(data) + TAG * 5
    assert load_manifest(store, m.id) == m
    assert verify_copy(store, m)["ok"]  # stores and verification see only ciphertext

    path = fetch_verified(store, m, "db.archive.gz", tmp_path / "work")  # key from the manifest's connection
    assert path.parent == tmp_path / "work" and path.read_bytes() == data
    assert stat.S_IMODE(path.stat().st_mode) == 0o600


def test_files_read_back_by_path_are_encrypted_at_commit_in_manifest_order(store, key_env, tmp_path):
    files = {"a.bin": (os.urandom(9000), "tar"), "dump.rdb": (os.urandom(10_000), "rdb"), "z.bin": (b"", "tar")}
    m = write_backup(store, key_env, files)
    assert [f.name for f in m.files] == ["a.bin", "dump.rdb", "z.bin"]
    for name, (data, _fmt) in files.items():
        entry = m.file(name)
        assert entry.encryption and store.path(m.id.key(name)).read_bytes().startswith(MAGIC)
        assert fetch_verified(store, m, name, tmp_path / "w").read_bytes() == data
    assert not [p for p in store.path(m.id.prefix).iterdir() if p.name.startswith(".tmp-") and p.name != ".tmp-lock"]


def _rewrite(store, m: Manifest, name: str, ct: bytes) -> Manifest:
    """An attacker with write access to the store: new bytes AND a manifest that matches them."""
    store.path(m.id.key(name)).write_bytes(ct)
    files = tuple(replace(f, size=len(ct), sha256=sha(ct)) if f.name == name else f for f in m.files)
    forged = replace(m, files=files)
    store.path(m.id.manifest_key).write_bytes(forged.to_json())
    return forged


def test_tampering_is_refused_even_with_a_forged_manifest_and_leaves_no_output(store, key_env, tmp_path):
    m = write_backup(store, key_env, {"db.archive.gz": (os.urandom(30_000), "mongodump-archive")})
    ct = bytearray(store.path(m.id.key("db.archive.gz")).read_bytes())
    ct[len(ct) // 2] ^= 0x10
    forged = _rewrite(store, m, "db.archive.gz", bytes(ct))
    with pytest.raises(IntegrityError, match=r"chunk \d fails authentication"):
        fetch_verified(store, forged, "db.archive.gz", tmp_path / "w")
    assert not (tmp_path / "w" / "db.archive.gz").exists()


def test_changed_bytes_without_a_forged_manifest_fail_the_hash(store, key_env, tmp_path):
    m = write_backup(store, key_env, {"db.archive.gz": (os.urandom(5000), "mongodump-archive")})
    p = store.path(m.id.key("db.archive.gz"))
    p.write_bytes(p.read_bytes() + b"\0" * 16)  # still authentic up to the final chunk, then extra bytes
    with pytest.raises(IntegrityError):
        fetch_verified(store, m, "db.archive.gz", tmp_path / "w")
    assert not (tmp_path / "w" / "db.archive.gz").exists()


def test_a_file_moved_in_from_another_backup_is_refused(store, key_env, tmp_path):
    a = write_backup(store, key_env, {"x.bin": (b"A" * 5000, "tar"), "y.bin": (b"B" * 5000, "tar")})
    swapped = store.path(a.id.key("y.bin")).read_bytes()
    forged = _rewrite(store, a, "x.bin", swapped)
    with pytest.raises(IntegrityError, match="does not match the manifest"):  # header vs manifest entry
        fetch_verified(store, forged, "x.bin", tmp_path / "w")
    y = forged.file("y.bin")  # forge the entry completely: the header still names y.bin
    files = tuple(replace(y, name="x.bin") if f.name == "x.bin" else f for f in forged.files)
    with pytest.raises(IntegrityError, match=r"the file belongs to '.*/y\.bin', not '.*/x\.bin'"):
        fetch_verified(store, replace(forged, files=files), "x.bin", tmp_path / "w")
    assert not (tmp_path / "w" / "x.bin").exists()


def test_missing_or_wrong_key_fails_before_any_output(store, key_env, tmp_path, k2, monkeypatch):
    m = write_backup(store, key_env, {"db.archive.gz": (os.urandom(5000), "mongodump-archive")})
    other = Keyring.from_conn(ConnInfo(CONN, extra={"keys": {"k2": b64(k2)}}))
    with pytest.raises(EncryptionKeyError, match=f"master key 'default' .* which connection '{CONN}' does not hold"):
        fetch_verified(store, m, "db.archive.gz", tmp_path / "w", keyring=other)
    wrong = Keyring.from_conn(ConnInfo(CONN, password=b64(k2)))
    with pytest.raises(EncryptionKeyError, match="wrong key"):
        fetch_verified(store, m, "db.archive.gz", tmp_path / "w", keyring=wrong)
    monkeypatch.delenv(f"AIRFLOW_CONN_{CONN.upper()}")
    with pytest.raises(EncryptionKeyError, match=f"encryption key connection '{CONN}' is not available"):
        fetch_verified(store, m, "db.archive.gz", tmp_path / "w")
    assert not (tmp_path / "w").exists() or not any((tmp_path / "w").iterdir())


def test_unencrypted_backups_are_unchanged(store, tmp_path):
    w = ArtifactWriter(store, BackupId.new("critical_data", "mongodb", "full", STAMP), source_type="mongodb")
    w.begin()
    with w.open_file("plain.bin", format="tar") as out:
        out.write(b"plain bytes")
    m = w.commit()
    entry = m.file("plain.bin")
    assert entry.encryption is None and entry.plain_sha256 is None and entry.sha256 == sha(b"plain bytes")
    assert fetch_verified(store, m, "plain.bin", tmp_path / "w") == store.path(m.id.key("plain.bin"))
