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
from datetime import datetime, timezone
from typing import Any, Iterable, Mapping

from backup_dr.core.artifacts.layout import MANIFEST, VERIFY_PREFIX, BackupId, class_prefix, parse_key, utc
from backup_dr.core.artifacts.manifest import Manifest, iso, parse_iso
from backup_dr.core.artifacts.reader import load_manifest
from backup_dr.core.errors import BackupDRError
from backup_dr.core.stores.base import Store
from backup_dr.core.verify import latest_verification

log = logging.getLogger(__name__)

#: Where a manifest's ``consistent_point`` holds the end / start of the data it covers.
END_KEYS = ("end", "end_ts", "end_optime", "end_time", "until", "time")  # "time": Redis snapshot time
START_KEYS = ("start", "start_ts", "start_optime", "start_time", "from")

Point = tuple[float, int]  # (UNIX seconds, increment): orders BSON Timestamps and times alike


def _as_point(value: Any) -> Point | None:
    """A BSON-Timestamp-like ``{"t", "i"}`` / ``{"$timestamp": ...}`` / ``[t, i]`` / seconds / ISO text."""
    if value is None or isinstance(value, bool):
        return None
    if isinstance(value, dict):
        if "$timestamp" in value:
            return _as_point(value["$timestamp"])
        if "t" in value:
            return float(value["t"]), int(value.get("i", 0))
        for k in ("ts", "time", "wall"):
            if k in value:
                return _as_point(value[k])
        return None
    if isinstance(value, (list, tuple)) and len(value) == 2:
        return float(value[0]), int(value[1])
    if isinstance(value, (int, float)):
        return float(value), 0
    if isinstance(value, datetime):
        return utc(value).timestamp(), 0
    if isinstance(value, str):
        try:
            return parse_iso(value).timestamp(), 0
        except ValueError:
            return None
    return None


def data_point(manifest: Manifest, which: str = "end") -> Point:
    """The (end|start) of the data a backup covers, from ``consistent_point``.

    The contract with the engines: ``consistent_point["end"]`` (a full backup's consistent
    point; an oplog slice's last entry) and ``consistent_point["start"]`` (an oplog slice's
    first entry) hold a BSON Timestamp as ``{"t": seconds, "i": increment}`` or an ISO time.
    Missing, the manifest's ``finished_at`` / ``started_at`` stand in (safe bounds).
    """
    keys = END_KEYS if which == "end" else START_KEYS
    for k in keys:
        p = _as_point(manifest.consistent_point.get(k))
        if p is not None:
            return p
    fallback = manifest.finished if which == "end" else parse_iso(manifest.started_at)
    return fallback.timestamp(), 0


@dataclass
class StoreCopy:
    """One store's copy of a backup, as its listing shows it."""

    store: str
    complete: bool = False  # manifest.json present
    size: int = 0  # data objects only
    objects: int = 0
    last_modified: datetime | None = None
    verify_keys: list[str] = field(default_factory=list)
    keys: list[str] = field(default_factory=list)


class CatalogEntry:
    """A backup id with its copies; manifest and verification are loaded on first use."""

    def __init__(self, bid: BackupId, catalog: "Catalog"):
        self.bid = bid
        self.copies: dict[str, StoreCopy] = {}
        self._catalog = catalog
        self._manifest: Manifest | None = None
        self._verification: dict[str, dict | None] = {}

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

    @property
    def taken_at(self) -> datetime:
        """THE time of this backup for every age, RPO and "as of" figure (page, health, metrics).

        One accessor so that every reader agrees on what a backup's time is, and a change of
        that notion (the id's slot vs the data's capture time) reaches them all at once.
        """
        return self.bid.stamp

    def manifest(self) -> Manifest:
        """The manifest, from the first store holding it (stores are asked in catalog order)."""
        if self._manifest is None:
            stores = self.complete_in
            if not stores:
                raise BackupDRError(f"backup {self.bid} is incomplete in every store (no manifest)")
            self._manifest = load_manifest(self._catalog.stores[stores[0]], self.bid)
        return self._manifest

    def verification(self, store: str) -> dict | None:
        """The newest verification/drill record of this backup in ``store`` (None: never verified)."""
        if store not in self._verification:
            copy = self.copies.get(store)
            if copy is None or not copy.verify_keys:
                self._verification[store] = None
            else:
                self._verification[store] = latest_verification(self._catalog.stores[store], self.bid, keys=copy.verify_keys)
        return self._verification[store]

    def verified_in(self) -> list[str]:
        """Stores whose latest record for this backup says ok."""
        return [n for n in self.complete_in if (self.verification(n) or {}).get("ok") is True]

    @property
    def verified(self) -> bool | None:
        """True: some store's latest record is ok; False: records exist, all failed; None: never verified."""
        states = [(self.verification(n) or {}).get("ok") for n in self.complete_in]
        if any(s is True for s in states):
            return True
        return False if any(s is False for s in states) else None

    def to_dict(self, *, with_verification: bool = True) -> dict[str, Any]:
        stores = {}
        for name, c in self.copies.items():
            row: dict[str, Any] = {"complete": c.complete, "size": c.size, "objects": c.objects}
            if with_verification and c.complete:
                rec = self.verification(name)
                row.update(verified=None if rec is None else rec.get("ok"), verified_at=(rec or {}).get("checked_at"),
                           verify_kind=(rec or {}).get("kind"))
            stores[name] = row
        return {"backup_id": self.backup_id, "class": self.bid.backup_class, "source": self.bid.source, "kind": self.bid.kind,
                "taken_at": iso(self.taken_at), "size": self.size, "complete_in": self.complete_in, "stores": stores}


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
        """Backups matching the filters, newest first (by the id's time). ``before``/``after``
        filter on the id's timestamp (the run's ``run_after``), inclusive."""
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
        """The newest complete backup; with ``before``, the newest whose data ends at or before it
        (its consistent point, read from the manifest); with ``verified_only``, the newest whose
        latest verification (or drill) record in some store says ok."""
        limit = utc(before).timestamp() if before else None
        for entry in self.list(backup_class, source, kind, before=before):
            if store is not None and store not in entry.complete_in:
                continue
            if limit is not None and data_point(entry.manifest(), "end")[0] > limit:
                continue
            if verified_only and not entry.verified_in():
                continue
            return entry
        return None


def age_of(entry: CatalogEntry, now: datetime | None = None) -> float:
    """Seconds since the backup's time (:attr:`CatalogEntry.taken_at`; what an RPO check compares)."""
    return ((now or datetime.now(timezone.utc)) - entry.taken_at).total_seconds()
