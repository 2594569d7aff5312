"""Point-in-time restore: the newest full backup at or before T, then the oplog slices up to T.

One safe operation, in this order (nothing touches the target before step 4):

1. T becomes an oplog bound (:func:`.points.upper_bound`: a datetime is the WHOLE second,
   a ``Timestamp`` is exact). The chain is read from the stores; T must lie in a restorable
   window, else :class:`RestoreRefused` states the window ("can restore to any second
   between A and B").
2. The base full backup's archive and every slice needed are fetched and verified against
   their manifests' sha256 (another store's copy is used when one is bad or missing).
3. Every slice is read once: its entry count and order must match its manifest.
4. The MongoDB safe restore of the base (safety backup of the target, restore with drop,
   validate; it rolls back by itself if any of that fails).
5. Replay of the slice entries with ``base end < ts <= T`` through the client-side applier
   (continuing the transactions the base's window left open at its end), then validation
   (counts = the base's counts at its consistent point + what the slices inserted/deleted,
   indexes, ``validate``). If the replay or this validation fails (or a signal interrupts
   it), the target is rolled back from the safety backup of step 4, as the safe restore would
   have done.

Steps 4-5 are ONE restore journal record (:mod:`backup_dr.core.mongo.interrupted`): a kill
during the replay leaves it behind, and ``restore resume`` re-runs the whole restore to T.
"""

from __future__ import annotations

import dataclasses
import logging
import time
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any, Iterator, Mapping

from bson.raw_bson import RawBSONDocument
from bson.timestamp import Timestamp

from backup_dr.core.artifacts.layout import BackupId
from backup_dr.core.artifacts.manifest import Manifest
from backup_dr.core.artifacts.reader import fetch_verified, load_manifest
from backup_dr.core.catalog import Catalog, CatalogEntry
from backup_dr.core.errors import BackupDRError, IntegrityError, PolicyError, RestoreError, RestoreRefused, RestoreRolledBack
from backup_dr.core.good_copy import copy_order, with_good_copy
from backup_dr.core.mongo.applier import ApplyStats, NamespaceMap, OplogApplier
from backup_dr.core.mongo.backup import ARCHIVE_FORMAT
from backup_dr.core.mongo.end_counts import expected_counts
from backup_dr.core.mongo.interrupted import Journaling, journal_for, rollback_failed_hint
from backup_dr.core.mongo.mongo_errors import describe
from backup_dr.core.mongo.restore import RestoreResult, RestoreState, open_archive, plan_restore
from backup_dr.core.mongo.safe_restore import rollback, safe_restore, validate_restore
from backup_dr.core.pitr.chain import ChainState, SliceInfo, load_chain
from backup_dr.core.pitr.points import describe_target, ts_text, upper_bound
from backup_dr.core.pitr.slices import check_slice, iter_slice
from backup_dr.core.policy_model import MongoSource, Policy
from backup_dr.core.progress import Progress
from backup_dr.core.restores.signals import describe_failure, interrupted_by, shielded
from backup_dr.core.stores.base import Store
from backup_dr.core.stores.local import LocalStore

log = logging.getLogger(__name__)


@dataclass
class PitrRestoreResult:
    source: str
    backup_class: str
    target_db: str
    requested: str
    mode: str  # whole_second | exact
    replayed_until: Timestamp
    base_backup: str
    base_store: str
    slices: list[str]
    replayed_entries: int
    restore: RestoreResult
    replay: dict[str, Any]
    validation: dict[str, Any]
    window: dict[str, Any]
    seconds: float
    fetched_from: dict[str, str] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        counts = {n: c.get("count") for n, c in (self.validation.get("collections") or {}).items()}
        return {"source": self.source, "backup_class": self.backup_class, "target_db": self.target_db,
                "requested": self.requested, "mode": self.mode, "replayed_until": ts_text(self.replayed_until),
                "base_backup": self.base_backup, "base_store": self.base_store, "slices": len(self.slices),
                "slice_ids": self.slices, "replayed_entries": self.replayed_entries, "documents_restored": self.restore.docs,
                "counts": counts, "validated": bool(self.validation.get("ok")), "safety_backup": self.restore.safety_backup,
                "safety_dir": self.restore.safety_dir, "window": self.window, "seconds": round(self.seconds, 3)}


