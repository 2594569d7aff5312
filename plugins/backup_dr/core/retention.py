"""Per-class retention: a plan that says what goes and why, then a careful delete.

The rules, applied to each store separately (a store keeps what IT needs; the local disk
follows the same rules as S3 and GCS, unlike the seed's global ``find -mtime +90``).
A backup series is (class, source, kind); a backup is KEPT if any rule names it:

1. **keep-within**: its data was captured within the class's ``retention`` (e.g. 3 months).
   Every time here is the capture point the manifest records (:attr:`Manifest.captured_at`),
   never the slot in the id: a re-run of an old slot holds new data.
2. **GFS** (optional ``gfs: {hourly, daily, weekly, monthly}``): for each rule with count
   N, the newest backup of each hour / day / ISO week / month (UTC), for the N most recent
   such periods that have a backup (restic/borg semantics; rules add up).
3. **newest**: the newest complete backup of the series in this store, whatever its age
   (a source that stopped being backed up never loses its last copy).
4. **newest verified**: the newest backup of the series in this store whose latest
   copy check (in any store) says ok, whatever its age.
5. **PITR chains**: oplog slices (kind ``oplog``) are kept by keep-within only (no GFS,
   no "newest": a slice is useless alone). Slices chain through ``previous_id``; for every
   chain with a kept slice, let X be its OLDEST kept slice: the *base* is the newest full
   backup of the same class and source whose consistent point (``consistent_point.end``)
   is at or before X's start; the base is kept, and so is every slice of the chain that
   ends after the base's point and before X (needed to replay from the base to X).
   Restoring to any kept time T then has a full backup and an unbroken replay path.

Anything else of a known class is deleted. Backups of a class the policy does not name
are never touched. A backup directory WITHOUT a manifest is garbage once both its id time
and its newest object are older than a grace period (24 h): it is a crashed attempt.

:func:`execute_prune` deletes ``manifest.json`` FIRST (so a half-deleted backup is never
taken for a complete one), then the rest. An Object-Locked object is reported and
skipped (a locked manifest skips the whole backup, untouched), and prune moves on.
"""

from __future__ import annotations

import logging
from collections import defaultdict
from dataclasses import asdict, dataclass, field
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any, Iterable, Mapping

from backup_dr.core.artifacts.layout import MANIFEST, ROOT, BackupId, utc
from backup_dr.core.artifacts.manifest import iso
from backup_dr.core.catalog import Catalog, CatalogEntry, data_point, newest_captured
from backup_dr.core.durations import format_duration
from backup_dr.core.errors import BackupDRError, StoreError
from backup_dr.core.locks import is_locked
from backup_dr.core.policy_model import Gfs, Policy, Retention
from backup_dr.core.stores.base import ObjectLockedError, Store
from backup_dr.core.stores.local import LocalStore

log = logging.getLogger(__name__)

DEFAULT_GRACE = timedelta(hours=24)
PITR_KIND = "oplog"
_GFS_PERIODS = {
    "hourly": lambda d: d.strftime("%Y-%m-%dT%H"),
    "daily": lambda d: d.strftime("%Y-%m-%d"),
    "weekly": lambda d: "%04d-W%02d" % d.isocalendar()[:2],
    "monthly": lambda d: d.strftime("%Y-%m"),
}


@dataclass(frozen=True)
class Decision:
    store: str
    backup_id: str
    action: str  # keep | delete | delete_incomplete | keep_incomplete
    reasons: tuple[str, ...]
    size: int = 0
    objects: int = 0

    @property
    def deletes(self) -> bool:
        return self.action.startswith("delete")


