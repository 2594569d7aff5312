"""Backup ages without a policy: what the health DAG can still say when the policy file is unreadable.

The stores ARE the catalog, so the newest backup of every class/source/kind, and how old it
is, can be read from any store reachable through the fallback configuration
(:func:`backup_dr.core.policy_fallback.fallback_stores`). What cannot be known without the
policy is the RPO each age should be judged against; the report says so plainly, and says
plainly when no store can be read at all.
"""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from typing import Any, Mapping

from backup_dr.core.catalog import Catalog, age_of
from backup_dr.core.durations import format_duration
from backup_dr.core.stores.base import Store


def degraded_report(stores: Mapping[str, Store], unavailable: Mapping[str, str], problems: list[str], cause: str, *,
                    now: datetime | None = None) -> dict[str, Any]:
    """``{"status": "critical", "reasons": [...], "backups": [...], "stores": {...}}``: one row per
    class/source/kind with its newest complete backup, its age and the stores holding it."""
    now = now or datetime.now(timezone.utc)
    reasons = [f"critical: the policy file cannot be loaded, so no RPO can be checked: {cause}"]
    store_rows: dict[str, Any] = {name: {"reachable": False, "error": why} for name, why in unavailable.items()}
    backups: list[dict[str, Any]] = []
    if stores:
        catalog = Catalog(stores)
        newest: dict[tuple[str, str, str], Any] = {}
        for entry in catalog.list():  # newest first
            newest.setdefault((entry.bid.backup_class, entry.bid.source, entry.bid.kind), entry)
        for (cls, src, kind), entry in sorted(newest.items()):
            age = age_of(entry, now)
            backups.append({"class": cls, "source": src, "kind": kind, "backup_id": entry.backup_id, "age_seconds": int(age),
                            "age": format_duration(timedelta(seconds=max(age, 0))), "complete_in": entry.complete_in})
        for name in stores:
            store_rows[name] = {"reachable": name not in catalog.errors, **({"error": catalog.errors[name]} if name in catalog.errors else {})}
    readable = [n for n, row in store_rows.items() if row["reachable"]]
    if not readable:
        why = "; ".join(problems + [f"{n}: {r['error']}" for n, r in store_rows.items()]) or "no fallback store is configured"
        reasons.append(f"critical: cannot report backup ages either: no store is readable without the policy ({why})")
    elif not backups:
        reasons.append(f"critical: no complete backup found in {', '.join(readable)}")
    else:
        reasons += [f"info: newest {b['class']}/{b['source']} {b['kind']}: {b['backup_id']}, {b['age']} old, in "
                    f"{', '.join(b['complete_in'])}" for b in backups]
    reasons += [f"warning: fallback store configuration: {p}" for p in problems if readable]
    return {"generated_at": now.isoformat(), "status": "critical", "degraded": True, "reasons": reasons,
            "backups": backups, "stores": store_rows}