def _resolve(policy: Policy, source: MongoSource | str, backup_class: str | None) -> tuple[MongoSource, str]:
    name = source.name if isinstance(source, MongoSource) else str(source)
    src = policy.sources.get(name)
    if not isinstance(src, MongoSource):
        raise PolicyError([(f"sources.{name}", "point-in-time restore needs a MongoDB source of the policy")])
    if backup_class:
        return src, backup_class
    spec = policy.pitr.get(name)
    if spec is None:
        raise RestoreRefused(f"no point-in-time recovery is configured for source {name!r} (policy section pitr)",
                             hint="restore a full backup instead (restore mongo <id|latest>), or name the class")
    return src, spec.backup_class


def _job_collections(policy: Policy, cls: str, source: str) -> list[str] | None:
    c = policy.classes.get(cls)
    job = next((j for j in (c.jobs if c else ()) if j.source == source and not j.metadata_only), None)
    src = policy.sources[source]
    return list((job.collections if job else ()) or src.collections) or None


def _refusal(state: ChainState, upper: Timestamp, at, label: str) -> RestoreRefused:
    what = describe_target(at)
    merged = state.merged()
    if not merged:
        return RestoreRefused(f"cannot restore {label} to {what}: there is no full backup with an oplog end point, "
                              "so no point in time is restorable", hint=f"run the backup of {state.backup_class} first")
    current = state.current()
    if upper < merged[0].start:
        why = f"it is before the consistent point of the oldest full backup ({ts_text(merged[0].start)})"
    elif upper > current.end and state.tip is not None and upper <= state.tip.end:
        holes = "; ".join(h.reason for h in state.holes) or "the oplog rolled over"
        why = (f"it falls in or after a gap of the oplog chain ({holes}): the slices that cover it cannot be replayed from any "
               "full backup until one is taken after the gap")
    elif upper > current.end:
        why = f"it is after the newest archived oplog position ({ts_text(current.end)}); the next slice will extend the window"
    else:
        why = "it falls in a gap of the oplog chain (a slice is missing or the oplog rolled over there)"
    others = [w.describe() for w in merged if (w.start, w.end) != (current.start, current.end)]
    return RestoreRefused(
        f"cannot restore {label} to {what}: outside the restorable window; can restore to {current.describe()}",
        detail=why + (f"; earlier windows: {'; '.join(others)}" if others else ""),
        hint="pick a time inside the window; nothing was changed on the target",
    )


def _fetch(entry: CatalogEntry, stores: Mapping[str, Store], manifest: Manifest, name: str, workdir: Path) -> tuple[Path, str]:
    """Verified local bytes of one file, through the one good-copy picker (``stores`` order is
    the preference; a bad copy falls back to the next)."""
    try:
        path, attempts = with_good_copy(entry, stores, copy_order(entry, list(stores)),
                                        lambda store, m: fetch_verified(store, m, name, workdir / manifest.backup_id),
                                        reference=manifest)
    except IntegrityError as e:
        raise IntegrityError(f"no store holds a good copy of {manifest.backup_id}/{name}", detail=e.detail,
                             hint="point-in-time recovery cannot cross this artifact; pick a time before it") from None
    return path, attempts.used


@dataclass
class PitrPlan:
    """What a restore to a time will use, decided before anything is fetched (the DR pick step
    reports exactly this; :func:`restore_to_time` then executes it)."""

    source: MongoSource
    backup_class: str
    upper: Timestamp
    mode: str
    window: Any  # chain.Window: base full backup + the slices reaching the time

    @property
    def base(self) -> CatalogEntry:
        return self.window.base.entry

    def as_dict(self) -> dict[str, Any]:
        return {"source": self.source.name, "backup_class": self.backup_class, "replay_until": ts_text(self.upper),
                "mode": self.mode, "base_backup": self.window.base.backup_id,
                "base_captured_at": self.window.base.manifest.captured_at.isoformat().replace("+00:00", "Z"),
                "slices": [s.backup_id for s in self.window.slices if s.start < self.upper], "window": self.window.as_dict()}


