"""Restore a PostgreSQL backup onto a target database: refuse, safety dump, apply, validate, roll back.

1. Verify the dump file against its manifest (size + sha256, decrypted if need be) before
   the target is touched.
2. Refuse a target that already has tables in the backup's scope unless ``replace=True``
   (:class:`TargetNotEmpty`, naming them); refuse a target database that does not exist.
3. Safety dump of the target with the backup engine itself (kind ``safety``, manifest with
   its table hashes, written last) into a local store that is KEPT.
4. Make the target equal the backup: drop the target's tables the backup lacks (one
   transaction), then ``pg_restore --clean --if-exists --single-transaction`` (one more:
   a failure inside it changes nothing).
5. Validate: the target's tables, row counts and content hashes equal the manifest's.
6. On ANY failure after step 3 roll back the same way from the safety dump and check the
   target against the safety dump's hashes, then raise :class:`RestoreError` saying so; if
   the rollback fails too, the error names the commands that finish it by hand.

Stop the target's clients (Airflow's scheduler, API server, workers) first: a write
between the safety dump and the restore is not in the safety dump, and a client holding a
lock makes pg_restore give up after ``LOCK_TIMEOUT`` rather than wait forever.
"""

from __future__ import annotations

import logging
import shlex
import time
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

from backup_dr.core.artifacts.layout import BackupId
from backup_dr.core.artifacts.manifest import Manifest
from backup_dr.core.artifacts.reader import fetch_verified
from backup_dr.core.artifacts.writer import ArtifactWriter
from backup_dr.core.connections import ConnInfo
from backup_dr.core.errors import BackupDRError, ConnectionConfigError, RestoreError, RestoreRefused, TargetNotEmpty, VerificationError
from backup_dr.core.postgres.apply import apply_dump, drop_tables
from backup_dr.core.postgres.backup import dump_into
from backup_dr.core.postgres.conn import PgConn
from backup_dr.core.postgres.tables import HASH_RECIPE, Scope, compare_tables, current_tables, database_fingerprints
from backup_dr.core.stores.base import Store
from backup_dr.core.stores.local import LocalStore

log = logging.getLogger(__name__)

# Indirection so a test can make the rollback's pg_restore fail for real (fault injection).
_apply = apply_dump


@dataclass
class PgRestoreResult:
    backup_id: str
    target: str
    tables: int
    rows: int
    seconds: float
    safety_backup: str
    safety_dir: str
    dropped_tables: list[str]

    def as_dict(self) -> dict[str, Any]:
        return {"backup_id": self.backup_id, "target": self.target, "tables": self.tables, "rows": self.rows,
                "seconds": round(self.seconds, 3), "safety_backup": self.safety_backup, "safety_dir": self.safety_dir,
                "dropped_tables": self.dropped_tables, "validation": {"ok": True, "tables": self.tables}}


def check_manifest(manifest: Manifest) -> None:
    """A PostgreSQL manifest this release can compare against (else VerificationError)."""
    if manifest.source_type != "postgresql":
        raise RestoreRefused(f"backup {manifest.backup_id} is a {manifest.source_type} backup, not PostgreSQL")
    recipe = manifest.details.get("table_hash")
    if recipe != HASH_RECIPE:
        raise VerificationError(f"backup {manifest.backup_id} records table hashes of recipe {recipe!r}; "
                                f"this release computes {HASH_RECIPE!r}",
                                hint="verify it with the backup_dr release that wrote it (see the manifest's 'tool' field)")


def restore_postgres(conn: ConnInfo, store: Store, manifest: Manifest, *, workdir: str | Path, safety_dir: str | Path,
                     target_db: str | None = None, replace: bool = False, keep_owners: bool = True,
                     bin_dir: str | None = None) -> PgRestoreResult:
    """Restore ``manifest``'s dump onto ``target_db`` (default: the connection's database, else
    the backed-up database's name) on ``conn``'s server. See the module doc."""
    check_manifest(manifest)
    started = time.monotonic()
    entry = manifest.file(manifest.details["dump_file"])
    path = fetch_verified(store, manifest, entry.name, workdir)  # IntegrityError here: nothing touched
    pg = PgConn.from_conninfo(conn, target_db or conn.schema or manifest.details["database"])
    scope = Scope.from_dict(manifest.details.get("scope"))
    try:
        present = current_tables(pg, scope)
    except ConnectionConfigError as e:
        if f'database "{pg.database}" does not exist' not in (e.detail or ""):
            raise
        raise RestoreRefused(f"target database {pg.describe()} does not exist; nothing was restored", detail=e.detail,
                             hint=f"create it first (createdb {shlex.quote(pg.database)}) or name another target") from e
    if present and not replace:
        names = [t.qualified for t in present]
        raise TargetNotEmpty(
            f"target {pg.describe()} already has {len(names)} table(s) this restore would replace: "
            + ", ".join(names[:10]) + (", ..." if len(names) > 10 else ""),
            hint="restore with replace=True (a safety dump of the target is taken first), or into an empty database")
    safety_store = LocalStore(safety_dir, name="safety")
    safety, safety_path = take_safety_dump(pg, scope, safety_store, manifest, bin_dir=bin_dir)
    wanted = manifest.details["tables"]
    try:
        dropped = _make_equal(pg, path, wanted, scope, keep_owners=keep_owners, bin_dir=bin_dir, label="restore")
    except BaseException as e:
        cause = e
        try:
            _make_equal(pg, safety_path, safety.details["tables"], scope, keep_owners=True, bin_dir=bin_dir,
                        label="rollback")
        except BaseException as rb:  # noqa: BLE001 - reported below, the restore's cause chained
            raise RestoreError(
                f"restore of {manifest.backup_id} into {pg.describe()} failed AND the rollback failed: "
                "the target may be half-written",
                detail=f"restore: {_short(cause)}; rollback: {_short(rb)}",
                hint=manual_rollback_hint(pg, safety_path, safety, scope)) from e
        raise RestoreError(
            f"restore of {manifest.backup_id} into {pg.describe()} failed; the target was rolled back to its state "
            "before the restore (checked table by table against the safety dump)",
            detail=_short(cause),
            hint=f"nothing changed on the target; safety dump {safety.backup_id} is kept in {safety_store.describe()}. "
                 "Fix the cause and retry") from e
    seconds = time.monotonic() - started
    result = PgRestoreResult(manifest.backup_id, pg.describe(), len(wanted), sum(t["rows"] for t in wanted.values()),
                             seconds, safety.backup_id, safety_store.describe(), dropped)
    log.info("restored %s into %s: %d tables, %d rows, validated, in %.1fs (safety dump %s)", manifest.backup_id,
             pg.describe(), result.tables, result.rows, seconds, safety.backup_id)
    return result


