"""The PostgreSQL backup job: stock ``pg_dump --format=custom`` streamed into the artifact writer.

    writer = ArtifactWriter(local_store, BackupId.new("configuration", "airflow_db", "full", run_after),
                            source_type="postgresql", retention=cls.retention)
    manifest = backup_postgres(conn, source, writer)

Consistency: a REPEATABLE READ READ ONLY transaction exports its snapshot
(``pg_export_snapshot()``) and stays open while ``pg_dump --snapshot=<id>`` dumps exactly
that snapshot; the same transaction counts and hashes every table (:mod:`.tables`) while
the dump streams, so the manifest's counts and hashes describe the dump exactly even with
writers busy during the backup. The consistent point is that snapshot: its txid range, the
WAL position when it was taken, and its wall time (the capture time).

The dump goes from pg_dump's stdout through the writer's hashing (and, for an encrypted
class, encrypting) stream into the store: no temporary copy, constant memory (1 MiB
chunks). A retry after success returns the existing manifest; any failure removes what the
attempt wrote, so a partial dump never looks like a backup.
"""

from __future__ import annotations

import logging
import subprocess
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, Callable

from backup_dr.core.artifacts.manifest import Manifest, iso
from backup_dr.core.artifacts.writer import ArtifactWriter
from backup_dr.core.connections import ConnInfo
from backup_dr.core.errors import SourceError
from backup_dr.core.postgres.conn import PgConn, connect_error, privilege_error, translate
from backup_dr.core.postgres.source import PostgresSource
from backup_dr.core.postgres.tables import HASH_RECIPE, Scope, Table, fingerprint_tables, list_tables
from backup_dr.core.postgres.tools import ToolRun, find_tool, scope_args, tool_version
from backup_dr.core.progress import Progress

log = logging.getLogger(__name__)

DUMP_FORMAT = "pg-dump-custom"
CHUNK = 1024 * 1024
LOCK_WAIT = "60s"

_SNAPSHOT = """
SELECT pg_export_snapshot(), txid_current_snapshot()::text,
       txid_snapshot_xmin(txid_current_snapshot())::text, txid_snapshot_xmax(txid_current_snapshot())::text,
       (CASE WHEN pg_is_in_recovery() THEN pg_last_wal_replay_lsn() ELSE pg_current_wal_insert_lsn() END)::text,
       pg_is_in_recovery(), clock_timestamp(), current_setting('server_version'),
       current_setting('server_version_num')::int, pg_encoding_to_char(d.encoding), d.datcollate, d.datctype,
       pg_database_size(d.oid)
FROM pg_database d WHERE d.datname = current_database()
"""


def dump_file_name(database: str) -> str:
    return f"{database}.pgdump"


@dataclass(frozen=True)
class Snapshot:
    id: str
    txid_snapshot: str
    xmin: str
    xmax: str
    lsn: str | None
    in_recovery: bool
    taken_at: Any  # aware datetime
    server_version: str
    server_version_num: int
    encoding: str
    collate: str
    ctype: str
    database_bytes: int

    def consistent_point(self) -> dict[str, Any]:
        return {"time": iso(self.taken_at), "snapshot": self.txid_snapshot, "xmin": self.xmin, "xmax": self.xmax,
                "lsn": self.lsn, "in_recovery": self.in_recovery}


def backup_postgres(conn: ConnInfo, source: PostgresSource, writer: ArtifactWriter, *, bin_dir: str | None = None,
                    on_chunk: Callable[[int], None] | None = None) -> Manifest:
    """Back up one PostgreSQL source into ``writer``'s (local staging) store; return the manifest.

    :param conn: the source's connection (``source.conn_id``)
    :param bin_dir: directory of ``pg_dump`` (default ``$BACKUP_DR_PG_BIN``, then ``PATH``)
    :param on_chunk: called with the dump bytes written so far (progress hooks)
    """
    done = writer.existing()
    if done is not None:
        log.info("backup %s already complete; nothing to do", writer.bid)
        return done
    pg = PgConn.from_conninfo(conn, source.database)
    writer.begin()
    try:
        return dump_into(pg, Scope(source.schemas, source.exclude_tables), writer, bin_dir=bin_dir, on_chunk=on_chunk)
    except BaseException:
        writer.abort()
        raise


