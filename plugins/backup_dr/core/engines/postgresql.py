"""The PostgreSQL engine: :mod:`backup_dr.core.postgres` behind the engine protocol.

Backups are stock ``pg_dump --format=custom`` dumps (kind ``full``) with per-table row
counts and content hashes; a drill ``pg_restore``\\ s into a fresh database on the scratch
server (``ops.drill_scratch.postgresql_conn_id``; it may be the source's own server, since
the drill creates its own ``bdr_drill_*`` database and drops it) and compares every table.
"""

from __future__ import annotations

from typing import Any, Callable

from backup_dr.core.engines.base import BackupRequest, Connector, SourceEngine


class PostgresEngine(SourceEngine):
    type = "postgresql"
    label = "PostgreSQL"
    restore_commands = ("postgres",)
    scratch_field = "postgresql_conn_id"

    def artifact_kind(self, source, *, metadata_only: bool = False) -> str:
        return "full"


    def backup(self, source, writer, connector: Connector, request: BackupRequest):
        from backup_dr.core.postgres.backup import backup_postgres

        return backup_postgres(connector.conn_info(request.conn_id or source.conn_id), source, writer)

    def open_scratch(self, connector: Connector, conn_id: str | None) -> Callable[[], Any] | None:
        return (lambda: connector.conn_info(conn_id)) if conn_id else None

    def drill(self, manifest, store, workdir, scratch):
        from backup_dr.core.errors import RestoreRefused
        from backup_dr.core.postgres.drill import drill_postgres

        if scratch is None:
            raise RestoreRefused("a PostgreSQL drill needs a scratch server (ops.drill_scratch.postgresql_conn_id)")
        return drill_postgres(scratch(), store, manifest, workdir=workdir)

    def restore(self, conn, store, manifest, *, workdir, safety_dir, target_db=None, replace=False):
        from backup_dr.core.postgres.restore import restore_postgres

        return restore_postgres(conn, store, manifest, workdir=workdir, safety_dir=safety_dir, target_db=target_db,
                                replace=replace)