def _make_equal(pg: PgConn, path: Path, wanted: dict[str, dict], scope: Scope, *, keep_owners: bool,
                bin_dir: str | None, label: str) -> list[str]:
    """Make the target's scope equal a dump: drop the tables it lacks, apply it, compare hashes."""
    extra = [t for t in current_tables(pg, scope) if t.qualified not in wanted]
    drop_tables(pg, extra)
    _apply(pg, path, clean=True, keep_owners=keep_owners, bin_dir=bin_dir, label=label)
    problems = compare_tables(wanted, database_fingerprints(pg, scope, label=f"{label}: compare tables"))
    if problems:
        raise VerificationError(f"{label}: {pg.describe()} does not match the dump: " + "; ".join(problems))
    return [t.qualified for t in extra]


def take_safety_dump(pg: PgConn, scope: Scope, safety_store: LocalStore, manifest: Manifest, *,
                     bin_dir: str | None = None) -> tuple[Manifest, Path]:
    """Dump the target as a ``safety`` backup (same engine, same table hashes); returns its
    manifest and the dump's path."""
    stamp = datetime.now(timezone.utc)
    bid = BackupId.new(manifest.backup_class, manifest.source, "safety", stamp)
    while safety_store.stat(bid.manifest_key) is not None:  # two restores within one second
        stamp += timedelta(seconds=1)
        bid = BackupId.new(manifest.backup_class, manifest.source, "safety", stamp)
    writer = ArtifactWriter(safety_store, bid, source_type="postgresql")
    writer.begin()
    try:
        safety = dump_into(pg, scope, writer, bin_dir=bin_dir,
                           details={"purpose": f"safety dump before restoring {manifest.backup_id}"})
    except BaseException:
        writer.abort()
        raise
    log.info("safety dump of %s: %s in %s", pg.describe(), bid, safety_store.describe())
    return safety, safety_store.path(bid.key(safety.details["dump_file"]))


def manual_rollback_hint(pg: PgConn, safety_path: Path, safety: Manifest, scope: Scope) -> str:
    """The commands that put the target back from the safety dump by hand (no password on them:
    libpq reads it from ~/.pgpass or $PGPASSFILE)."""
    conn_args = [*(["--host", pg.host] if pg.host else []), *(["--port", str(pg.port)] if pg.port else []),
                 *(["--username", pg.user] if pg.user else [])]
    restore = shlex.join(["pg_restore", *conn_args, "--clean", "--if-exists", "--single-transaction", "--exit-on-error",
                          f"--dbname={pg.database}", str(safety_path)])
    steps = []
    try:
        extra = [t for t in current_tables(pg, scope) if t.qualified not in safety.details["tables"]]
    except BackupDRError:
        extra = []
    if extra:
        drops = ", ".join('"{}"."{}"'.format(t.schema.replace('"', '""'), t.name.replace('"', '""')) for t in extra)
        steps.append(shlex.join(["psql", *conn_args, f"--dbname={pg.database}", "-v", "ON_ERROR_STOP=1", "-c",
                                 f"DROP TABLE IF EXISTS {drops} CASCADE"]))
    steps.append(restore)
    return (f"put the target back from safety dump {safety.backup_id}: run " + " then ".join(f"`{s}`" for s in steps)
            + (" (the first drops the tables the safety dump does not have)" if extra else "")
            + "; the password comes from ~/.pgpass or $PGPASSFILE, never the command line")


def _short(e: BaseException) -> str:
    text = e.message if isinstance(e, BackupDRError) else str(e)
    if isinstance(e, BackupDRError) and e.detail:
        text += f" ({e.detail})"
    return f"{type(e).__name__}: {text}"
