"""Scratch restores for ``verify --scratch``: prove a backup restores, without touching production.

The same drill the ``VerifyRestoreOperator`` runs, without Airflow: MongoDB into a scratch
instance (``ops.drill_scratch.mongodb_conn_id`` or ``--scratch-conn``), Redis into a fresh
local ``redis-server``, files and git bundles into a temporary directory. The result is a
``drill`` record next to the backup, which ``list``, ``health`` and retention read.
"""

from __future__ import annotations

import logging
import tempfile
import time
from typing import Any

from backup_dr.cli.common import UsageError, resolve_conn, scrub
from backup_dr.cli.targets import mongo_client
from backup_dr.core.artifacts.manifest import Manifest
from backup_dr.core.errors import BackupDRError
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


def _restore(manifest: Manifest, store: Store, policy: Policy, conn_id: str | None, workdir: str) -> dict[str, Any]:
    kind = manifest.source_type
    t0 = time.monotonic()
    if kind == "mongodb":
        from backup_dr.core.mongo.backup import verify_restore

        conn = resolve_conn(conn_id)
        with mongo_client(conn) as client:
            res = verify_restore(client, store, manifest, workdir=workdir)
        return {"ok": res.ok, "restore_seconds": round(res.seconds, 3), "problems": res.problems, "details": res.as_dict()}
    if kind == "redis":
        from backup_dr.core.redis.verify import verify_rdb_restore

        rep = verify_rdb_restore(store, manifest, workdir=workdir, raise_on_mismatch=False)
        return {"ok": rep["ok"], "restore_seconds": rep["total_seconds"], "problems": rep["problems"],
                "details": {k: rep[k] for k in ("load_seconds", "expected", "restored", "sampled_keys", "warnings")}}
    if kind == "files":
        from backup_dr.core.files import restore_files

        res = restore_files(store, manifest, f"{workdir}/restored", workdir=f"{workdir}/fetch")
        return {"ok": True, "restore_seconds": round(time.monotonic() - t0, 3), "problems": [], "details": res.as_dict()}
    if kind == "git":
        from backup_dr.core.gitbundle import restore_git

        res = restore_git(store, manifest, f"{workdir}/restored", f"{workdir}/fetch")
        return {"ok": True, "restore_seconds": round(time.monotonic() - t0, 3), "problems": [], "details": res.as_dict()}
    raise UsageError(f"no scratch restore for source type {kind!r}")


def run_drill(manifest: Manifest, store: Store, policy: Policy, *, conn_id: str | None, workdir: str | None,
              record: bool) -> dict[str, Any]:
    """Restore ``manifest`` from ``store`` into a scratch target; record and return the result."""
    log.info("scratch restore of %s from store %s", manifest.backup_id, store.name)
    with tempfile.TemporaryDirectory(prefix="backup-dr-drill-", dir=workdir) as tmp:
        try:
            result = _restore(manifest, store, policy, conn_id, tmp)
        except UsageError:
            raise
        except BackupDRError as e:
            result = {"ok": False, "restore_seconds": None, "problems": [scrub(e.message)], "details": {"error": scrub(str(e))}}
    cls = policy.classes.get(manifest.backup_class)
    rto = cls.objective.rto.total_seconds() if cls else None
    body = {"kind": "drill", "ok": result["ok"], "restore_seconds": result["restore_seconds"], "rto_seconds": rto,
            "problems": result["problems"], "details": result["details"], "via": "cli"}
    if record:
        try:
            body["record_key"] = record_verification(store, manifest, body)
        except BackupDRError as e:
            log.warning("could not write the drill record to store %s: %s", store.name, scrub(e.message))
    return {"store": store.name, **body}