@dataclass
class PrunePlan:
    """Every decision with its reasons. Planning deletes nothing: this IS the dry run."""

    now: datetime
    grace: timedelta
    decisions: list[Decision] = field(default_factory=list)

    def deletions(self, store: str | None = None) -> list[Decision]:
        return [d for d in self.decisions if d.deletes and (store is None or d.store == store)]

    def kept(self, store: str | None = None) -> list[Decision]:
        return [d for d in self.decisions if not d.deletes and (store is None or d.store == store)]

    def render(self) -> str:
        """The human dry-run report, one line per backup, grouped by store."""
        lines = [f"prune plan at {iso(self.now)} (incomplete backups older than {format_duration(self.grace)} are garbage)"]
        for store in sorted({d.store for d in self.decisions}):
            dels, keeps = self.deletions(store), self.kept(store)
            lines.append(f"store {store}: delete {len(dels)} ({sum(d.size for d in dels) / 1e6:.1f} MB), keep {len(keeps)}")
            for d in sorted((d for d in self.decisions if d.store == store), key=lambda d: d.backup_id):
                lines.append(f"  {'DELETE' if d.deletes else 'keep  '} {d.backup_id} ({d.size / 1e6:.1f} MB): {'; '.join(d.reasons)}")
        return "\n".join(lines)

    def to_dict(self) -> dict[str, Any]:
        return {"now": iso(self.now), "grace_seconds": int(self.grace.total_seconds()),
                "decisions": [asdict(d) for d in self.decisions],
                "summary": {s: {"delete": len(self.deletions(s)), "keep": len(self.kept(s)),
                                "bytes_to_free": sum(d.size for d in self.deletions(s))}
                            for s in sorted({d.store for d in self.decisions})}}


class PruneError(StoreError):
    """Some deletions failed on transient I/O; ``result`` lists what was done."""

    def __init__(self, result: dict[str, Any]):
        self.result = result
        super().__init__(f"prune: {len(result['failed'])} backup(s) could not be deleted",
                         detail="; ".join(f"{f['store']}:{f['backup_id']}: {f['error']}" for f in result["failed"]),
                         hint="the next prune run retries them")


def _retentions(retention: Policy | Mapping[str, Retention]) -> dict[str, Retention]:
    if isinstance(retention, Policy):
        return {name: c.retention for name, c in retention.classes.items()}
    return dict(retention)


def _as_list(stores: Iterable[Store] | Mapping[str, Store]) -> list[Store]:
    return list(stores.values()) if isinstance(stores, Mapping) else list(stores)


def plan_prune(stores: Iterable[Store] | Mapping[str, Store], retention: Policy | Mapping[str, Retention], *,
               now: datetime | None = None, grace: timedelta = DEFAULT_GRACE) -> PrunePlan:
    """Decide, per store, which backups go. Reads listings (one per store), verification
    records and the manifests PITR chains need; writes and deletes nothing."""
    now = utc(now) if now else datetime.now(timezone.utc)
    rules = _retentions(retention)
    catalog = Catalog(_as_list(stores), strict=True)
    entries = catalog.list(include_incomplete=True)
    plan = PrunePlan(now=now, grace=grace)
    for name, store in catalog.stores.items():
        here = [e for e in entries if name in e.copies]
        reasons = _keep_reasons(name, [e for e in here if e.copies[name].complete], rules, now)
        for e in here:
            copy = e.copies[name]
            if copy.complete:
                why = reasons.get(e.bid, [])
                action = "keep" if why else "delete"
                if not why:
                    r = rules[e.bid.backup_class]
                    why = [f"older than {r.text or format_duration(r.keep_within)} and kept by no rule"]
                plan.decisions.append(Decision(name, str(e.bid), action, tuple(why), copy.size, len(copy.keys)))
            else:
                plan.decisions.append(_incomplete_decision(name, e.bid, copy.size, len(copy.keys), copy.last_modified, now, grace, store))
        if isinstance(store, LocalStore):
            plan.decisions += _local_tmp_only_dirs(store, {e.bid for e in here}, now, grace)
    for d in plan.deletions():
        log.info("prune plan: %s %s in %s: %s", d.action, d.backup_id, d.store, "; ".join(d.reasons))
    return plan


