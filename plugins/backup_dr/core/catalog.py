"""What backups exist, where, how big, and whether they were verified: read from the stores.

There is no separate database to go stale or to lose in a disaster: the stores ARE the
catalog. A backup exists in a store when its ``manifest.json`` does (no manifest = not a
backup, invisible here). To stay fast with hundreds of backups, each query lists every
store ONCE under the narrowest prefix the filters allow and filters on the backup id,
which already encodes class, source, kind and time; manifests and verification records
are fetched lazily, only for the entries a caller actually looks at.

Used by restore (:meth:`Catalog.newest`), health checks (age of the newest good backup),
retention and the CLI (``python -m backup_dr list --class critical_data``).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import Any, Callable, Iterable, Mapping

from backup_dr.core.artifacts.layout import MANIFEST, VERIFY_PREFIX, BackupId, class_prefix, parse_key, utc
from backup_dr.core.artifacts.manifest import Manifest, Point, data_point, iso  # noqa: F401 - data_point re-exported
from backup_dr.core.artifacts.reader import load_manifest
from backup_dr.core.errors import BackupDRError
from backup_dr.core.stores.base import Store
from backup_dr.core.verify import DRILL, copy_evidence, read_record

log = logging.getLogger(__name__)

#: object stores keep modification times to the second; a bound is never trusted finer than that
_MTIME_SLACK = timedelta(seconds=2)

@dataclass
class StoreCopy:
    """One store's copy of a backup, as its listing shows it."""

    store: str
    complete: bool = False  # manifest.json present
    size: int = 0  # data objects only
    objects: int = 0
    last_modified: datetime | None = None
    manifest_mtime: datetime | None = None  # the manifest was written after the data was captured
    verify_keys: list[str] = field(default_factory=list)
    keys: list[str] = field(default_factory=list)


class CatalogEntry:
    """A backup id with its copies; manifest and verification are loaded on first use."""

    def __init__(self, bid: BackupId, catalog: "Catalog"):
        self.bid = bid
        self.copies: dict[str, StoreCopy] = {}
        self._catalog = catalog
        self._manifest: Manifest | None = None
        self._records: dict[str, dict | None] = {}  # record key -> record (None: unreadable)

    def __repr__(self) -> str:
        return f"<CatalogEntry {self.bid} in {','.join(self.complete_in) or 'no store (incomplete)'}>"

    @property
    def backup_id(self) -> str:
        return str(self.bid)

    @property
    def complete_in(self) -> list[str]:
        return [n for n, c in self.copies.items() if c.complete]

    @property
    def complete(self) -> bool:
        return bool(self.complete_in)

    @property
    def size(self) -> int:
        return max((c.size for c in self.copies.values() if c.complete), default=0)

    def manifest(self) -> Manifest:
        """The manifest, from the first store holding it (stores are asked in catalog order)."""
        if self._manifest is None:
            stores = self.complete_in
            if not stores:
                raise BackupDRError(f"backup {self.bid} is incomplete in every store (no manifest)")
            self._manifest = load_manifest(self._catalog.stores[stores[0]], self.bid)
        return self._manifest

    @property
    def captured_at(self) -> datetime:
        """When the data was captured (:attr:`Manifest.captured_at`); reads the manifest.

        THE time of this backup for every age, RPO and "as of" figure (page, health, metrics,
        retention, "newest before T"): one accessor, so every reader agrees; never the id's slot.
        """
        return self.manifest().captured_at

    @property
    def capture_bound(self) -> datetime | None:
        """An upper bound of :attr:`captured_at` known from the listing alone (the earliest
        manifest write; every manifest is written after its data was captured), or None."""
        times = [c.manifest_mtime for c in self.copies.values() if c.complete and c.manifest_mtime is not None]
        return min(times) if len(times) == len(self.complete_in) and times else None

    def _newest_record(self, store: str, pick: Callable[[dict], Any]) -> Any:
        """``pick(record)`` of the newest record of ``store`` for which it is not None (records
        are read newest first, each at most once)."""
        copy = self.copies.get(store)
        for key in reversed(copy.verify_keys if copy is not None else []):
            if key not in self._records:
                self._records[key] = read_record(self._catalog.stores[store], key)
            found = pick(self._records[key]) if self._records[key] is not None else None
            if found is not None:
                return found
        return None

    def verification(self, store: str) -> dict | None:
        """The state of this backup's copy in ``store``: the newest record about its bytes
        (:func:`backup_dr.core.verify.copy_evidence`: a copy check, or what a drill's fetch
        showed), or None (never checked)."""
        return self._newest_record(store, copy_evidence)

    def drill(self, store: str) -> dict | None:
        """The newest restore-drill record of this backup in ``store`` (None: never drilled)."""
        return self._newest_record(store, lambda r: r if r.get("kind") == DRILL else None)

    def verified_in(self) -> list[str]:
        """Stores whose latest copy check says ok."""
        return [n for n in self.complete_in if (self.verification(n) or {}).get("ok") is True]

    @property
    def verified(self) -> bool | None:
        """True: some store's latest copy check is ok; False: checks exist, all failed; None: never checked."""
        states = [(self.verification(n) or {}).get("ok") for n in self.complete_in]
        if any(s is True for s in states):
            return True
        return False if any(s is False for s in states) else None

    def verification_state(self) -> dict[str, Any]:
        """What was verified, how and when: the copy checks per store, and this backup's last drill.
        ``state``: verified (every checked copy ok) | failed | mixed | never."""
        by_store: dict[str, Any] = {}
        for name in self.complete_in:
            rec = self.verification(name)
            by_store[name] = rec
        oks = {r["ok"] for r in by_store.values() if r is not None}
        state = "never" if not oks else "verified" if oks == {True} else "failed" if oks == {False} else "mixed"
        return {"state": state, "by_store": by_store, "drill": last_drill([self])}

    def captured_or_none(self) -> datetime | None:
        try:
            return self.captured_at
        except BackupDRError:
            return None

    def to_dict(self, *, with_verification: bool = True) -> dict[str, Any]:
        state = self.verification_state() if with_verification else None
        stores = {}
        for name, c in self.copies.items():
            row: dict[str, Any] = {"complete": c.complete, "size": c.size, "objects": c.objects}
            if state is not None and c.complete:
                rec = state["by_store"].get(name) or {}
                row.update(verified=rec.get("ok"), verified_at=rec.get("checked_at"), verify_method=rec.get("method"))
            stores[name] = row
        return {"backup_id": self.backup_id, "class": self.bid.backup_class, "source": self.bid.source, "kind": self.bid.kind,
                **({"verification_state": state} if state is not None else {}),
                "slot": iso(self.bid.stamp), "taken_at": iso(self.captured_or_none()), "size": self.size, "complete_in": self.complete_in, "stores": stores}


