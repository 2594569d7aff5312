"""Restore onto a target: refusal, safety dump, single-transaction apply, validation, rollback."""

from __future__ import annotations

import re
import shlex
import subprocess

import pytest

from backup_dr.core.artifacts.layout import BackupId
from backup_dr.core.artifacts.reader import load_manifest
from backup_dr.core.errors import IntegrityError, RestoreError, RestoreRefused, TargetNotEmpty
from backup_dr.core.postgres import PostgresSource, apply as apply_mod, restore as restore_mod
from backup_dr.core.postgres.backup import backup_postgres
from backup_dr.core.postgres.restore import restore_postgres
from backup_dr.core.stores.local import LocalStore

from pg_support import conninfo, connect, execute, then_a_client_writes, unique
from test_pg_tables import prints


@pytest.fixture
def shop_backup(shop_db, new_writer):
    return backup_postgres(conninfo(shop_db), PostgresSource("shop", "pg_test"), new_writer())


@pytest.fixture
def live_target(new_db, shop_template):
    """A target in use: the shop with other data, plus a table the backup does not have."""
    name = new_db("bdr_target", template=shop_template)
    execute(name, "UPDATE customers SET city = '대구' WHERE id < 100", "DELETE FROM orders WHERE id > 5000",
            "CREATE TABLE local_only (k text PRIMARY KEY)", "INSERT INTO local_only VALUES ('keep?')")
    return name


def restore(store, manifest, tmp_path, target, **kw):
    return restore_postgres(conninfo(target), store, manifest, workdir=tmp_path / "work", safety_dir=tmp_path / "safety", **kw)


def safety_manifests(tmp_path) -> list:
    safety = LocalStore(tmp_path / "safety")
    return [load_manifest(safety, BackupId.parse(p.parent.name)) for p in sorted((tmp_path / "safety").rglob("manifest.json"))]


def test_restore_into_an_empty_database(shop_backup, store, tmp_path, new_db):
    target = new_db()
    result = restore(store, shop_backup, tmp_path, target)
    assert prints(target) == shop_backup.details["tables"]
    assert result.as_dict()["validation"] == {"ok": True, "tables": 4} and result.rows == 8008 and result.dropped_tables == []
    (safety,) = safety_manifests(tmp_path)
    assert safety.kind == "safety" and safety.details["tables"] == {} and result.safety_backup == safety.backup_id


def test_a_non_empty_target_is_refused_and_left_untouched(shop_backup, store, tmp_path, live_target):
    before = prints(live_target)
    with pytest.raises(TargetNotEmpty, match=r"already has 5 table\(s\) this restore would replace: audit\.Change Log, "
                                             r"public\.customers, public\.events, public\.local_only, public\.orders") as e:
        restore(store, shop_backup, tmp_path, live_target)
    assert "replace=True" in e.value.hint
    assert prints(live_target) == before and not (tmp_path / "safety").exists()


def test_replace_makes_the_target_equal_the_backup_and_the_safety_dump_undoes_it(shop_backup, store, tmp_path, live_target):
    before = prints(live_target)
    result = restore(store, shop_backup, tmp_path, live_target, replace=True)
    assert prints(live_target) == shop_backup.details["tables"]  # local_only is gone: the target equals the backup
    assert result.dropped_tables == ["public.local_only"]
    (safety,) = safety_manifests(tmp_path)
    assert safety.details["tables"] == before
    undo = restore_postgres(conninfo(live_target), LocalStore(tmp_path / "safety"), safety, workdir=tmp_path / "w2",
                            safety_dir=tmp_path / "safety2", replace=True)
    assert prints(live_target) == before and undo.safety_backup


def test_pg_restore_failing_inside_its_transaction_leaves_the_target_as_it_was(new_db, new_writer, store, tmp_path, live_target):
    """The backup's table belongs to a role the target server no longer has: pg_restore fails after
    dropping the target's tables inside its transaction, which the server rolls back."""
    role = unique("bdr_owner")
    source = new_db()
    execute("postgres", f"CREATE ROLE {role}")
    try:
        execute(source, "CREATE TABLE customers (id int PRIMARY KEY)", f"ALTER TABLE customers OWNER TO {role}",
                "INSERT INTO customers VALUES (1)")
        manifest = backup_postgres(conninfo(source), PostgresSource("shop", "pg_test"), new_writer())
        execute(source, f"REASSIGN OWNED BY {role} TO postgres", f"DROP OWNED BY {role}")
    finally:
        execute("postgres", f"DROP ROLE {role}")
    before = prints(live_target)
    with pytest.raises(RestoreError, match=r"failed; the target was rolled back to its state before the restore") as e:
        restore(store, manifest, tmp_path, live_target, replace=True)
    assert f'role "{role}" does not exist' in e.value.detail and "nothing changed on the target" in e.value.hint
    assert prints(live_target) == before  # byte for byte, table by table (local_only, dropped first, is back too)