def _keep_reasons(store: str, complete: list[CatalogEntry], rules: dict[str, Retention], now: datetime) -> dict[BackupId, list[str]]:
    reasons: dict[BackupId, list[str]] = defaultdict(list)
    series: dict[tuple[str, str, str], list[CatalogEntry]] = defaultdict(list)
    for e in complete:  # already newest first
        series[(e.bid.backup_class, e.bid.source, e.bid.kind)].append(e)
    for (cls, source, kind), items in series.items():
        rule = rules.get(cls)
        if rule is None:
            for e in items:
                reasons[e.bid].append(f"class {cls!r} is not in the policy: never pruned automatically")
            continue
        horizon = now - rule.keep_within
        for e in items:
            if e.bid.stamp >= horizon or _captured(e) >= horizon:  # the slot is a lower bound of the capture
                reasons[e.bid].append(f"within {rule.text or format_duration(rule.keep_within)}")
        if kind == PITR_KIND:
            continue
        by_capture = sorted(items, key=lambda e: (_captured(e), e.bid.stamp), reverse=True) if rule.gfs != Gfs() else items
        for period, count in (("hourly", rule.gfs.hourly), ("daily", rule.gfs.daily), ("weekly", rule.gfs.weekly),
                              ("monthly", rule.gfs.monthly)):
            seen: list[str] = []
            for e in by_capture:
                if not count:
                    break
                key = _GFS_PERIODS[period](_captured(e))
                if key in seen:
                    continue
                if len(seen) >= count:
                    break
                seen.append(key)
                reasons[e.bid].append(f"gfs {period} {key}")
        newest = newest_captured(items) or items[0]
        reasons[newest.bid].append(f"newest {kind} backup of {cls}/{source} in this store")
        verified = newest_captured(items, accept=lambda e: bool(e.verified_in()))
        if verified is not None:
            reasons[verified.bid].append(f"newest verified {kind} backup of {cls}/{source} (verified in {', '.join(verified.verified_in())})")
    for (cls, source, kind), slices in series.items():
        if kind == PITR_KIND and cls in rules:
            _keep_chain_bases(slices, series.get((cls, source, "full"), []), reasons)
    return reasons


def _captured(e: CatalogEntry) -> datetime:
    """Capture time for retention; an unreadable manifest counts as captured at its slot."""
    try:
        return e.captured_at
    except BackupDRError:
        return e.bid.stamp


def _keep_chain_bases(slices: list[CatalogEntry], fulls: list[CatalogEntry], reasons: dict[BackupId, list[str]]) -> None:
    """Rule 5: keep each chain's base full backup and the slices from it to the oldest kept slice."""
    info = sorted(((data_point(e.manifest(), "start"), data_point(e.manifest(), "end"), e) for e in slices),
                  key=lambda t: t[0])
    chains: list[list[tuple]] = []
    for item in info:
        prev = chains[-1][-1][2] if chains else None
        if prev is not None and item[2].manifest().previous_id == prev.backup_id:
            chains[-1].append(item)
        else:
            chains.append([item])
    for chain in chains:
        kept = [t for t in chain if reasons.get(t[2].bid)]
        if not kept:
            continue
        start_x, _, oldest = kept[0]
        base = None
        for f in fulls:  # newest first; a full taken after X started cannot end before it
            if f.bid.stamp.timestamp() > start_x[0]:
                continue
            if data_point(f.manifest(), "end") <= start_x:
                base = f
                break
        if base is None:
            log.warning("PITR chain from %s has no full backup ending before %s: it cannot be replayed", chain[0][2].bid, oldest.bid)
            continue
        base_end = data_point(base.manifest(), "end")
        reasons[base.bid].append(f"base of the PITR chain {chain[0][2].bid}… (oldest kept slice {oldest.bid})")
        for s_start, s_end, e in chain:
            if e is oldest:
                break
            if s_end > base_end and not reasons.get(e.bid):
                reasons[e.bid].append(f"PITR chain: replays from base {base.bid} to {oldest.bid}")


def _incomplete_decision(store_name: str, bid: BackupId, size: int, objects: int, last: datetime | None, now: datetime,
                         grace: timedelta, store: Store) -> Decision:
    newest = max([t for t in (last, bid.stamp) if t is not None])
    if now - newest <= grace:
        return Decision(store_name, str(bid), "keep_incomplete",
                        (f"incomplete (no manifest) but written {format_duration(now - newest)} ago: may be in progress",), size, objects)
    if isinstance(store, LocalStore) and _local_lock_held(store, bid):
        return Decision(store_name, str(bid), "keep_incomplete", ("incomplete, and a writer holds its lock right now",), size, objects)
    return Decision(store_name, str(bid), "delete_incomplete",
                    (f"incomplete (no manifest), last written {format_duration(now - newest)} ago (grace {format_duration(grace)})",),
                    size, objects)


def _local_lock_held(store: LocalStore, bid: BackupId) -> bool:
    return is_locked(store.path(bid.prefix) / ".tmp-lock")