class Catalog:
    """Backups across ``stores`` (a mapping or list of :class:`Store`; order = preference)."""

    def __init__(self, stores: Iterable[Store] | Mapping[str, Store], *, strict: bool = False):
        items = list(stores.values()) if isinstance(stores, Mapping) else list(stores)
        self.stores: dict[str, Store] = {s.name: s for s in items}
        if len(self.stores) != len(items):
            raise BackupDRError(f"catalog: store names must be unique, got {[s.name for s in items]}")
        self.strict = strict
        self.errors: dict[str, str] = {}

    # ------------------------------------------------------------------ scanning

    def _scan(self, prefix: str, keep) -> dict[BackupId, CatalogEntry]:
        entries: dict[BackupId, CatalogEntry] = {}
        self.errors = {}
        for name, store in self.stores.items():
            try:
                for info in store.list(prefix):
                    parsed = parse_key(info.key)
                    if parsed is None or not keep(parsed[0]):
                        continue
                    bid, fname = parsed
                    entry = entries.get(bid) or entries.setdefault(bid, CatalogEntry(bid, self))
                    copy = entry.copies.get(name) or entry.copies.setdefault(name, StoreCopy(name))
                    copy.keys.append(info.key)
                    if info.mtime is not None and (copy.last_modified is None or info.mtime > copy.last_modified):
                        copy.last_modified = info.mtime
                    if fname == MANIFEST:
                        copy.complete = True
                        copy.manifest_mtime = info.mtime
                    elif fname.startswith(VERIFY_PREFIX):
                        copy.verify_keys.append(info.key)
                    else:
                        copy.size += info.size
                        copy.objects += 1
            except BackupDRError as e:
                if self.strict:
                    raise
                log.warning("catalog: store %s could not be listed (%s); its backups are not shown", name, e.message)
                self.errors[name] = str(e)
        for entry in entries.values():
            for copy in entry.copies.values():
                copy.verify_keys.sort()
        return entries

    def list(self, backup_class: str | None = None, source: str | None = None, kind: str | None = None, *,
             before: datetime | None = None, after: datetime | None = None,
             include_incomplete: bool = False) -> list[CatalogEntry]:
        """Backups matching the filters, by slot (the id's time, the run's ``run_after``), newest
        first; ``before``/``after`` filter on the slot, inclusive. Cheap (listings only); for
        "the newest data" use :meth:`newest` / :func:`newest_captured`, which read capture times."""
        if source is not None and backup_class is None:
            prefix = class_prefix()
        else:
            prefix = class_prefix(backup_class, source)
        lo, hi = (utc(after) if after else None), (utc(before) if before else None)

        def keep(bid: BackupId) -> bool:
            return ((backup_class is None or bid.backup_class == backup_class) and (source is None or bid.source == source)
                    and (kind is None or bid.kind == kind) and (lo is None or bid.stamp >= lo)
                    and (hi is None or bid.stamp <= hi))

        entries = [e for e in self._scan(prefix, keep).values() if include_incomplete or e.complete]
        return sorted(entries, key=lambda e: (e.bid.stamp, str(e.bid)), reverse=True)

    def find(self, backup_id: str | BackupId) -> CatalogEntry | None:
        """One backup by id (one listing of its own directory per store); None if no store holds it complete."""
        bid = backup_id if isinstance(backup_id, BackupId) else BackupId.parse(backup_id)
        entry = self._scan(bid.prefix, lambda b: b == bid).get(bid)
        return entry if entry is not None and entry.complete else None

    def newest(self, backup_class: str, source: str, kind: str = "full", *, before: datetime | None = None,
               verified_only: bool = False, store: str | None = None) -> CatalogEntry | None:
        """The complete backup whose data was captured last (:func:`newest_captured`); with
        ``before``, captured at or before it; with ``verified_only``, one whose latest copy
        check in some store says ok; with ``store``, complete in that store."""
        accept = (lambda e: bool(e.verified_in())) if verified_only else None
        return newest_captured(self.list(backup_class, source, kind, before=before), before=before, store=store,
                               accept=accept)