def dump_into(pg: PgConn, scope: Scope, writer: ArtifactWriter, *, bin_dir: str | None = None,
              on_chunk: Callable[[int], None] | None = None, details: dict[str, Any] | None = None) -> Manifest:
    """Dump ``pg``'s database into an already begun ``writer`` and commit it (also the safety
    dump of a restore target). The caller aborts the writer on failure."""
    pg_dump = find_tool("pg_dump", bin_dir)
    dump_version = tool_version(pg_dump)
    started = time.monotonic()
    db = pg.connect(what=f"backing up {pg.describe()}")
    try:
        with translate(pg, f"exporting a snapshot of {pg.database!r}"):
            with db.cursor() as cur:
                cur.execute("BEGIN ISOLATION LEVEL REPEATABLE READ, READ ONLY")
                cur.execute(_SNAPSHOT)
                snap = Snapshot(*cur.fetchone())
            tables = list_tables(db, scope)
            _lock(db, tables)
        log.info("snapshot %s of %s (%s, %s tables, %.1f MB on disk) exported at %s", snap.id, pg.describe(),
                 snap.txid_snapshot, len(tables), snap.database_bytes / 1e6, iso(snap.taken_at))
        name = dump_file_name(pg.database)
        with ThreadPoolExecutor(1, thread_name_prefix="pg-hash") as pool:
            hashing = pool.submit(_fingerprints, pg, db, tables)
            try:
                with writer.open_file(name, codec="none", format=DUMP_FORMAT) as out:
                    size = _stream_dump(pg, pg_dump, snap.id, scope, out, on_chunk)
            except BaseException:
                db.cancel()  # stop the hashing query; the executor waits for its thread
                raise
            prints = hashing.result()
        with translate(pg, "closing the snapshot transaction"), db.cursor() as cur:
            cur.execute("COMMIT")
    finally:
        db.close()
    seconds = time.monotonic() - started
    log.info("pg_dump of %s: %.1f MB in %.1fs (%.1f MB/s), %d tables, %d rows", pg.describe(), size / 1e6, seconds,
             size / 1e6 / max(seconds, 1e-9), len(prints), sum(p["rows"] for p in prints.values()))
    info = {
        "database": pg.database, "server": pg.describe(), "server_version": snap.server_version,
        "server_version_num": snap.server_version_num, "pg_dump_version": dump_version, "encoding": snap.encoding,
        "collate": snap.collate, "ctype": snap.ctype, "scope": scope.as_dict(), "table_hash": HASH_RECIPE,
        "tables": prints, "dump_file": name, "bytes": size, "database_bytes": snap.database_bytes,
        "seconds": round(seconds, 3), "mb_per_s": round(size / 1e6 / max(seconds, 1e-9), 1), **(details or {}),
    }
    counts = {table: p["rows"] for table, p in prints.items()}
    return writer.commit(consistent_point=snap.consistent_point(), counts=counts, details=info)


def _lock(db, tables: list[Table]) -> None:
    """ACCESS SHARE on every table right away (as pg_dump takes): a DROP or ALTER waits for the
    backup instead of breaking the hashing midway."""
    if not tables:
        return
    from psycopg2 import sql

    with db.cursor() as cur:
        cur.execute("SET LOCAL lock_timeout = %s", (LOCK_WAIT,))
        cur.execute(sql.SQL("LOCK TABLE {} IN ACCESS SHARE MODE").format(
            sql.SQL(", ").join(sql.Identifier(t.schema, t.name) for t in tables)))
        cur.execute("SET LOCAL lock_timeout = 0")


def _fingerprints(pg: PgConn, db, tables: list[Table]) -> dict[str, dict[str, Any]]:
    with translate(pg, f"hashing the tables of {pg.database!r} in the dump's snapshot"):
        return fingerprint_tables(db, tables, label=f"hash tables of {pg.database}")


def _stream_dump(pg: PgConn, pg_dump: str, snapshot: str, scope: Scope, out, on_chunk) -> int:
    argv = [pg_dump, "--format=custom", f"--snapshot={snapshot}", "--no-password", f"--lock-wait-timeout={LOCK_WAIT}",
            *scope_args(scope.schemas, scope.exclude_tables)]
    progress = Progress(f"pg_dump {pg.database}", unit="chunks")
    size = 0
    with pg.tool_env() as env, ToolRun(argv, env, scrub=pg.scrub, stdout=subprocess.PIPE) as run:
        for chunk in iter(lambda: run.proc.stdout.read(CHUNK), b""):
            out.write(chunk)
            size += len(chunk)
            progress.add(1, len(chunk))
            if on_chunk is not None:
                on_chunk(size)
        code = run.wait()
    if code != 0:
        why = run.errors()
        if "connection to server" in why:
            raise connect_error(pg, Exception(why), f"pg_dump of {pg.database!r}")
        if "permission denied" in why:
            raise privilege_error(pg, why, f"pg_dump of {pg.database!r}")
        raise SourceError(f"pg_dump of {pg.describe()} failed (exit code {code}); no backup was written",
                          detail=why, hint=_dump_hint(why))
    if size == 0:
        raise SourceError(f"pg_dump of {pg.describe()} wrote nothing; no backup was written", detail=run.errors())
    progress.done()
    return size


def _dump_hint(why: str) -> str:
    if "server version" in why and "mismatch" in why:
        return ("pg_dump must be of the server's major version or newer: install that postgresql-client and point "
                "$BACKUP_DR_PG_BIN at its bin directory")
    if "lock" in why:
        return f"another session held a lock on a table for longer than {LOCK_WAIT}; the task will retry"
    return "see pg_dump's message above; the task will retry"
