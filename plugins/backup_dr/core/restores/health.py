"""The health check's view of the restore journal: an interrupted restore is CRITICAL.

(A restore that died before touching its target is a warning: nothing to undo, and the next
restore into that target clears its record and leftovers.)

Plugs into ``check_health(..., extra_checks=[interrupted_restores_check])``. It reads the
journal of every local store the check can see (where every restore writes its record):
a record whose restore is no longer running is a target that may be half-written, reported
with the target, when it started, the safety backup, and the commands that undo or finish
it. Restores running right now are listed under the store (``restores_running``), not as a
finding.
"""

from __future__ import annotations

from datetime import datetime

from backup_dr.core.catalog import Catalog
from backup_dr.core.health import Finding, HealthReport
from backup_dr.core.policy_model import Policy
from backup_dr.core.restores.journal import JournalDir
from backup_dr.core.stores.local import LocalStore


def interrupted_restores_check(policy: Policy, catalog: Catalog, report: HealthReport, now: datetime) -> None:
    for name, store in catalog.stores.items():
        if not isinstance(store, LocalStore):
            continue
        running = []
        for entry in JournalDir(store.root).entries():
            if entry.alive:
                running.append({"id": entry.id, "target": entry.label, "started_at": entry.started_at, "pid": entry.pid})
                continue
            state = "the target may be half-written" if entry.touched else "it had not touched the target yet"
            report.findings.append(Finding(
                "critical" if entry.touched else "warning",
                f"INTERRUPTED RESTORE into {entry.label}: {entry.engine} restore of {entry.backup_id or '?'} started "
                f"{entry.started_at} (pid {entry.pid} on {entry.host}) never finished, {state} (phase {entry.phase}); "
                f"{entry.safety_text()}; undo it: {entry.commands()[0]}, or finish it: {entry.commands()[1]}",
            ))
        if running and name in report.stores:
            report.stores[name]["restores_running"] = running
