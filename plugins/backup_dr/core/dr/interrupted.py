"""DR runs and interrupted restores: what ``safety_backup`` and ``restore`` do about a restore
into the target whose process was killed half-way (its journal record is left).

``safety_backup`` is the first step that reads the target, and a safety backup of half-written
data would be worse than none: so it stops there with a CRITICAL error, unless the run's
``interrupted_restore`` says ``rollback`` (put the target back as it was before that restore,
then go on normally) or ``resume`` (skip the new safety backup: the ``restore`` step takes the
record over and keeps its original safety backup).
"""

from __future__ import annotations

from typing import Any

from backup_dr.core.dr.run import DrRun
from backup_dr.core.errors import InterruptedRestoreFound
from backup_dr.core.restores.journal import JournalDir


def journaling_for(local, conn_id: str, resumes: str | None):
    """The restore journal of a DR restore: in the local store; ``resumes``: a record to take over."""
    from backup_dr.core.mongo.interrupted import Journaling

    return Journaling(dir=local.root, conn_id=conn_id, takes_over=JournalDir(local.root).get(resumes) if resumes else None)


def dry_run_check(run: DrRun, local, target_db: str) -> None:
    """A rehearsal reports an interrupted restore too (the target may not be reachable yet)."""
    from backup_dr.core.mongo.interrupted import find_interrupted

    try:
        client = run.mongo(run.target_conn_id, serverSelectionTimeoutMS=3000)
        try:
            found = find_interrupted(JournalDir(local.root), client, target_db)
        finally:
            client.close()
    except Exception as e:  # noqa: BLE001 - a rehearsal reports, the real run decides
        run.log.warning("DRY RUN: could not check the target for an interrupted restore: %s", type(e).__name__)
        return
    if found is not None:
        run.log.error("DRY RUN: an interrupted restore into the target was found (%s): the real run stops here unless "
                      "interrupted_restore=rollback or resume", found.describe())


def settle(run: DrRun, client, local, target_db: str, secrets) -> dict[str, Any] | None:
    """Act on an interrupted restore into the target, if there is one, as ``run.interrupted_restore``
    says; a dict is the step's result (resume), None means "go on and take the safety backup"."""
    from backup_dr.core.mongo.interrupted import find_interrupted, rollback_interrupted

    found = find_interrupted(JournalDir(local.root), client, target_db)
    if found is None:
        return None
    mode = str(run.interrupted_restore or "fail").strip().lower()
    run.log.error("CRITICAL: an interrupted restore into the target was found: %s; %s", found.describe(), found.safety_text())
    if mode not in ("rollback", "resume"):
        raise InterruptedRestoreFound(
            f"CRITICAL: an interrupted restore into {found.label} was found, the target may be half-written: "
            f"{found.describe()}; {found.safety_text()}. {run.rerun_hint[0].upper()}{run.rerun_hint[1:]} "
            f"(rollback: put the target back as it was before that restore, then recover; resume: recover "
            f"keeping that restore's original safety backup); without Airflow: {' / '.join(found.commands())}")
    if mode == "resume":
        run.log.warning("resuming: the restore step takes over %s and keeps its safety backup", found.id)
        return {"dry_run": False, "database": target_db, "safety_backup": found.safety.get("backup_id"), "resumes": found.id}
    report = rollback_interrupted(client, JournalDir(local.root), found, secrets=secrets)
    run.log.warning("rolled back the interrupted restore %s: %s", found.id, report)
    return None
