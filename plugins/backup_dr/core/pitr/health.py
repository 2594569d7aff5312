"""The PITR part of the health report: the restorable window per source and whether the chain holds.

:func:`pitr_health_check` plugs into ``check_health(..., extra_checks=[pitr_health_check])``.
For every ``pitr`` entry of the policy it writes
``report.classes[<class>]["sources"][<source>]["pitr"]``::

    {"from": iso, "to": iso,            # can restore to any WHOLE second between them
     "from_ts": "Timestamp(t, i)", "to_ts": ...,   # the exact oplog positions
     "status": "healthy" | "critical", "state": "ok" | "no_slices" | "stale" | "broken" | "no_full_backup",
     "chain_slices": n, "broken_at": iso | None, "lag_seconds": n, "newest_slice": id, "holes": [...],
     "base_backup": id, "interval_seconds": n}

and a critical finding (label ``<class>/<source>: ...``, as the other checks use) when:

* there is no full backup to chain from;
* the chain is broken since the newest full backup: replaying from it does not reach the
  newest slice (a hole after it), or a recorded oplog rollover has no full backup after it;
* the newest restorable point is older than twice the slice interval (archiving stalled).
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from backup_dr.core.catalog import Catalog
from backup_dr.core.durations import format_duration
from backup_dr.core.health import Finding, HealthReport, worst
from backup_dr.core.pitr.chain import ROLLOVER, ChainState, known_breaks, load_chain
from backup_dr.core.pitr.points import second_iso, ts_from_point, ts_text
from backup_dr.core.policy_model import PitrSpec, Policy


def pitr_status(spec: PitrSpec, catalog: Catalog, now: datetime, *, keep_within: timedelta | None = None
                ) -> tuple[dict[str, Any], list[Finding]]:
    """The ``pitr`` row of one source and the findings it raises."""
    label = f"{spec.backup_class}/{spec.source}"
    kept_since = now - keep_within + spec.interval if keep_within else None
    state = load_chain(catalog, spec.backup_class, spec.source, kept_since=kept_since)
    row: dict[str, Any] = {"status": "healthy", "state": "ok", "from": None, "to": None, "from_ts": None, "to_ts": None,
                           "chain_slices": 0, "broken_at": None, "lag_seconds": None, "base_backup": None,
                           "newest_slice": state.tip.backup_id if state.tip else None,
                           "interval_seconds": int(spec.interval.total_seconds()),
                           "holes": [h.as_dict() for h in state.holes]}
    findings: list[Finding] = []
    if not state.fulls:
        row.update(status="critical", state="no_full_backup")
        findings.append(Finding("critical", f"{label}: point-in-time recovery unavailable: no full backup with an oplog "
                                            "end point to start the chain from"))
        return row, findings
    current = state.current()
    row.update(current.as_dict())
    row["lag_seconds"] = int(now.timestamp() - current.end.time)
    if not state.slices:
        row["state"] = "no_slices"
    broken = _broken(state, catalog)
    if broken is not None:
        at, why = broken
        row.update(status="critical", state="broken", broken_at=second_iso(at.time))
        findings.append(Finding("critical", f"{label}: PITR chain BROKEN since the newest full backup: {why}; "
                                            f"restorable window: {current.describe()}"))
    limit = 2 * spec.interval.total_seconds()
    if row["lag_seconds"] > limit:
        row["status"] = "critical"
        if broken is None:
            row["state"] = "stale"
        findings.append(Finding("critical", f"{label}: point-in-time recovery is {format_duration(timedelta(seconds=row['lag_seconds']))} "
                                            f"behind (newest restorable position {ts_text(current.end)}, {second_iso(current.end.time)}; "
                                            f"slices are due every {format_duration(spec.interval)}): is pitr_oplog_archive running?"))
    return row, findings


def _broken(state: ChainState, catalog: Catalog) -> tuple[Any, str] | None:
    """(position, why) when replay from the newest full backup cannot reach the chain's newest point."""
    newest = state.newest_full
    tip = state.tip
    reach = state.window_from(newest)
    if tip is not None and tip.end > reach.end:
        return reach.end, (f"replay from {newest.backup_id} stops at {ts_text(reach.end)} ({second_iso(reach.end.time)}) "
                           f"but the newest slice {tip.backup_id} ends at {ts_text(tip.end)}: a slice is missing in between")
    for record in known_breaks(catalog.stores, state.backup_class, state.source).values():
        position = ts_from_point(record.get("position"))
        if record.get("kind") != ROLLOVER or position is None:
            continue
        if not any(f.end > position for f in state.fulls):
            return position, record.get("reason") or "the oplog rolled over"
    return None


def pitr_health_check(policy: Policy, catalog: Catalog, report: HealthReport, now: datetime) -> None:
    """``check_health`` extra check: the PITR window and chain state of every ``pitr`` entry."""
    for spec in policy.pitr.values():
        cls = policy.classes.get(spec.backup_class)
        row, findings = pitr_status(spec, catalog, now, keep_within=cls.retention.keep_within if cls else None)
        crow = report.classes.setdefault(spec.backup_class, {"sources": {}, "status": "healthy"})
        srow = crow.setdefault("sources", {}).setdefault(spec.source, {"status": "healthy"})
        srow["pitr"] = row
        report.findings.extend(findings)
        srow["status"] = worst(srow.get("status", "healthy"), row["status"])
        crow["status"] = worst(crow.get("status", "healthy"), row["status"])
