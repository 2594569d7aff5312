"""Archive one oplog slice: the job the ``pitr_oplog_archive`` DAG runs every interval.

Where the slice starts:

* the END of the newest slice (the chain continues, whatever full backups happened since);
* no slice yet: the consistent end point of the newest full backup of the class/source
  (no full backup at all: nothing is invented; the result says so and asks for one);
* the oplog rolled past the newest slice's end (a gap): the end point of the newest full
  backup taken AFTER it, starting a new chain (``previous_id`` None); none yet: the result
  reports the gap and asks for a full backup, and no slice is written.

One member is read for the whole run (chosen once by the source's read preference, then a
direct connection: :mod:`backup_dr.core.mongo.member`); the slice ends at that member's
majority-committed position (:func:`backup_dr.core.mongo.oplog.safe_position`), even when the
protected database was quiet: the chain still advances, so "restore to 14:30" stays
possible after an hour without writes.

Gaps, each reported once (a marker under the gap's position, see :mod:`.chain`): (a) the
oldest oplog entry is newer than the position the chain must continue from; (b) a hole in
the chain (a slice missing from every store, or a slice that does not join its predecessor).
A hole does not stop archiving: the chain goes on from its newest slice, and restores from
full backups after the hole still work. The caller alerts and triggers the full backup.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any, Mapping

from bson.timestamp import Timestamp

from backup_dr.core.artifacts.layout import BackupId, utc
from backup_dr.core.artifacts.manifest import Manifest, iso
from backup_dr.core.artifacts.writer import ArtifactWriter
from backup_dr.core.crypto.keys import encryption_for_class
from backup_dr.core.catalog import Catalog
from backup_dr.core.errors import PolicyError, SourceError
from backup_dr.core.mongo.codecs import compressed_writer
from backup_dr.core.mongo.dump import read_preference
from backup_dr.core.mongo.member import pinned_member
from backup_dr.core.mongo.mongo_errors import translate
from backup_dr.core.mongo.oplog import OplogRolledOver, oldest_ts, safe_position, ts_dict
from backup_dr.core.pitr.chain import MISSING, ROLLOVER, ChainState, FullInfo, break_key, known_breaks, load_chain, record_break
from backup_dr.core.pitr.points import second_iso, ts_text
from backup_dr.core.pitr.slices import SLICE_FORMAT, copy_entries, slice_codec, slice_file_name
from backup_dr.core.policy_model import MongoSource, PitrSpec, Policy
from backup_dr.core.stores.base import Store
from backup_dr.core.stores.local import LocalStore

log = logging.getLogger(__name__)


@dataclass
class SliceResult:
    """What one archive run did. ``gap``: a gap is (still) open; ``new_gap``: found by THIS run."""

    backup_class: str
    source: str
    status: str  # archived | present | gap | no_full_backup
    message: str
    backup_id: str | None = None
    manifest: Manifest | None = None
    gap: bool = False
    new_gap: bool = False
    needs_full_backup: bool = False
    gaps: list[dict[str, Any]] = field(default_factory=list)
    trigger_run_id: str | None = None

    def as_dict(self) -> dict[str, Any]:
        m = self.manifest
        return {
            "backup_class": self.backup_class, "source": self.source, "status": self.status, "message": self.message,
            "backup_id": self.backup_id, "gap": self.gap, "new_gap": self.new_gap,
            "needs_full_backup": self.needs_full_backup, "gaps": self.gaps, "trigger_run_id": self.trigger_run_id,
            "entries": (m.counts or {}).get("entries") if m else None,
            "consistent_point": m.consistent_point if m else None,
            "previous_id": m.previous_id if m else None,
            "chain_id": (m.details or {}).get("chain_id") if m else None,
            "size_bytes": m.total_size if m else None,
        }


def pitr_spec(policy: Policy, source: str) -> PitrSpec:
    spec = policy.pitr.get(source)
    if spec is None:
        raise PolicyError([(f"pitr.{source}", f"no point-in-time recovery is configured for source {source!r}"
                            f" (configured: {', '.join(sorted(policy.pitr)) or 'none'})")])
    return spec


def archive_slice(client, policy: Policy, source: str, local: LocalStore, stores: Mapping[str, Store], run_after: datetime,
                  *, secrets: list[str] | None = None) -> SliceResult:
    """Archive the next slice of ``source``'s chain into ``local``; see the module doc.

    :param stores: where existing slices and full backups are looked for (the PITR stores and
        the class's staging store); gap markers are written to each of them.
    """
    spec = pitr_spec(policy, source)
    src = policy.sources[source]
    if not isinstance(src, MongoSource):
        raise PolicyError([(f"pitr.{source}", "point-in-time recovery needs a MongoDB source")])
    cls = policy.classes[spec.backup_class]
    bid = BackupId.new(cls.name, src.name, "oplog", run_after)
    writer = ArtifactWriter(local, bid, source_type="mongodb", retention=cls.retention, run_after=run_after,
                            encryption=encryption_for_class(cls))  # slices are as confidential as the full backups
    base = SliceResult(cls.name, src.name, "archived", "")
    done = writer.existing()
    if done is not None:
        base.status, base.backup_id, base.manifest = "present", done.backup_id, done
        base.message = f"slice {done.backup_id} already archived by an earlier attempt"
        return base
    all_stores = {local.name: local, **dict(stores)}
    state = load_chain(Catalog(all_stores), cls.name, src.name,
                       kept_since=datetime.now(timezone.utc) - cls.retention.keep_within + spec.interval)
    breaks = known_breaks(all_stores, cls.name, src.name)
    rp = read_preference(src.read_preference)
    with translate(f"archiving the oplog of {src.database!r}", secrets=secrets), \
            pinned_member(client, rp, what=f"oplog slice {bid}") as member:
        member_client = member.client
        for hole in state.holes:
            _gap(base, all_stores, breaks, MISSING, hole.start, hole.reason, run_after, None, needs_full=True)
        start, previous, chain_id, started_from = _chain_start(state, base, member_client, all_stores, breaks, run_after)
        if start is None:
            return base
        end, name = safe_position(member_client)
        if end < start:
            raise SourceError(f"the member read ({name or member.address}) is behind the chain: its position "
                              f"{ts_text(end)} < {ts_text(start)}", hint="a lagging secondary; the task retries")
        codec = slice_codec(src.compression)
        writer.begin()
        try:
            try:
                with writer.open_file(slice_file_name(codec), codec=codec, format=SLICE_FORMAT) as out, \
                        compressed_writer(out, codec) as stream:
                    read = copy_entries(member_client, src.database, start, end, stream, member=name or member.address,
                                        label=f"oplog slice {bid}")
            except OplogRolledOver as rolled:  # DURING the read: the slice may lack entries
                writer.abort()
                _gap(base, all_stores, breaks, ROLLOVER, start, _rollover_reason(start, rolled.oldest), run_after, chain_id,
                     needs_full=True)
                base.status = "gap"
                base.message = (f"the oplog rolled over while slice {bid} was read, so it may lack entries: not kept; "
                                "a new full backup starts a new chain")
                return base
            details = {"database": src.database, "chain_id": chain_id, "first_ts": ts_dict(read.first_ts),
                       "last_ts": ts_dict(read.last_ts), "member": read.member, "read_preference": src.read_preference,
                       "compression": codec, "bytes": read.bytes, "started_from": started_from}
            manifest = writer.commit(
                consistent_point={"start": ts_dict(start), "end": ts_dict(end), "start_time": second_iso(start.time),
                                  "end_time": second_iso(end.time)},
                counts={"entries": read.entries}, details=details, previous_id=previous)
        except BaseException:
            writer.abort()
            raise
    base.backup_id, base.manifest = manifest.backup_id, manifest
    base.message = (f"slice {manifest.backup_id}: {read.entries} entries of {src.database} in ({ts_text(start)}, {ts_text(end)}]"
                    + (f", continuing {previous}" if previous else f", first of chain {chain_id}"))
    if base.gap:
        base.status = "archived_with_gap"
        base.message += "; GAP: " + "; ".join(g["reason"] for g in base.gaps if g["new"])
    log.info("%s", base.message)
    return base


def _chain_start(state: ChainState, result: SliceResult, client, stores, breaks, run_after):
    """(start, previous_id, chain_id, started_from) for the next slice, or (None, ...) after
    recording why there is none (gap / no full backup) on ``result``."""
    tip = state.tip
    oldest = oldest_ts(client)
    if tip is not None and (oldest is None or oldest <= tip.end):
        return tip.end, tip.backup_id, tip.chain_id, tip.backup_id
    base = _newest_full_after(state, tip.end if tip is not None else None)
    if tip is not None:  # the oplog no longer reaches the chain's end: the writes after it are lost
        _gap(result, stores, breaks, ROLLOVER, tip.end, _rollover_reason(tip.end, oldest), run_after, tip.chain_id,
             needs_full=base is None)
    if base is None:
        result.needs_full_backup = True
        if tip is None:
            result.status = "no_full_backup"
            result.message = (f"no full backup of {state.backup_class}/{state.source} with an oplog end point exists yet: the "
                              "chain starts at the first one's consistent end point; triggering it")
            result.trigger_run_id = f"pitr_first_full__{utc(run_after):%Y%m%dT%H}"
        else:
            result.status = "gap"
            result.message = (f"PITR chain of {state.backup_class}/{state.source} is broken at {ts_text(tip.end)} "
                              f"({second_iso(tip.end.time)}); waiting for a full backup taken after it to start a new chain")
        log.warning("%s", result.message)
        return None, None, None, None
    if oldest is not None and oldest > base.end:
        _gap(result, stores, breaks, ROLLOVER, base.end, _rollover_reason(base.end, oldest), run_after, None, needs_full=True)
        result.status = "gap"
        result.message = (f"the oplog no longer reaches back to the end point of full backup {base.backup_id}; a new "
                          "full backup is needed (and a larger oplog: it rolls over faster than one slice interval)")
        log.error("%s", result.message)
        return None, None, None, None
    chain_id = base.backup_id  # a chain is named after its base; a base never starts two chains
    log.info("starting PITR chain %s at the end point %s of full backup %s", chain_id, ts_text(base.end), base.backup_id)
    return base.end, None, chain_id, base.backup_id


def _newest_full_after(state: ChainState, after: Timestamp | None) -> FullInfo | None:
    candidates = [f for f in state.fulls if after is None or f.end > after]
    return candidates[-1] if candidates else None


def _rollover_reason(position: Timestamp, oldest: Timestamp | None) -> str:
    return (f"the oplog rolled over: its oldest entry is {ts_text(oldest)} ({second_iso(oldest.time)}), newer than "
            f"{ts_text(position)} ({second_iso(position.time)}) where the chain must continue; the writes in between are lost")


def _gap(result: SliceResult, stores: Mapping[str, Store], breaks: dict, kind: str, position: Timestamp, reason: str,
         run_after: datetime, chain_id: str | None, *, needs_full: bool) -> None:
    """Record a gap on the result; its marker is written (and the gap flagged new, to alert)
    the first time it is seen. ``needs_full``: only a new full backup can bridge it, so one
    is asked for on every run until it exists (the trigger's run id is the gap's, so one run)."""
    key = break_key(result.backup_class, result.source, kind, position)
    new = key not in breaks
    record = {"kind": kind, "backup_class": result.backup_class, "source": result.source, "position": ts_dict(position),
              "position_time": second_iso(position.time), "reason": reason, "chain_id": chain_id,
              "detected_at": iso(datetime.now(timezone.utc)), "run_after": iso(run_after)}
    if new:
        record["written_to"] = record_break(stores.values(), key, record)
        breaks[key] = record
        log.error("PITR GAP (%s) in %s/%s: %s", kind, result.backup_class, result.source, reason)
    else:
        record = breaks[key]
    result.gaps.append({**record, "marker": key, "new": new})
    if not new and not (kind == ROLLOVER and needs_full):
        return  # known, and bridged or not blocking: alerted when found; the chain goes on
    result.gap = True
    result.new_gap = result.new_gap or new
    if needs_full:
        result.needs_full_backup = True
        if result.trigger_run_id is None or new:
            result.trigger_run_id = f"pitr_gap__{kind}_{position.time}_{position.inc}"
