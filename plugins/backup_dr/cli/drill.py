"""Scratch restores for ``verify --scratch``: prove a backup restores, without touching production.

The same drill the ``VerifyRestoreOperator`` runs, without Airflow: MongoDB into a scratch
instance (``ops.drill_scratch.mongodb_conn_id`` or ``--scratch-conn``), Redis into a fresh
local ``redis-server``, files and git bundles into a temporary directory. The result is a
``drill`` record next to the backup, which ``list``, ``health`` and retention read.
"""

from __future__ import annotations

import logging
from typing import Any

from backup_dr.cli.common import UsageError, resolve_conn, scrub
from backup_dr.cli.targets import mongo_client
from backup_dr.core.artifacts.manifest import Manifest
from backup_dr.core.errors import BackupDRError, RestoreRefused
from backup_dr.core.policy_model import Policy
from backup_dr.core.stores.base import Store
from backup_dr.core.verify import record_verification

log = logging.getLogger("backup_dr.cli")


def scratch_conn_id(policy: Policy, given: str | None) -> str:
    """The scratch MongoDB connection; refuses anything that is a protected source."""
    conn_id = given or policy.ops.scratch_mongodb_conn_id
    if not conn_id:
        raise UsageError("a MongoDB scratch restore needs a scratch instance",
                         hint="pass --scratch-conn CONN_ID or set ops.drill_scratch.mongodb_conn_id in the policy")
    scratch = resolve_conn(conn_id)
    for src in policy.sources.values():
        if src.type != "mongodb":
            continue
        if src.conn_id == conn_id:
            raise UsageError(f"--scratch-conn {conn_id!r} is the connection of source {src.name!r}: drills never restore into production")
        try:
            prod = resolve_conn(src.conn_id)
        except BackupDRError:
            continue  # production not configured here: nothing to compare with
        if (prod.host or "127.0.0.1", prod.port) == (scratch.host or "127.0.0.1", scratch.port):
            raise UsageError(f"scratch connection {conn_id!r} points at the same server as source {src.name!r} "
                             f"({prod.host}:{prod.port}): drills never restore into production")
    return conn_id


def run_drill(manifest: Manifest, store: Store, policy: Policy, *, conn_id: str | None, workdir: str | None,
              record: bool) -> dict[str, Any]:
    """Restore ``manifest`` from ``store`` into a scratch target; record and return the result."""
    from backup_dr.core.drill import run_drill as core_drill

    log.info("scratch restore of %s from store %s", manifest.backup_id, store.name)
    scratch = (lambda: mongo_client(resolve_conn(conn_id))) if manifest.source_type == "mongodb" else None
    try:
        body = core_drill(manifest, store, policy, scratch_mongo=scratch, workdir=workdir, scrub=scrub)
    except RestoreRefused as e:
        raise UsageError(e.message) from None
    body["via"] = "cli"
    if record:
        try:
            body["record_key"] = record_verification(store, manifest, body)
        except BackupDRError as e:
            log.warning("could not write the drill record to store %s: %s", store.name, scrub(e.message))
    return {"store": store.name, **body}
