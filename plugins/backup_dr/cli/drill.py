"""Scratch restores for ``verify --scratch``: prove a backup restores, without touching production.

The same drill the ``VerifyRestoreOperator`` runs, without Airflow, through the backup's
engine: MongoDB into a scratch instance (``ops.drill_scratch.mongodb_conn_id`` or
``--scratch-conn``), PostgreSQL into a fresh database on ``ops.drill_scratch.postgresql_conn_id``,
Redis into a fresh local ``redis-server``, files and git bundles into a temporary directory. The result is a
``drill`` record next to the backup, which ``list``, ``health`` and retention read.
"""

from __future__ import annotations

import logging
from typing import Any

from backup_dr.cli.common import UsageError, resolve_conn, scrub
from backup_dr.cli.targets import mongo_client
from backup_dr.core.artifacts.manifest import Manifest
from backup_dr.core.engines import Connector, SourceEngine, engine_for, sources_of
from backup_dr.core.errors import BackupDRError, RestoreRefused
from backup_dr.core.policy_model import Policy
from backup_dr.core.stores.base import Store
from backup_dr.core.verify import record_verification

log = logging.getLogger("backup_dr.cli")


def scratch_conn_id(policy: Policy, engine: SourceEngine, given: str | None) -> str | None:
    """The scratch connection a drill of ``engine``'s backups restores into (None: it needs
    none); refuses one that is a protected source, or (where the engine restores whole
    servers) one on the same server as a source of that type."""
    if engine.scratch_field is None:
        return None
    try:
        conn_id = engine.scratch_conn_id(policy, given)
    except RestoreRefused as e:
        raise UsageError(f"a {engine.label} scratch restore needs a scratch instance",
                         hint=f"pass --scratch-conn CONN_ID or set ops.drill_scratch.{engine.scratch_field} in the policy") from e
    scratch = resolve_conn(conn_id)
    for name in sources_of(policy, engine.type):
        src = policy.sources[name]
        if src.conn_id == conn_id:
            raise UsageError(f"--scratch-conn {conn_id!r} is the connection of source {src.name!r}: drills never restore into production")
        if not engine.scratch_separate_server:
            continue  # the drill creates a database of its own on that server and drops it
        try:
            prod = resolve_conn(src.conn_id)
        except BackupDRError:
            continue  # production not configured here: nothing to compare with
        if (prod.host or "127.0.0.1", prod.port) == (scratch.host or "127.0.0.1", scratch.port):
            raise UsageError(f"scratch connection {conn_id!r} points at the same server as source {src.name!r} "
                             f"({prod.host}:{prod.port}): drills never restore into production")
    return conn_id


#: how the engines reach a connection from the command line (env / connections file)
CONNECTOR = Connector(conn_info=lambda conn_id: resolve_conn(conn_id),
                      mongo_client=lambda conn_id, **options: mongo_client(resolve_conn(conn_id)))


def run_drill(manifest: Manifest, store: Store, policy: Policy, *, conn_id: str | None, workdir: str | None,
              record: bool) -> dict[str, Any]:
    """Restore ``manifest`` from ``store`` into a scratch target; record and return the result."""
    from backup_dr.core.drill import run_drill as core_drill

    log.info("scratch restore of %s from store %s", manifest.backup_id, store.name)
    scratch = engine_for(manifest).open_scratch(CONNECTOR, conn_id)
    try:
        body = core_drill(manifest, store, policy, scratch=scratch, workdir=workdir, scrub=scrub)
    except RestoreRefused as e:
        raise UsageError(e.message) from None
    body["via"] = "cli"
    if record:
        try:
            body["record_key"] = record_verification(store, manifest, body)
        except BackupDRError as e:
            log.warning("could not write the drill record to store %s: %s", store.name, scrub(e.message))
    return {"store": store.name, **body}
