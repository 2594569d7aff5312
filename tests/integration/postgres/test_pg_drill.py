"""Verify-by-restore: pg_restore into a scratch database, table-by-table comparison, cleanup."""

from __future__ import annotations

import base64
import dataclasses
import hashlib
import json
import os

import pytest

from backup_dr.core.artifacts.manifest import FileEntry
from backup_dr.core.connections import conn_from_env
from backup_dr.core.crypto.keys import BackupEncryption, load_keyring, set_connection_resolver
from backup_dr.core.errors import IntegrityError
from backup_dr.core.postgres import PostgresSource
from backup_dr.core.postgres.backup import backup_postgres
from backup_dr.core.postgres.drill import drill_postgres

from pg_support import conninfo, databases


@pytest.fixture
def shop_backup(shop_db, new_writer, store):
    return backup_postgres(conninfo(shop_db), PostgresSource("shop", "pg_test"), new_writer())


def with_tables(manifest, **changes):
    tables = {k: dict(v) for k, v in manifest.details["tables"].items()}
    for name, fields in changes.items():
        tables[name.replace("__", ".")].update(fields)
    return dataclasses.replace(manifest, details={**manifest.details, "tables": tables})


def test_drill_restores_into_scratch_compares_every_table_and_drops_it(shop_backup, store, tmp_path):
    before = databases("bdr_drill_")
    result = drill_postgres(conninfo("postgres"), store, shop_backup, workdir=tmp_path / "w")
    assert set(result) == {"ok", "restore_seconds", "problems", "details"}
    assert result["ok"] and result["problems"] == [] and result["restore_seconds"] > 0
    d = result["details"]
    assert (d["tables"], d["rows"]) == (4, 2000 + 6000 + 5 + 3) and d["kept"] is False
    assert d["fetch_seconds"] + d["restore_seconds"] + d["compare_seconds"] == pytest.approx(result["restore_seconds"], abs=0.01)
    assert databases("bdr_drill_") == before  # the scratch database is gone


def test_drill_reports_every_table_that_differs_from_the_manifest(shop_backup, store, tmp_path):
    wrong = with_tables(shop_backup, public__orders={"rows": 5999}, public__customers={"md5": "0" * 32})
    result = drill_postgres(conninfo("postgres"), store, wrong, workdir=tmp_path / "w")
    assert not result["ok"]
    assert result["problems"][0].startswith("public.customers: same 2000 rows but different contents (hash ")
    assert result["problems"][1:] == ["public.orders: 6000 rows, expected 5999"]


def test_a_dump_that_does_not_restore_is_a_finding_not_a_crash(shop_backup, store, tmp_path):
    path = store.path(shop_backup.id.key(shop_backup.details["dump_file"]))
    half = path.read_bytes()[: path.stat().st_size // 2]
    path.write_bytes(half)  # recorded as it is now: a dump pg_dump wrote short, with a matching sha256
    entry = FileEntry(name=path.name, size=len(half), sha256=hashlib.sha256(half).hexdigest(), format="pg-dump-custom")
    short = dataclasses.replace(shop_backup, files=(entry,))
    before = databases("bdr_drill_")
    result = drill_postgres(conninfo("postgres"), store, short, workdir=tmp_path / "w")
    assert not result["ok"] and result["problems"][0].startswith("pg_restore failed: drill into postgres@127.0.0.1:5432/bdr_drill_")
    assert databases("bdr_drill_") == before


def test_a_corrupt_dump_fails_before_any_scratch_database_exists(shop_backup, store, tmp_path):
    path = store.path(shop_backup.id.key(shop_backup.details["dump_file"]))
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF
    path.write_bytes(bytes(data))
    before = databases("bdr_drill_")
    with pytest.raises(IntegrityError, match="does not match its manifest"):
        drill_postgres(conninfo("postgres"), store, shop_backup, workdir=tmp_path / "w")
    assert databases("bdr_drill_") == before


def test_an_encrypted_backup_is_stored_as_ciphertext_and_drills(shop_db, new_writer, store, tmp_path, monkeypatch):
    monkeypatch.setenv("AIRFLOW_CONN_PG_TEST_KEY", json.dumps(
        {"conn_type": "generic", "extra": {"keys": {"k1": base64.b64encode(os.urandom(32)).decode()}, "active": "k1"}}))
    previous = set_connection_resolver(conn_from_env)
    try:
        writer = new_writer(encryption=BackupEncryption.from_keyring(load_keyring("pg_test_key")))
        manifest = backup_postgres(conninfo(shop_db), PostgresSource("shop", "pg_test"), writer)
        (entry,) = manifest.files
        assert entry.encryption and not store.path(manifest.id.key(entry.name)).read_bytes().startswith(b"PGDMP")
        result = drill_postgres(conninfo("postgres"), store, manifest, workdir=tmp_path / "w")
    finally:
        set_connection_resolver(previous)
    assert result["ok"], result["problems"]
