"""The PITR chain as the stores hold it: full backups, oplog slices, holes, restorable windows.

Everything is derived from the stores (the catalog); nothing is kept elsewhere to go stale.

* A **slice** covers the oplog range ``(start, end]`` (its manifest's ``consistent_point``)
  and names the slice it continues (``previous_id``; None for the first slice of a chain).
* A **segment** is a run of slices where each one starts exactly where the one before ended
  AND names it as its predecessor. Sorted by start, consecutive slices that break this rule
  are a **hole** when the later slice claims a predecessor (a slice is missing or its range
  does not join up). A slice with ``previous_id`` None starts a new chain (after a gap was
  handled); a first slice whose predecessor was pruned by retention is not a hole.
* A full backup F with a consistent end point ``F.end`` is the base of the **window**
  ``[F.end, S.end]`` where S is the segment holding ``F.end`` (or ``[F.end, F.end]``: the
  backup alone). Restoring to T uses the newest F with ``F.end <= T`` whose window reaches T.

Broken-chain markers (``breaks``): when the archiver finds a gap it records it as a small
JSON object under ``backup-dr-v1/_pitr/<class>/<source>/breaks/<kind>-<t>-<i>.json`` in the
PITR stores (outside any backup directory, so the catalog and retention never take it for a
backup). The name is the gap's position, so a gap is recorded, and alerted, once. Health
reads them to say since when the chain is broken.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any, Iterable, Mapping

from bson.timestamp import Timestamp

from backup_dr.core.artifacts.layout import ROOT, BackupId, utc
from backup_dr.core.artifacts.manifest import Manifest
from backup_dr.core.catalog import Catalog, CatalogEntry
from backup_dr.core.errors import BackupDRError
from backup_dr.core.pitr.points import MAX_INC, second_iso, ts_from_point, ts_text
from backup_dr.core.stores.base import Store

log = logging.getLogger(__name__)

SLICE_KIND = "oplog"
FULL_KIND = "full"
ROLLOVER = "oplog_rollover"
MISSING = "missing_slice"


@dataclass(frozen=True)
class SliceInfo:
    backup_id: str
    start: Timestamp
    end: Timestamp
    previous_id: str | None
    chain_id: str | None
    entries: int
    entry: CatalogEntry = field(compare=False, repr=False)

    @property
    def manifest(self) -> Manifest:
        return self.entry.manifest()


@dataclass(frozen=True)
class FullInfo:
    backup_id: str
    end: Timestamp
    entry: CatalogEntry = field(compare=False, repr=False)

    @property
    def manifest(self) -> Manifest:
        return self.entry.manifest()


@dataclass(frozen=True)
class Hole:
    after: str  # the last slice before the hole
    before: str  # the first slice after it
    start: Timestamp  # data after this position is missing ...
    end: Timestamp  # ... up to this one
    reason: str

    def as_dict(self) -> dict[str, Any]:
        return {"after": self.after, "before": self.before, "from": second_iso(self.start.time), "to": second_iso(self.end.time),
                "from_ts": ts_text(self.start), "to_ts": ts_text(self.end), "reason": self.reason}


@dataclass
class Window:
    """Restorable from ``base`` (at ``start`` = its end point) up to ``end`` by replaying ``slices``."""

    base: FullInfo
    start: Timestamp
    end: Timestamp
    slices: list[SliceInfo]

    def covers(self, upper: Timestamp) -> bool:
        return self.start <= upper <= self.end

    @property
    def first_second(self) -> int | None:
        """The first WHOLE second restorable (None if the window holds no complete second)."""
        return self.start.time if self.end >= Timestamp(self.start.time, MAX_INC) else None

    @property
    def last_second(self) -> int | None:
        """The last whole second restorable: the one before the end's, which may still get writes."""
        last = self.end.time - (0 if self.end.inc == MAX_INC else 1)
        return last if self.first_second is not None and last >= self.start.time else None

    def describe(self) -> str:
        if self.first_second is None:
            seconds = "no whole second yet"
        else:
            seconds = f"any second between {second_iso(self.first_second)} and {second_iso(self.last_second)}"
        return f"{seconds} (exact oplog positions {ts_text(self.start)} to {ts_text(self.end)})"

    def as_dict(self) -> dict[str, Any]:
        return {"from": second_iso(self.first_second) if self.first_second is not None else None,
                "to": second_iso(self.last_second) if self.last_second is not None else None,
                "from_ts": ts_text(self.start), "to_ts": ts_text(self.end), "base_backup": self.base.backup_id,
                "chain_slices": len(self.slices)}


