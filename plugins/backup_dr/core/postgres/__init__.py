"""The PostgreSQL engine: stock ``pg_dump``/``pg_restore`` with snapshot-exact table checks.

* :func:`~.backup.backup_postgres` - ``pg_dump --format=custom`` of an exported snapshot,
  streamed into the artifact writer; per-table row counts and ordered-content hashes taken
  in that same snapshot go into the manifest.
* :func:`~.drill.drill_postgres` - verify-by-restore: ``pg_restore`` into a scratch
  database, compared table by table with the manifest, timed, dropped afterwards.
* :func:`~.restore.restore_postgres` - restore onto a target database: refusal of a
  non-empty target without ``replace``, safety dump, single-transaction ``pg_restore``,
  validation, rollback from the safety dump on any failure.

Plain Python (no Airflow import), so the operators and the break-glass CLI share it; the
source fields live in :class:`~.source.PostgresSource` until the policy schema has them.
"""

from backup_dr.core.postgres.source import PostgresSource

SOURCE_TYPE = "postgresql"

__all__ = ["PostgresSource", "SOURCE_TYPE"]
