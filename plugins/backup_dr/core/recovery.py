"""Disaster-recovery decisions as plain functions: what to restore, and what the recovery took.

The DR operators are thin over these (and a break-glass ``dr run`` can call them with
Airflow gone). The rules, each implemented once elsewhere in core and only combined here:

* **which backup**: the one whose data was captured last at or before the incident
  (:func:`backup_dr.core.good_copy.newest_backup`); for a point in time, the base the
  point-in-time engine will use (:func:`backup_dr.core.pitr.plan_point_in_time`);
* **which copy**: :func:`backup_dr.core.good_copy.copy_order`; a real recovery fetches (and
  verifies) the copy ONCE, in the restore step; only a dry run re-hashes it here, since it
  restores nothing;
* **recovery time achieved**: from the first byte fetched by a restore step to the
  validated target (:func:`recovery_time`), downloads included.
"""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Any, Mapping

from backup_dr.core.artifacts.manifest import iso, parse_iso
from backup_dr.core.catalog import Catalog, CatalogEntry
from backup_dr.core.errors import IntegrityError, NotFoundError
from backup_dr.core.good_copy import copy_order, describe_copies, newest_backup, store_order, with_good_copy
from backup_dr.core.policy_model import Policy
from backup_dr.core.stores.base import Store
from backup_dr.core.times import UserTime
from backup_dr.core.verify import verify_copy


def now_iso() -> str:
    return iso(datetime.now(timezone.utc))


def ordered(policy: Policy, backup_class: str, stores: Mapping[str, Store]) -> dict[str, Store]:
    """``stores`` in the class's preference order (the PITR engine reads its stores in this order)."""
    return {n: stores[n] for n in store_order(policy, backup_class) if n in stores}


def _entry_facts(entry: CatalogEntry, order: list[str]) -> dict[str, Any]:
    m = entry.manifest()
    return {"backup_id": entry.backup_id, "captured_at": iso(m.captured_at), "slot": iso(entry.bid.stamp),
            "store": order[0], "order": order, "copies": describe_copies(entry, order)}


def pick_mongodb(policy: Policy, stores: Mapping[str, Store], backup_class: str, source: str, *,
                 at: UserTime | None = None, incident: datetime | None = None) -> dict[str, Any]:
    """What a MongoDB recovery restores: the report the pick step logs and passes on.

    Without ``at``: the newest full backup captured at or before ``incident`` (None: now).
    With ``at``: the point-in-time plan (base + slices) for that instant, refused with the
    restorable window when outside it."""
    stores = ordered(policy, backup_class, stores)
    plan = None
    if at is not None:
        from backup_dr.core.pitr import plan_point_in_time  # only point-in-time picks need the chain

        plan = plan_point_in_time(stores, policy, source, at.at, backup_class=backup_class)
        entry = plan.base
    else:
        entry = newest_backup(Catalog(stores), backup_class, source, "full", before=incident)
    order = copy_order(entry, list(stores))
    m = entry.manifest()
    out = {**_entry_facts(entry, order), "database": m.details.get("database"), "counts": m.counts,
           "point_in_time": None, "recovery_point": iso(m.captured_at)}
    if at is not None:
        out.update(point_in_time=at.text.strip(), typed_point_in_time=at.as_dict(), pitr=plan.as_dict(),
                   recovery_point=iso(at.utc))
    return out


def pick_latest(policy: Policy, stores: Mapping[str, Store], source: str, kind: str, *,
                incident: datetime | None = None) -> tuple[CatalogEntry, list[str], str]:
    """(entry, copy order, class) of the newest backup of ``source`` captured at or before
    ``incident``, over every class that backs it up (Redis, files)."""
    best: tuple[CatalogEntry, str] | None = None
    for cls in policy.classes.values():
        if not any(j.source == source for j in cls.jobs):
            continue
        here = {n: stores[n] for n in cls.stores if n in stores}
        entry = Catalog(here).newest(cls.name, source, kind, before=incident)
        if entry is not None and (best is None or entry.captured_at > best[0].captured_at):
            best = (entry, cls.name)
    if best is None:
        when = f" captured at or before {iso(incident)}" if incident else ""
        raise NotFoundError(f"no complete {kind} backup of {source!r}{when} in any store",
                            hint="`python -m backup_dr list --source " + source + "` shows what exists")
    entry, cls_name = best
    return entry, copy_order(entry, store_order(policy, cls_name), stores), cls_name


def rehearse_copy(entry: CatalogEntry, stores: Mapping[str, Store], order: list[str], scrub=lambda s: s) -> dict[str, Any]:
    """Dry run only: re-hash copies in ``order`` until one is good (a real run leaves that to
    the restore step, which verifies while it downloads: one download per copy)."""
    def check(store: Store, manifest) -> dict[str, Any]:
        result = verify_copy(store, manifest)
        if not result["ok"]:
            raise IntegrityError("; ".join(result["problems"]))
        return result

    result, attempts = with_good_copy(entry, stores, order, check, scrub=scrub)
    return {**attempts.as_dict(), "seconds": result["seconds"], "bytes": result["bytes"]}


def recovery_time(restores: list[dict[str, Any]], validated_at: str | None) -> dict[str, Any]:
    """Recovery time achieved: the first byte fetched by any restore step to the validated target
    (the latest of the validation and the restore steps' ends). None when nothing was fetched."""
    starts = [parse_iso(r["first_byte_at"]) for r in restores if r and r.get("first_byte_at")]
    ends = [parse_iso(t) for t in [validated_at, *(r.get("finished_at") for r in restores if r)] if t]
    if not starts or not ends:
        return {"seconds": None, "from": None, "to": None}
    start, end = min(starts), max(ends)
    return {"seconds": round((end - start).total_seconds(), 1), "from": iso(start), "to": iso(end)}
