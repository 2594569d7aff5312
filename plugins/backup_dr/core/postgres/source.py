"""What the policy says about one PostgreSQL source (``type: postgresql``).

The policy schema (:mod:`backup_dr.core.policy_inventory`) validates these fields into this
dataclass; :mod:`backup_dr.core.engines.postgresql` is the engine over it::

    sources:
      airflow_db:
        type: postgresql
        conn_id: airflow_metadata_db     # an Airflow "postgres" connection (host, port, login, password, extras)
        database: airflow                # optional: the connection's schema field when omitted
        schemas: [public]                # optional: only these schemas (default: every non-system schema)
        exclude_tables: [public.log]     # optional: exact "schema.table" names left out of the dump

Kept minimal on purpose: ``pg_dump``'s other switches change what a restore brings back,
so they are decided here in code (custom format, owners and privileges kept), not per policy.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from backup_dr.core.errors import PolicyError
from backup_dr.core.policy_io import _short

_TABLE = re.compile(r"^[^.\s\"]+\.[^.\s\"]+$")


@dataclass(frozen=True)
class PostgresSource:
    """One PostgreSQL database to protect.

    :param name: the source's name in the policy (part of backup ids)
    :param conn_id: connection id (Airflow Connection or ``AIRFLOW_CONN_<ID>`` for the CLI)
    :param database: database to dump; None = the connection's ``schema`` field
    :param schemas: dump only these schemas; empty = every non-system schema
    :param exclude_tables: exact ``schema.table`` names left out (neither dumped nor compared)
    """

    name: str
    conn_id: str
    database: str | None = None
    schemas: tuple[str, ...] = ()
    exclude_tables: tuple[str, ...] = ()
    queue: str | None = None  # Celery queue of its dumps (see backup_dr.core.routing)
    type: str = "postgresql"

    def __post_init__(self) -> None:
        issues = []
        for i, table in enumerate(self.exclude_tables):
            if not _TABLE.match(table):
                issues.append((f"sources.{self.name}.exclude_tables[{i}]",
                               f"{_short(table)} is not an exact 'schema.table' name (e.g. public.log); patterns are not accepted"))
        for i, schema in enumerate(self.schemas):
            if not schema or "." in schema or '"' in schema:
                issues.append((f"sources.{self.name}.schemas[{i}]", f"{_short(schema)} is not a schema name"))
        if issues:
            raise PolicyError(issues)
