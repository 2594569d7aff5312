"""Verify-by-restore for PostgreSQL: ``pg_restore`` into a SCRATCH database, compared table by table.

The scratch database is created fresh on the scratch server (``bdr_drill_<random>``; an
existing database is never touched), the dump restored with ``--no-owner --no-privileges``
(a scratch server need not have the source's roles), every table's row count and ordered
content hash compared with the manifest (the very numbers taken in the dump's snapshot),
and the database dropped afterwards. The time covers everything a real recovery would do:
download and check of the dump, restore, comparison.

The result has the shape of :func:`backup_dr.core.drill.scratch_restore`'s
(``ok, restore_seconds, problems, details``). A dump that does not restore or does not
match is a finding (``ok: False`` with the reason); only an unreachable scratch server
raises.
"""

from __future__ import annotations

import logging
import time
import uuid
from pathlib import Path
from typing import Any

from backup_dr.core.artifacts.manifest import Manifest
from backup_dr.core.artifacts.reader import fetch_verified
from backup_dr.core.connections import ConnInfo
from backup_dr.core.errors import ConnectionConfigError, RestoreError
from backup_dr.core.postgres.apply import apply_dump
from backup_dr.core.postgres.conn import PgConn, translate
from backup_dr.core.postgres.restore import check_manifest
from backup_dr.core.postgres.tables import Scope, compare_tables, database_fingerprints
from backup_dr.core.stores.base import Store

log = logging.getLogger(__name__)

MAINTENANCE_DB = "postgres"


def drill_postgres(scratch: ConnInfo, store: Store, manifest: Manifest, *, workdir: str | Path,
                   bin_dir: str | None = None, keep: bool = False) -> dict[str, Any]:
    """Restore ``manifest`` into a new database on the ``scratch`` server and compare it.

    :param scratch: the scratch server's connection (its schema field: the maintenance
        database to connect to for CREATE/DROP DATABASE, default ``postgres``)
    :param keep: leave the scratch database in place (to inspect it)
    """
    check_manifest(manifest)
    started = time.monotonic()
    admin = PgConn.from_conninfo(scratch, scratch.schema or MAINTENANCE_DB)
    name = f"bdr_drill_{uuid.uuid4().hex[:10]}"
    target = admin.on_database(name)
    problems: list[str] = []
    entry = manifest.file(manifest.details["dump_file"])
    path = fetch_verified(store, manifest, entry.name, workdir)
    fetched = time.monotonic() - started
    _create(admin, name, manifest.details.get("encoding") or "UTF8")
    try:
        try:
            apply_dump(target, path, clean=False, keep_owners=False, bin_dir=bin_dir, label="drill")
        except RestoreError as e:
            problems.append(f"pg_restore failed: {e.message} ({e.detail})")
        restored = time.monotonic() - started
        if not problems:
            actual = database_fingerprints(target, Scope.from_dict(manifest.details.get("scope")),
                                           label=f"drill {manifest.backup_id}: compare tables")
            problems += compare_tables(manifest.details["tables"], actual)
    finally:
        if not keep:
            _drop(admin, name)
    seconds = time.monotonic() - started
    tables = manifest.details["tables"]
    details = {"backup_id": manifest.backup_id, "scratch": target.describe(), "kept": keep, "tables": len(tables),
               "rows": sum(t["rows"] for t in tables.values()), "fetch_seconds": round(fetched, 3),
               "restore_seconds": round(restored - fetched, 3), "compare_seconds": round(seconds - restored, 3)}
    if problems:
        log.error("drill of %s FAILED in %.1fs: %s", manifest.backup_id, seconds, "; ".join(problems))
    else:
        log.info("drill of %s: %d tables, %d rows equal to the manifest, in %.1fs (scratch %s)", manifest.backup_id,
                 details["tables"], details["rows"], seconds, target.describe())
    return {"ok": not problems, "restore_seconds": round(seconds, 3), "problems": problems, "details": details}


def _create(admin: PgConn, name: str, encoding: str) -> None:
    from psycopg2 import sql

    db = admin.connect(what=f"connecting to the scratch server {admin.describe()}")
    try:
        with translate(admin, f"creating scratch database {name}", cls=ConnectionConfigError,
                       hint=f"the scratch login needs CREATEDB (ALTER ROLE {admin.user or '<login>'} CREATEDB)"), \
                db.cursor() as cur:
            cur.execute(sql.SQL("CREATE DATABASE {} TEMPLATE template0 ENCODING {}").format(
                sql.Identifier(name), sql.Literal(encoding)))
    finally:
        db.close()


def _drop(admin: PgConn, name: str) -> None:
    from psycopg2 import sql

    db = admin.connect(what=f"dropping scratch database {name}")
    try:
        with translate(admin, f"dropping scratch database {name}"), db.cursor() as cur:
            cur.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))
    finally:
        db.close()
