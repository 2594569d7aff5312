"""``restore mongo``: the safe MongoDB restore (safety backup, validate, roll back) from a good copy.

A backup id (or ``latest``) restores that full backup through
:func:`backup_dr.core.mongo.backup.restore_mongodb`. ``--at`` restores to a point in time
through :func:`backup_dr.core.pitr.restore_to_time`; the time is parsed and checked here
first, so a typo never waits for a download.
"""

from __future__ import annotations

import logging
import os
import sys
import re
from dataclasses import asdict, is_dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from backup_dr.cli.common import (UsageError, backup_arg, check_restorable, fmt_bytes, local_store, open_policy_stores,
                                  resolve_conn, source_for, workdir_arg)
from backup_dr.cli.good_copy import with_good_copy
from backup_dr.cli.main import emit, load_policy_arg
from backup_dr.cli.restore_journal_cmd import journal_root
from backup_dr.cli.targets import check_mongo_conn, mongo_client
from backup_dr.core.catalog import Catalog
from backup_dr.core.errors import TargetNotEmpty
from backup_dr.core.mongo.backup import restore_mongodb
from backup_dr.core.mongo.interrupted import Journaling
from backup_dr.core.restores.workdirs import sweep_stale, work_dir

log = logging.getLogger("backup_dr.cli")

_BAD_DB = re.compile(r'[/\\. "$\x00]')


def parse_at(text: str, policy, now: datetime | None = None):
    """``--at`` by the one rule for typed times (:func:`backup_dr.core.times.parse_user_time`: an
    offset, or the policy's time zone when ``defaults.naive_times: policy_timezone``, or
    ``Timestamp(t, i)``), as a usage error (exit 2), plus a refusal of times in the future.
    Returns the :class:`~backup_dr.core.times.UserTime` (``.at`` goes to the PITR engine)."""
    from backup_dr.core.times import BadTimeInput, TimeRule, parse_user_time

    now = now or datetime.now(timezone.utc)
    try:
        typed = parse_user_time(text, TimeRule.of(policy), what="--at", allow_timestamp=True)
    except BadTimeInput as e:
        raise UsageError(e.message, detail=e.detail, hint=e.hint) from None
    if typed.utc.timestamp() > now.timestamp():
        raise UsageError(f"--at {text!r} is in the future ({typed.echo()}; now {now:%Y-%m-%dT%H:%M:%SZ})")
    return typed


def safety_dir(given: str | None, policy) -> str:
    """Where the safety backup of the target goes: ``--safety-dir``, else the local store, else ./backup-dr-safety."""
    if given:
        path = Path(given)
    else:
        local = local_store(policy)
        path = local.root if local is not None and os.access(local.root, os.W_OK) else Path.cwd() / "backup-dr-safety"
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise UsageError(f"safety backup directory {path} cannot be created: {e.strerror}", hint="pass --safety-dir DIR") from None
    return str(path)


def _as_dict(result: Any) -> dict[str, Any]:
    if isinstance(result, dict):
        return result
    if hasattr(result, "as_dict"):
        return result.as_dict()
    return asdict(result) if is_dataclass(result) else dict(vars(result))


def _check_selection(manifest, collections: list[str] | None) -> None:
    if not collections:
        return
    have = set(manifest.counts) | set((manifest.details.get("collections") or {}))
    missing = [c for c in collections if c not in have]
    if missing:
        raise UsageError(f"backup {manifest.backup_id} has no collection(s) {', '.join(missing)}",
                         hint=f"it holds: {', '.join(sorted(have)) or 'nothing'}")


def run(args) -> int:
    if bool(args.backup) == bool(args.at):
        raise UsageError("give a backup id (or 'latest') OR --at TIME, not both and not neither",
                         hint="python -m backup_dr restore mongo latest --to CONN_ID  |  restore mongo --at 2026-11-26T08:00:00Z --to CONN_ID")
    if args.db is not None and (not args.db or _BAD_DB.search(args.db)):
        raise UsageError(f"--db {args.db!r} is not a valid database name")
    collections = [c.strip() for c in args.collections.split(",") if c.strip()] if args.collections else None
    policy = load_policy_arg(args)
    at = parse_at(args.at, policy) if args.at else None
    if at is not None:  # said back before anything is opened, fetched or changed
        sys.stderr.write(f"point in time: {at.echo()}\n")
        sys.stderr.flush()
    workdir = workdir_arg(args.workdir)
    sweep_stale(workdir)  # what a killed earlier restore left in the temp dir
    conn = resolve_conn(args.to, flag="--to")
    check_mongo_conn(conn)
    stores = open_policy_stores(policy, [args.from_store] if args.from_store else None)
    if at is not None:
        return _run_pitr(args, policy, stores, conn, at, collections, workdir)
    entry = backup_arg(args, policy, Catalog(stores.opened), "mongo", "restore mongo")
    manifest = entry.manifest()
    check_restorable(manifest, "mongo", "restore mongo")
    _check_selection(manifest, collections)
    safety = safety_dir(args.safety_dir, policy)
    log.info("restoring %s into MongoDB connection %s%s", entry.backup_id, conn.conn_id, f" database {args.db}" if args.db else "")
    journaling = Journaling(dir=journal_root(policy), conn_id=conn.conn_id)
    with mongo_client(conn) as client, work_dir("backup-dr-restore-", workdir) as tmp:
        try:
            result, attempts = with_good_copy(
                entry, stores, args.from_store, policy,
                lambda store, m: restore_mongodb(client, store, m, workdir=tmp, safety_dir=safety, target_db=args.db,
                                                 collections=collections, drop=args.drop, secrets=conn.secrets,
                                                 journaling=journaling))
        except TargetNotEmpty as e:
            raise _in_cli_terms(e) from None
    data = {"ok": True, "backup_id": entry.backup_id, "target": {"conn_id": conn.conn_id, "database": result.target_db},
            **attempts.as_dict(), "recovery_point": manifest.consistent_point, "restore": _as_dict(result)}
    emit(args, data, _human)
    return 0