@dataclass
class ChainState:
    backup_class: str
    source: str
    fulls: list[FullInfo]  # oldest end first
    slices: list[SliceInfo]  # by start
    segments: list[list[SliceInfo]]
    holes: list[Hole]
    unreadable: list[str]

    @property
    def tip(self) -> SliceInfo | None:
        return max(self.slices, key=lambda s: (s.end, s.start), default=None)

    @property
    def newest_full(self) -> FullInfo | None:
        return self.fulls[-1] if self.fulls else None

    def segment_of(self, point: Timestamp) -> list[SliceInfo] | None:
        found = [seg for seg in self.segments if seg[0].start <= point <= seg[-1].end]
        return max(found, key=lambda seg: seg[-1].end, default=None)

    def window_from(self, full: FullInfo) -> Window:
        seg = self.segment_of(full.end)
        if seg is None:
            return Window(full, full.end, full.end, [])
        return Window(full, full.end, seg[-1].end, [s for s in seg if s.end > full.end])

    def windows(self) -> list[Window]:
        """One window per full backup, oldest base first."""
        return [self.window_from(f) for f in self.fulls]

    def merged(self) -> list[Window]:
        """Non-overlapping restorable ranges, oldest first (each from the oldest base reaching it)."""
        out: list[Window] = []
        for w in sorted(self.windows(), key=lambda w: (w.start, -w.end.time, -w.end.inc)):
            if out and w.start <= out[-1].end:
                if w.end > out[-1].end:
                    out[-1] = Window(out[-1].base, out[-1].start, w.end, out[-1].slices + [s for s in w.slices if s.end > out[-1].end])
                continue
            out.append(w)
        return out

    def current(self) -> Window | None:
        """The range that reaches the newest restorable point (what "the restorable window" means).

        A full backup newer than every slice is a window of one instant until the next slice
        continues the chain past it; the range holding whole seconds is the one reported then."""
        merged = self.merged()
        useful = [w for w in merged if w.first_second is not None]
        return max(useful or merged, key=lambda w: w.end, default=None)

    def window_for(self, upper: Timestamp) -> Window | None:
        """The window a restore to ``upper`` uses: from the newest base at or before it, if it reaches it."""
        bases = [f for f in self.fulls if f.end <= upper]
        if not bases:
            return None
        window = self.window_from(bases[-1])
        return window if window.covers(upper) else None


def _point(manifest: Manifest, key: str) -> Timestamp | None:
    return ts_from_point((manifest.consistent_point or {}).get(key))


def load_chain(catalog: Catalog, backup_class: str, source: str, *, kept_since: datetime | None = None) -> ChainState:
    """Read the slices and full backups of one class/source from the catalog and link them.

    :param kept_since: retention keeps every slice taken since then (now - keep_within), so
        a first slice whose predecessor is that recent lost it to something else than a
        prune: a hole. Without it a dangling first predecessor is taken as pruned."""
    fulls: list[FullInfo] = []
    slices: list[SliceInfo] = []
    unreadable: list[str] = []
    for entry in catalog.list(backup_class, source):
        if entry.bid.kind not in (SLICE_KIND, FULL_KIND):
            continue
        try:
            m = entry.manifest()
        except BackupDRError as e:
            log.warning("PITR chain: %s has an unreadable manifest (%s); treated as missing", entry.backup_id, e.message)
            unreadable.append(entry.backup_id)
            continue
        end = _point(m, "end")
        if entry.bid.kind == FULL_KIND:
            if end is None:
                log.info("PITR chain: full backup %s has no oplog end point (not from a replica set); not a base", entry.backup_id)
                continue
            fulls.append(FullInfo(entry.backup_id, end, entry))
            continue
        start = _point(m, "start")
        if start is None or end is None or end < start:
            log.warning("PITR chain: slice %s has no valid start/end; treated as missing", entry.backup_id)
            unreadable.append(entry.backup_id)
            continue
        slices.append(SliceInfo(entry.backup_id, start, end, m.previous_id, (m.details or {}).get("chain_id"),
                                int((m.counts or {}).get("entries", 0)), entry))
    fulls.sort(key=lambda f: (f.end, f.backup_id))
    slices.sort(key=lambda s: (s.start, s.end, s.backup_id))
    segments, holes = _link(slices, kept_since)
    return ChainState(backup_class, source, fulls, slices, segments, holes, unreadable)


