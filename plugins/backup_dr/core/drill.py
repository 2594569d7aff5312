"""Restore drills: prove a backup restores by restoring it into a SCRATCH target, timed.

The time recorded (``restore_seconds``) is what a real recovery from that store would take:
from the first byte fetched from the store to the checked target — the download, the
restore and the checks, all of it (it used to start after the download, which made remote
copies look as fast as local ones). A drill fetches the copy verified against the manifest
first, so its record also says what that showed about the copy's bytes (``copy_ok``).

One implementation for the ``VerifyRestoreOperator`` (ops_restore_drill) and the CLI's
``verify --scratch``: MongoDB into a scratch instance (never production: the caller hands
in the scratch client), Redis into a fresh local ``redis-server``, files and git bundles
into a temporary directory. The result becomes a ``drill`` record next to the backup
(core.verify.record_verification), which health, the UI and retention read.
"""

from __future__ import annotations

import tempfile
import time
from contextlib import AbstractContextManager
from typing import Any, Callable

from backup_dr.core.artifacts.manifest import Manifest
from backup_dr.core.errors import BackupDRError, IntegrityError, NotFoundError, RestoreRefused, VerificationError
from backup_dr.core.policy_model import Policy
from backup_dr.core.stores.base import Store
from backup_dr.core.verify import DRILL

#: a callable giving a context-managed MongoClient of the scratch instance
ScratchMongo = Callable[[], AbstractContextManager]


def scratch_restore(manifest: Manifest, store: Store, workdir: str, scratch_mongo: ScratchMongo | None = None) -> dict[str, Any]:
    """Restore into a scratch target and check it; returns ok, restore_seconds (first byte fetched
    to checked target), problems, details."""
    kind = manifest.source_type
    if kind == "mongodb" and scratch_mongo is None:
        raise RestoreRefused("a MongoDB drill needs a scratch instance (ops.drill_scratch.mongodb_conn_id)")
    t0 = time.monotonic()
    if kind == "mongodb":
        from backup_dr.core.mongo.backup import verify_restore

        with scratch_mongo() as client:  # a client connects lazily: the first I/O is the fetch
            res = verify_restore(client, store, manifest, workdir=workdir)
        total = time.monotonic() - t0
        return {"ok": res.ok, "restore_seconds": round(total, 3), "fetch_seconds": round(max(total - res.seconds, 0.0), 3),
                "problems": res.problems, "details": res.as_dict()}
    if kind == "redis":
        from backup_dr.core.redis.verify import verify_rdb_restore

        rep = verify_rdb_restore(store, manifest, workdir=workdir, raise_on_mismatch=False)
        return {"ok": rep["ok"], "restore_seconds": round(time.monotonic() - t0, 3), "problems": rep["problems"],
                "details": {k: rep[k] for k in ("load_seconds", "expected", "restored", "sampled_keys", "warnings")}}
    if kind == "files":
        from backup_dr.core.files import restore_files

        res = restore_files(store, manifest, f"{workdir}/restored", workdir=f"{workdir}/fetch")
        return {"ok": True, "restore_seconds": round(time.monotonic() - t0, 3), "problems": [], "details": res.as_dict()}
    if kind == "git":
        from backup_dr.core.gitbundle import restore_git

        res = restore_git(store, manifest, f"{workdir}/restored", f"{workdir}/fetch")
        return {"ok": True, "restore_seconds": round(time.monotonic() - t0, 3), "problems": [], "details": res.as_dict()}
    raise RestoreRefused(f"no scratch restore for source type {kind!r}")


def run_drill(manifest: Manifest, store: Store, policy: Policy, *, scratch_mongo: ScratchMongo | None = None,
              workdir: str | None = None, scrub: Callable[[str], str] = lambda s: s) -> dict[str, Any]:
    """Restore into scratch and build the drill record (``kind: drill``); a failed restore is a
    result (``ok: False`` with the reason), not an exception, so it is always recorded."""
    with tempfile.TemporaryDirectory(prefix="backup-dr-drill-", dir=workdir) as tmp:
        copy_ok: bool | None = True  # the fetch verified every byte before anything was restored
        try:
            result = scratch_restore(manifest, store, tmp, scratch_mongo)
        except RestoreRefused:
            raise
        except BackupDRError as e:
            if isinstance(e, (IntegrityError, NotFoundError)):
                copy_ok = False  # the copy in this store is bad or incomplete
            elif not isinstance(e, VerificationError):
                copy_ok = None  # failed before or during the fetch for another reason: nothing known
            result = {"ok": False, "restore_seconds": None, "problems": [scrub(e.message)], "details": {"error": scrub(str(e))}}
    cls = policy.classes.get(manifest.backup_class)
    return {"kind": DRILL, "ok": result["ok"], "restore_seconds": result["restore_seconds"],
            "fetch_seconds": result.get("fetch_seconds"), "copy_ok": copy_ok,
            "rto_seconds": cls.objective.rto.total_seconds() if cls else None,
            "problems": result["problems"], "details": result["details"]}