def _in_cli_terms(e: TargetNotEmpty) -> TargetNotEmpty:
    """The core's hint names API arguments (target_db, drop=True); say it in CLI flags."""
    return TargetNotEmpty(e.message, detail="nothing was changed on the target",
                          hint="restore into another database with --db NAME, or pass --drop to replace them "
                               "(their current content is kept as a safety backup first)")


def _run_pitr(args, policy, stores, conn, typed, collections, workdir) -> int:
    """Hand over to :func:`backup_dr.core.pitr.restore_to_time` with the stores in preference
    order (only ``--from-store`` when given); ``typed.at`` is an aware UTC datetime (that whole
    second) or a ``bson.Timestamp`` (that exact entry)."""
    from backup_dr.core.pitr import restore_to_time  # only this command needs the PITR engine

    source = policy.sources[source_for(policy, args.source, "mongo", "restore mongo --at")]
    ordered = dict(stores.opened)
    if args.from_store:
        ordered = {args.from_store: ordered[args.from_store]}
    safety = safety_dir(args.safety_dir, policy)
    journaling = Journaling(dir=journal_root(policy), conn_id=conn.conn_id)
    with mongo_client(conn) as client, work_dir("backup-dr-pitr-", workdir) as tmp:
        try:
            result = restore_to_time(client, ordered, policy, source, typed.at, target_db=args.db, collections=collections,
                                     drop=args.drop, workdir=tmp, safety_dir=safety, secrets=conn.secrets,
                                     backup_class=args.backup_class, journaling=journaling)
        except TargetNotEmpty as e:
            raise _in_cli_terms(e) from None
    data = {"ok": True, "at": typed.as_dict(), "target": {"conn_id": conn.conn_id, "database": args.db or source.database},
            "restore": result.as_dict()}
    emit(args, data, _pitr_text)
    return 0


def _pitr_text(d: dict[str, Any]) -> str:
    r = d["restore"]
    lines = [f"restored {d['target']['conn_id']} database {r.get('target_db')} to {r.get('requested')} ({r.get('mode')})",
             f"  base {r['base_backup']} (from {r.get('base_store')}), then {r.get('slices')} oplog slice(s), "
             f"{r.get('replayed_entries')} entries replayed until {r.get('replayed_until')}",
             f"  documents restored: {r.get('documents_restored')}; validation: {'OK' if r.get('validated') else 'not run'}"]
    lines.append(f"  safety backup of the previous data: {r['safety_backup']} in {r.get('safety_dir')}" if r.get("safety_backup")
                 else "  no safety backup needed (the target database did not exist)")
    return "\n".join(lines)


def _human(d: dict[str, Any]) -> str:
    r = d["restore"]
    lines = [f"restored {d['backup_id']} from store {d['store']} into {d['target']['conn_id']} database {d['target']['database']}"]
    for s in d["fell_back_from"]:
        lines.append(f"  note: the copy in {s['store']} failed verification ({s['reason']}); used {d['store']} instead")
    lines.append(f"  documents: {sum(r['inserted'].values())} ({fmt_bytes(r['inserted_bytes'])}) in {r['seconds']:.1f}s")
    for name, n in r["inserted"].items():
        exp = r["expected_counts"].get(name)
        lines.append(f"    {name}: {n} from the archive" + (f", {exp} after the oplog replay" if exp is not None and exp != n else ""))
    if r.get("oplog", {}).get("entries"):
        lines.append(f"  oplog replayed: {r['oplog']['entries']} entries (consistent at the backup's end point)")
    lines.append(f"  validation: {'OK' if r.get('validation', {}).get('ok') else 'not run'}")
    end = d["recovery_point"].get("end_time") if d["recovery_point"] else None
    if end:
        lines.append(f"  recovery point: {end}")
    if r.get("safety_backup"):
        lines.append(f"  safety backup of the previous data: {r['safety_backup']} in {r['safety_dir']}")
    else:
        lines.append("  no safety backup needed (the target database did not exist)")
    return "\n".join(lines)