def plan_point_in_time(stores: Mapping[str, Store], policy: Policy, source: MongoSource | str, at: datetime | Timestamp, *,
                       backup_class: str | None = None) -> PitrPlan:
    """The base and slices a restore of ``source`` to ``at`` uses: the newest full backup whose
    consistent point is at or before ``at`` (its capture, never its slot) and whose chain
    reaches it. :raises RestoreRefused: outside the restorable window (the message states it)."""
    src, cls = _resolve(policy, source, backup_class)
    upper, mode = upper_bound(at)
    state = load_chain(Catalog(stores), cls, src.name)
    window = state.window_for(upper)
    if window is None:
        raise _refusal(state, upper, at, f"{cls}/{src.name}")
    return PitrPlan(src, cls, upper, mode, window)


def _entries(slices: list[tuple[SliceInfo, Path, str]], after: Timestamp, upper: Timestamp, progress: Progress) -> Iterator[RawBSONDocument]:
    for info, path, codec in slices:
        for entry in iter_slice(path, codec=codec, where=f"slice {info.backup_id}"):
            ts = entry["ts"]
            if ts <= after:
                continue
            if ts > upper:
                return
            progress.add(1, len(entry.raw))
            yield entry


def _expected_after(result: RestoreResult, stats: ApplyStats) -> RestoreResult:
    """What validation expects after the replay: restored counts plus the replay's net inserts."""
    gone = stats.dropped | set(stats.renamed) | set(stats.renamed.values())
    counts: dict[str, int | None] = {}
    indexes: dict[str, list[str]] = {}
    for name, n in result.expected_counts.items():
        counts[name] = None if n is None or name in gone else n + stats.doc_delta.get(name, 0)
        if counts[name] is not None:
            have = set(result.expected_indexes.get(name, [])) | stats.created_indexes.get(name, set())
            indexes[name] = sorted(have - stats.dropped_indexes.get(name, set()))
    views = [v for v in result.views if v not in gone]
    return dataclasses.replace(result, expected_counts=counts, expected_indexes=indexes, views=views)


def restore_to_time(client, stores: Mapping[str, Store], policy: Policy, source: MongoSource | str,
                    at: datetime | Timestamp, *, workdir: str | Path, safety_dir: str | Path, target_db: str | None = None,
                    collections: list[str] | None = None, drop: bool = False, backup_class: str | None = None,
                    secrets: list[str] | None = None, safety_backup: Manifest | None = None,
                    journaling: Journaling | None = None) -> PitrRestoreResult:
    """Restore ``source`` to ``at`` (aware datetime = that whole second; bson Timestamp = exact).

    :param stores: where to look, in order of preference (the local store first is cheapest).
    :param safety_backup: a safety backup of the target taken just before (the DR safety step),
        in ``safety_dir``: used instead of dumping the target a second time.
    :raises RestoreRefused: ``at`` is outside the restorable window (the message states it),
        or the target has the collections and ``drop`` is False. Nothing was touched.
    :raises RestoreError: the restore or the replay failed; the target was rolled back.
    """
    started = time.monotonic()
    plan = plan_point_in_time(stores, policy, source, at, backup_class=backup_class)
    src, cls, upper, mode, window = plan.source, plan.backup_class, plan.upper, plan.mode, plan.window
    label = f"{cls}/{src.name}"
    colls = list(collections) if collections else _job_collections(policy, cls, src.name)
    base = window.base.manifest
    archive = next((f for f in base.files if f.format == ARCHIVE_FORMAT), None)
    if archive is None:
        raise RestoreRefused(f"full backup {base.backup_id} has no mongodump archive to restore from")
    work = Path(workdir)
    archive_path, base_store = _fetch(window.base.entry, stores, base, archive.name, work)
    needed = [s for s in window.slices if s.start < upper]
    fetched: list[tuple[SliceInfo, Path, str]] = []
    where: dict[str, str] = {base.backup_id: base_store}
    for s in needed:
        m = s.manifest
        f = m.files[0]
        path, store_name = _fetch(s.entry, stores, m, f.name, work)
        check_slice(path, codec=f.codec, start=s.start, end=s.end, entries=s.entries, where=f"slice {s.backup_id} ({store_name})")
        fetched.append((s, path, f.codec))
        where[s.backup_id] = store_name
    log.info("restoring %s to %s: base %s (%s), then %d slice(s) up to %s", label, describe_target(at), base.backup_id,
             ts_text(window.base.end), len(needed), ts_text(upper))
    source_db = base.details.get("database") or src.database
    safety_store = LocalStore(safety_dir, name="safety")
    journaling = dataclasses.replace(journaling or Journaling(), backup_id=base.backup_id, resume={
        "kind": "pitr", "at": at_text(at), "source": src.name, "backup_class": cls, "target_db": target_db,
        "collections": list(collections) if collections else None})
    with journal_for(client, target_db or source_db, safety_store, journaling, what=f"the point-in-time restore of {label}",
                     secrets=secrets) as journal:
        state = RestoreState()
        result = safe_restore(client, archive_path, codec=archive.codec, source_db=source_db, target_db=target_db,
                              collections=colls, drop=drop, safety_store=safety_store, backup_class=cls, source=src.name,
                              secrets=secrets, expected=expected_counts(base), state=state, safety_backup=safety_backup,
                              journaling=dataclasses.replace(journaling, open=journal))
        base_txns = state.applier.txns if state.applier is not None else None  # open at the base's end: continued here
        applier = OplogApplier(client, NamespaceMap(source_db, result.target_db, colls), transactions=base_txns)
        progress = Progress(f"point-in-time replay into {result.target_db}", unit="entries", logger=log)
        try:
            stats = applier.apply_all(_entries(fetched, window.base.end, upper, progress))
            validation = validate_restore(client, _expected_after(result, stats))
        except BaseException as e:
            with shielded():
                journal.rolling_back()
                _roll_back(client, e, result, archive_path, archive.codec, source_db, colls, applier, safety_store, secrets,
                           rollback_failed_hint(journal, f"safety backup {result.safety_backup}"))
            raise  # not reached: _roll_back always raises
    progress.done()
    log.info("point-in-time restore of %s into %s done: %d entries replayed up to %s", label, result.target_db,
             stats.entries, ts_text(upper))
    return PitrRestoreResult(
        source=src.name, backup_class=cls, target_db=result.target_db, requested=describe_target(at), mode=mode,
        replayed_until=upper, base_backup=base.backup_id, base_store=base_store, slices=[s.backup_id for s in needed],
        replayed_entries=stats.entries, restore=result, replay=stats.as_dict(), validation=validation,
        window=window.as_dict(), seconds=time.monotonic() - started, fetched_from=where,
    )