def _link(slices: list[SliceInfo], kept_since: datetime | None) -> tuple[list[list[SliceInfo]], list[Hole]]:
    segments: list[list[SliceInfo]] = []
    holes: list[Hole] = []
    first = slices[0] if slices else None
    if first is not None and first.previous_id and kept_since is not None and _stamp(first.previous_id) >= utc(kept_since):
        holes.append(Hole(first.previous_id, first.backup_id, first.start, first.start,
                          f"slice {first.backup_id} continues {first.previous_id}, which is missing from every store "
                          "(too recent to have been pruned)"))
    for s in slices:
        prev = segments[-1][-1] if segments else None
        if prev is not None and s.previous_id == prev.backup_id and s.start == prev.end:
            segments[-1].append(s)
            continue
        if prev is not None and s.previous_id is not None:
            if s.previous_id != prev.backup_id:
                reason = f"slice {s.backup_id} continues {s.previous_id}, which is missing from every store"
            else:
                reason = f"slice {s.backup_id} starts at {ts_text(s.start)} but {prev.backup_id} ended at {ts_text(prev.end)}"
            holes.append(Hole(prev.backup_id, s.backup_id, prev.end, s.start, reason))
        segments.append([s])
    return segments, holes


def _stamp(backup_id: str) -> datetime:
    try:
        return BackupId.parse(backup_id).stamp
    except ValueError:
        return datetime.min.replace(tzinfo=timezone.utc)


# ----------------------------------------------------------------------------- break markers


def breaks_prefix(backup_class: str, source: str) -> str:
    return f"{ROOT}/_pitr/{backup_class}/{source}/breaks/"


def break_key(backup_class: str, source: str, kind: str, position: Timestamp) -> str:
    return f"{breaks_prefix(backup_class, source)}{kind}-{position.time:010d}-{position.inc:010d}.json"


def record_break(stores: Iterable[Store], key: str, record: dict[str, Any]) -> list[str]:
    """Write a break marker to every store that takes it; returns where it was written.
    One unreachable store must not hide a gap: failures are logged, not raised, unless all fail."""
    body = (json.dumps(record, indent=2, sort_keys=True, ensure_ascii=False) + "\n").encode("utf-8")
    written, errors = [], []
    for store in stores:
        try:
            store.put_bytes(key, body)
            written.append(store.name)
        except BackupDRError as e:
            log.error("PITR gap marker %s could not be written to %s: %s", key, store.name, e.message)
            errors.append(e)
    if errors and not written:
        raise errors[0]
    return written


def known_breaks(stores: Mapping[str, Store] | Iterable[Store], backup_class: str, source: str) -> dict[str, dict[str, Any]]:
    """Every break marker of a class/source in any store: ``{key: record}``."""
    items = stores.values() if isinstance(stores, Mapping) else stores
    out: dict[str, dict[str, Any]] = {}
    prefix = breaks_prefix(backup_class, source)
    for store in items:
        try:
            for info in store.list(prefix):
                if info.key in out or not info.key.endswith(".json"):
                    continue
                out[info.key] = json.loads(store.get_bytes(info.key))
        except (BackupDRError, ValueError) as e:
            log.warning("PITR gap markers in %s could not be read: %s", store.name, e)
    return out
