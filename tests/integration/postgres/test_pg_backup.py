"""The PostgreSQL backup: pg_dump of an exported snapshot streamed into the store, with the
manifest's counts and hashes taken in that same snapshot even while others write."""

from __future__ import annotations

import hashlib
import os
import signal
import subprocess
from pathlib import Path

import pytest

from backup_dr.core.artifacts.reader import load_manifest
from backup_dr.core.artifacts.writer import ArtifactWriter
from backup_dr.core.errors import ConnectionConfigError, SourceError
from backup_dr.core.postgres import PostgresSource
from backup_dr.core.postgres.backup import backup_postgres
from backup_dr.core.postgres.drill import drill_postgres
from backup_dr.core.postgres.tables import HASH_RECIPE

from pg_support import Writer, conninfo, execute, query, unique
from test_pg_tables import prints


def dump_path(store, manifest):
    return store.path(manifest.id.key(manifest.details["dump_file"]))


def test_manifest_records_versions_counts_hashes_and_the_snapshot(shop_db, store, new_writer):
    writer = new_writer()
    manifest = backup_postgres(conninfo(shop_db), PostgresSource("shop", "pg_test"), writer)
    assert load_manifest(store, writer.bid) == manifest and manifest.source_type == "postgresql"
    assert manifest.counts == {"audit.Change Log": 3, "public.customers": 2000, "public.events": 5, "public.orders": 6000}
    d = manifest.details
    assert d["tables"] == prints(shop_db) and d["table_hash"] == HASH_RECIPE
    assert d["database"] == shop_db and d["server_version"].startswith("15.") and d["server_version_num"] >= 150000
    version = subprocess.run(["pg_dump", "--version"], capture_output=True, text=True).stdout
    assert d["pg_dump_version"] in version and d["encoding"] == "UTF8"
    cp = manifest.consistent_point
    assert cp["time"].endswith("Z") and manifest.started_at <= cp["time"] <= manifest.finished_at
    assert cp["snapshot"].startswith(f"{cp['xmin']}:{cp['xmax']}:") and "/" in cp["lsn"] and cp["in_recovery"] is False
    # one file, pg_dump's custom format, as the manifest says it is
    (entry,) = manifest.files
    path = dump_path(store, manifest)
    data = path.read_bytes()
    assert data[:5] == b"PGDMP" and entry.format == "pg-dump-custom"
    assert (entry.size, entry.sha256) == (len(data), hashlib.sha256(data).hexdigest())
    toc = subprocess.run(["pg_restore", "--list", str(path)], capture_output=True, text=True, check=True).stdout
    assert "TABLE DATA audit Change Log postgres" in toc and "VIEW public big_orders" in toc
    # a retry after success finds the backup and does nothing
    again = ArtifactWriter(store, writer.bid, source_type="postgresql")
    assert backup_postgres(conninfo(shop_db), PostgresSource("shop", "pg_test"), again) == manifest


def test_counts_and_hashes_are_the_dumps_own_while_others_write(shop_db, store, new_writer, tmp_path):
    execute(shop_db, "INSERT INTO orders (customer, amount, note) VALUES (1, 10, 'before the backup')")
    writer_thread = Writer(shop_db)
    writer_thread.start()
    marks = {}

    def during(nbytes: int) -> None:  # pg_dump is streaming: its snapshot was taken before this
        if "after" not in marks:
            execute(shop_db, "INSERT INTO orders (customer, amount, note) VALUES (1, 10, 'after the snapshot')")
            marks["after"] = writer_thread.commits

    try:
        while writer_thread.commits < 20:  # the writer is busy before the backup starts
            pass
        marks["start"] = writer_thread.commits
        manifest = backup_postgres(conninfo(shop_db), PostgresSource("shop", "pg_test"), new_writer(), on_chunk=during)
        marks["end"] = writer_thread.commits
    finally:
        writer_thread.stop()
    assert not writer_thread.errors and marks["end"] > marks["start"], marks  # commits landed during the backup
    live = prints(shop_db)
    assert live["public.customers"]["md5"] != manifest.details["tables"]["public.customers"]["md5"]
    assert live["public.orders"]["rows"] == manifest.counts["public.orders"] + 1  # the row added after the snapshot
    # the dump restores to exactly what the manifest recorded
    result = drill_postgres(conninfo("postgres"), store, manifest, workdir=tmp_path / "w", keep=True)
    scratch = result["details"]["scratch"].rsplit("/", 1)[1]
    try:
        assert result["ok"], result["problems"]
        notes = dict(query(scratch, "SELECT note, count(*) FROM orders WHERE note LIKE '%the%' GROUP BY 1"))
        assert notes == {"before the backup": 1}
    finally:
        execute("postgres", f"DROP DATABASE {scratch} WITH (FORCE)")