def at_text(at: datetime | Timestamp) -> str:
    """``at`` as text :func:`.points.parse_at` reads back (the journal's record of a restore)."""
    return ts_text(at) if isinstance(at, Timestamp) else at.isoformat()


def _roll_back(client, error: BaseException, result: RestoreResult, archive_path: Path, codec: str, source_db: str,
               colls: list[str] | None, applier: OplogApplier, safety_store: LocalStore, secrets: list[str] | None,
               failed_hint: str) -> None:
    """Undo the base restore and the partial replay from the safety backup; always raises."""
    cause = error.message if isinstance(error, BackupDRError) else describe(error, secrets)
    how = describe_failure(error)
    with open_archive(archive_path, codec=codec) as reader:
        plan = plan_restore(reader.prelude, source_db=source_db, target_db=result.target_db, collections=colls,
                            where=str(archive_path))
    safety_path = None
    if result.safety_backup:
        m = load_manifest(safety_store, BackupId.parse(result.safety_backup))
        safety_path = safety_store.path(m.id.key(m.files[0].name))
    kept = (f"safety backup {result.safety_backup} in {safety_store.describe()}" if result.safety_backup
            else "no safety backup (the target database did not exist)")
    try:
        restored = rollback(client, RestoreState(plan=plan, applier=applier), safety_path)
    except BaseException as rb:  # noqa: BLE001 - reported with the original cause chained
        raise RestoreError(
            f"point-in-time replay into {result.target_db!r} {how} AND the rollback failed: the target may be half-written",
            detail=f"replay: {type(error).__name__}: {cause}; rollback: {type(rb).__name__}: {describe(rb, secrets)}",
            hint=failed_hint,
        ) from error
    raise RestoreRolledBack(
        f"point-in-time replay into {result.target_db!r} {how}; the target was rolled back to its state before the restore",
        detail=f"{type(error).__name__}: {cause}; rolled back: {', '.join(restored) or 'dropped what the restore created'}",
        hint=f"nothing changed on the target; the {kept} is kept. Fix the cause or pick an earlier time",
        signum=interrupted_by(error),
    ) from error