def test_a_failure_after_the_restore_committed_is_rolled_back_from_the_safety_dump(shop_backup, store, tmp_path, live_target,
                                                                                    monkeypatch):
    """A client still writing to the target right after pg_restore commits: validation catches it."""
    before = prints(live_target)
    monkeypatch.setattr(restore_mod, "_apply", then_a_client_writes(
        lambda: execute(live_target, "INSERT INTO orders (customer, amount) VALUES (3, 99)")))
    with pytest.raises(RestoreError, match="the target was rolled back") as e:
        restore(store, shop_backup, tmp_path, live_target, replace=True)
    assert "public.orders: 6001 rows, expected 6000" in e.value.detail
    assert prints(live_target) == before


def test_a_client_holding_a_lock_makes_the_restore_give_up_and_names_it(shop_backup, store, tmp_path, live_target,
                                                                        monkeypatch):
    """pg_restore has no lock timeout of its own: the lock watch cancels it and names the holder."""
    before = prints(live_target)
    monkeypatch.setattr(apply_mod, "LOCK_TIMEOUT", 1.0)

    def restore_while_a_client_holds_a_lock(pg, path, **kw):
        if kw["label"] != "restore":
            return apply_mod.apply_dump(pg, path, **kw)
        locker = connect(live_target, autocommit=False)
        try:
            locker.cursor().execute("LOCK TABLE customers IN ACCESS SHARE MODE")
            apply_mod.apply_dump(pg, path, **kw)
        finally:
            locker.rollback()
            locker.close()

    monkeypatch.setattr(restore_mod, "_apply", restore_while_a_client_holds_a_lock)
    with pytest.raises(RestoreError, match="the target was rolled back") as e:
        restore(store, shop_backup, tmp_path, live_target, replace=True)
    assert "gave up after waiting 1s for a lock (lock timeout)" in e.value.detail
    assert re.search(r"held by pid \d+ \(user postgres, \(no application_name\), from 127\.0\.0\.1/32, idle in transaction\)",
                     e.value.detail)
    assert prints(live_target) == before


def test_a_failed_rollback_names_commands_that_finish_it(shop_backup, store, tmp_path, live_target, monkeypatch):
    """The restore added a table the target never had; the rollback cannot drop it (a client
    holds a lock on it). The error's commands, run verbatim once that client is gone, put the
    target back."""
    execute(live_target, "DROP TABLE events")
    before = prints(live_target)
    locker = connect(live_target, autocommit=False)
    monkeypatch.setattr(apply_mod, "LOCK_TIMEOUT", 1.0)
    real_drop = restore_mod.drop_tables

    def drop_while_locked(pg, tables):
        if [t.qualified for t in tables] == ["public.events"]:  # the rollback's drop (the restore's is local_only)
            locker.cursor().execute("LOCK TABLE events IN ACCESS SHARE MODE")
        real_drop(pg, tables)

    monkeypatch.setattr(restore_mod, "drop_tables", drop_while_locked)
    monkeypatch.setattr(restore_mod, "_apply", then_a_client_writes(
        lambda: execute(live_target, "INSERT INTO orders (customer, amount) VALUES (3, 99)")))
    try:
        with pytest.raises(RestoreError, match="failed AND the rollback failed: the target may be half-written") as e:
            restore(store, shop_backup, tmp_path, live_target, replace=True)
    finally:
        locker.rollback()
        locker.close()
    assert "lock timeout" in e.value.detail and "password comes from ~/.pgpass" in e.value.hint
    commands = re.findall(r"`([^`]+)`", e.value.hint)
    assert [c.split()[0] for c in commands] == ["psql", "pg_restore"] and '"public"."events"' in commands[0]
    for command in commands:
        subprocess.run(shlex.split(command), check=True, capture_output=True, timeout=120)
    assert prints(live_target) == before


def test_a_missing_target_database_is_refused(shop_backup, store, tmp_path):
    with pytest.raises(RestoreRefused, match=r"target database postgres@127\.0\.0\.1:5432/bdr_nowhere does not exist") as e:
        restore(store, shop_backup, tmp_path, "bdr_nowhere")
    assert "createdb bdr_nowhere" in e.value.hint and not (tmp_path / "safety").exists()


def test_a_corrupt_dump_is_refused_before_the_target_is_touched(shop_backup, store, tmp_path, live_target):
    path = store.path(shop_backup.id.key(shop_backup.details["dump_file"]))
    data = bytearray(path.read_bytes())
    data[-1] ^= 0xFF
    path.write_bytes(bytes(data))
    before = prints(live_target)
    with pytest.raises(IntegrityError):
        restore(store, shop_backup, tmp_path, live_target, replace=True)
    assert prints(live_target) == before and not (tmp_path / "safety").exists()