def big_table(database: str) -> None:
    """~3 MB of incompressible text: pg_dump streams it in several 1 MiB chunks."""
    execute(database, "CREATE TABLE blob (id int PRIMARY KEY, body text)",
            "INSERT INTO blob SELECT i, (SELECT string_agg(md5(random()::text || j), '') FROM generate_series(1, 6) j "
            "WHERE i > 0) FROM generate_series(1, 12000) i")


def child_pids(name: str) -> list[int]:
    """PIDs of this test process's own children called ``name`` (never anyone else's)."""
    pids = []
    for children in Path("/proc/self/task").glob("*/children"):
        for pid in children.read_text().split():
            if Path(f"/proc/{pid}/comm").read_text().strip() == name:
                pids.append(int(pid))
    return pids


def test_pg_dump_dying_midway_leaves_no_backup(new_db, store, new_writer):
    db = new_db()
    big_table(db)
    writer = new_writer()
    killed = []

    def kill_pg_dump(nbytes: int) -> None:  # after the first MiB: the dump is half written
        for pid in [] if killed else child_pids("pg_dump"):
            os.kill(pid, signal.SIGKILL)
            killed.append(pid)

    with pytest.raises(SourceError, match=r"pg_dump of postgres@127\.0\.0\.1:5432/bdr_t_\w+ failed \(exit code -9\); "
                                          r"no backup was written") as e:
        backup_postgres(conninfo(db), PostgresSource("big", "pg_test"), writer, on_chunk=kill_pg_dump)
    assert len(killed) == 1 and e.value.retryable
    assert not writer.directory.exists() and store.stat(writer.bid.manifest_key) is None


def test_unreachable_server_is_a_retryable_error_and_writes_nothing(store, new_writer):
    from backup_dr.devstack.servers import free_port

    port = free_port()
    writer = new_writer()
    with pytest.raises(SourceError, match=rf"cannot reach PostgreSQL at postgres@127\.0\.0\.1:{port}/nowhere "
                                          r"\(connection 'pg_test'\)") as e:
        backup_postgres(conninfo("nowhere", port=port), PostgresSource("shop", "pg_test"), writer)
    assert e.value.retryable and "the task will retry" in e.value.hint
    assert not writer.directory.exists()


def test_a_login_that_may_not_read_every_table_is_told_what_to_grant(shop_db, new_writer):
    role = unique("bdr_reader")
    execute("postgres", f"CREATE ROLE {role} LOGIN")
    try:
        execute(shop_db, f"GRANT SELECT ON ALL TABLES IN SCHEMA public TO {role}")  # not audit."Change Log"
        writer = new_writer()
        with pytest.raises(ConnectionConfigError, match=rf"login {role!r} may not read everything .* back up") as e:
            backup_postgres(conninfo(shop_db, user=role), PostgresSource("shop", "pg_test"), writer)
        assert not e.value.retryable and "pg_read_all_data" in e.value.hint and "permission denied" in e.value.detail
        assert not writer.directory.exists()
    finally:
        execute(shop_db, f"DROP OWNED BY {role}")
        execute("postgres", f"DROP ROLE {role}")