def _local_tmp_only_dirs(store: LocalStore, known: set[BackupId], now: datetime, grace: timedelta) -> list[Decision]:
    """Local backup directories holding only temp files (a crash before any file completed):
    invisible to listings, so found by walking the layout's directory depth."""
    out = []
    for d in store.root.glob(f"{ROOT}/*/*/*/*/*/*"):
        try:
            bid = BackupId.parse(d.name)
        except ValueError:
            continue
        if bid in known or not d.is_dir() or (d / MANIFEST).exists():
            continue
        mtimes = [p.stat().st_mtime for p in d.rglob("*") if p.is_file()] or [d.stat().st_mtime]
        last = datetime.fromtimestamp(max(mtimes), timezone.utc)
        out.append(_incomplete_decision(store.name, bid, 0, 0, last, now, grace, store))
    return out


def execute_prune(plan: PrunePlan, stores: Iterable[Store] | Mapping[str, Store], *,
                  raise_on_failure: bool = True) -> dict[str, Any]:
    """Carry out the plan's deletions: manifest FIRST, then the rest. Locked objects are reported and skipped."""
    by_name = {s.name: s for s in _as_list(stores)}
    result: dict[str, Any] = {"deleted": [], "locked": [], "skipped": [], "failed": [], "bytes_freed": 0}
    for d in plan.deletions():
        store = by_name.get(d.store)
        if store is None:
            result["skipped"].append({"store": d.store, "backup_id": d.backup_id, "why": "store not given to execute_prune"})
            continue
        try:
            _delete_backup(store, d, result)
        except BackupDRError as e:
            log.error("prune: deleting %s from %s failed: %s", d.backup_id, d.store, e)
            result["failed"].append({"store": d.store, "backup_id": d.backup_id, "error": e.message})
    log.info("prune: deleted %d backup(s), %.1f MB; %d locked, %d skipped, %d failed", len(result["deleted"]),
             result["bytes_freed"] / 1e6, len(result["locked"]), len(result["skipped"]), len(result["failed"]))
    if result["failed"] and raise_on_failure:
        raise PruneError(result)
    return result


def _delete_backup(store: Store, d: Decision, result: dict[str, Any]) -> None:
    bid = BackupId.parse(d.backup_id)
    manifest = store.stat(bid.manifest_key)
    if d.action == "delete_incomplete":
        if manifest is not None:
            result["skipped"].append({"store": d.store, "backup_id": d.backup_id, "why": "completed after the plan was made"})
            return
        if isinstance(store, LocalStore) and _local_lock_held(store, bid):
            result["skipped"].append({"store": d.store, "backup_id": d.backup_id, "why": "a writer holds its lock"})
            return
    elif manifest is not None:
        if manifest.retain_until is not None and manifest.retain_until > datetime.now(timezone.utc):
            _locked(result, d, bid.manifest_key, manifest.retain_until)
            return
        try:
            store.delete(bid.manifest_key)  # FIRST: from here on the backup is incomplete, never "complete but broken"
        except ObjectLockedError:
            _locked(result, d, bid.manifest_key, None)
            return
    freed, locked = 0, []
    for info in list(store.list(bid.prefix)):
        try:
            store.delete(info.key)
            freed += info.size
        except ObjectLockedError:
            locked.append(info.key)
    if isinstance(store, LocalStore):
        store.delete_tree(bid.prefix)  # temp files and the writer's lock file
        _remove_empty_parents(store, store.path(bid.prefix).parent)
    for key in locked:
        _locked(result, d, key, None)
    result["deleted"].append({"store": d.store, "backup_id": d.backup_id, "bytes": freed, "complete": not locked})
    result["bytes_freed"] += freed


def _locked(result: dict[str, Any], d: Decision, key: str, until: datetime | None) -> None:
    log.warning("prune: %s in store %s is under Object Lock%s; skipped", key, d.store, f" until {iso(until)}" if until else "")
    result["locked"].append({"store": d.store, "backup_id": d.backup_id, "key": key, "retain_until": iso(until) if until else None})


def _remove_empty_parents(store: LocalStore, path: Path) -> None:
    root = store.root.resolve()
    while path != root and root in path.parents:
        try:
            path.rmdir()
        except OSError:
            return
        path = path.parent
