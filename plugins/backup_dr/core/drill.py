"""Restore drills: prove a backup restores by restoring it into a SCRATCH target, timed.

The time recorded (``restore_seconds``) is what a real recovery from that store would take:
from the first byte fetched from the store to the checked target — the download, the
restore and the checks, all of it (it used to start after the download, which made remote
copies look as fast as local ones). A drill fetches the copy verified against the manifest
first, so its record also says what that showed about the copy's bytes (``copy_ok``).

One implementation for the ``VerifyRestoreOperator`` (ops_restore_drill) and the CLI's
``verify --scratch``: MongoDB into a scratch instance (never production: the caller hands
in the scratch client), Redis into a fresh local ``redis-server``, files and git bundles
into a temporary directory, PostgreSQL into a fresh database on the scratch server: each
source type's engine (:mod:`backup_dr.core.engines`) knows how. The result becomes a ``drill`` record next to the backup
(core.verify.record_verification), which health, the UI and retention read.
"""

from __future__ import annotations

import tempfile
from typing import Any, Callable

from backup_dr.core.artifacts.manifest import Manifest
from backup_dr.core.engines import engine_for
from backup_dr.core.errors import BackupDRError, IntegrityError, NotFoundError, RestoreRefused, VerificationError
from backup_dr.core.policy_model import Policy
from backup_dr.core.stores.base import Store
from backup_dr.core.verify import DRILL

#: opens the scratch target of a drill (engine's :meth:`~backup_dr.core.engines.base.SourceEngine.open_scratch`)
Scratch = Callable[[], Any]


def scratch_restore(manifest: Manifest, store: Store, workdir: str, scratch: Scratch | None = None) -> dict[str, Any]:
    """Restore into a scratch target and check it, by the backup's engine; returns ok,
    restore_seconds (first byte fetched to checked target), problems, details."""
    return engine_for(manifest).drill(manifest, store, workdir, scratch)


def run_drill(manifest: Manifest, store: Store, policy: Policy, *, scratch: Scratch | None = None,
              workdir: str | None = None, scrub: Callable[[str], str] = lambda s: s) -> dict[str, Any]:
    """Restore into scratch and build the drill record (``kind: drill``); a failed restore is a
    result (``ok: False`` with the reason), not an exception, so it is always recorded."""
    with tempfile.TemporaryDirectory(prefix="backup-dr-drill-", dir=workdir) as tmp:
        copy_ok: bool | None = True  # the fetch verified every byte before anything was restored
        try:
            result = scratch_restore(manifest, store, tmp, scratch)
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