def newest_captured(entries: Iterable[CatalogEntry], *, before: datetime | None = None, store: str | None = None,
                    accept: Callable[[CatalogEntry], bool] | None = None) -> CatalogEntry | None:
    """The entry captured last (at or before ``before``), reading as few manifests as possible.

    The slot in an id is when the run was DUE: a late or re-run backup holds data captured
    hours after its slot, so neither ordering nor the ``before`` test may use it. The slot is
    a lower bound of the capture (data is never captured before its run was due), the
    earliest manifest write an upper bound: candidates are read in order of that upper bound
    and the search stops once no remaining one can beat the best capture found. A late run
    can therefore never be chosen for a point in time it postdates. Unreadable manifests are
    skipped (logged)."""
    limit = utc(before) if before else None
    pool = [e for e in entries if e.complete and (store is None or store in e.complete_in)
            and (limit is None or e.bid.stamp <= limit)]
    far = datetime.max.replace(tzinfo=timezone.utc)
    pool.sort(key=lambda e: (e.capture_bound or far, e.bid.stamp), reverse=True)
    best, best_at = None, None
    for e in pool:
        bound = e.capture_bound
        if best_at is not None and bound is not None and bound + _MTIME_SLACK < best_at:
            break
        try:
            at = e.captured_at
        except BackupDRError as err:
            log.warning("catalog: %s has an unreadable manifest (%s); skipped", e.backup_id, err.message)
            continue
        if limit is not None and at > limit:
            continue
        if accept is not None and not accept(e):
            continue
        if best_at is None or (at, e.bid.stamp) > (best_at, best.bid.stamp):
            best, best_at = e, at
    return best


#: newest backups searched for the last drill record (drills restore the newest backup)
DRILL_LOOKBACK = 10


def last_drill(entries: Iterable[CatalogEntry], *, stores: Iterable[str] | None = None,
               lookback: int = DRILL_LOOKBACK) -> dict[str, Any] | None:
    """The newest restore-drill record among the first ``lookback`` entries (newest first), in
    any of ``stores`` (default all): ``{**record, "store", "backup_id"}``, or None. Later copy
    checks never hide a drill: drills are read as drills. The one reader of drill records, for
    health, the CLI and the UI."""
    allowed = set(stores) if stores is not None else None
    best = None
    for entry in list(entries)[:lookback]:
        for name in entry.complete_in:
            if allowed is not None and name not in allowed:
                continue
            rec = entry.drill(name)
            if rec and (best is None or str(rec.get("checked_at", "")) > str(best.get("checked_at", ""))):
                best = {**rec, "store": rec.get("store", name), "backup_id": rec.get("backup_id", entry.backup_id)}
    return best


def age_of(entry: CatalogEntry, now: datetime | None = None) -> float:
    """Seconds since the backup's data was captured (what an RPO check compares)."""
    return ((now or datetime.now(timezone.utc)) - entry.captured_at).total_seconds()
