"""``verify <id>``: re-hash every copy of a backup; optionally restore it into a scratch target.

Why each copy is checked against ITS OWN manifest and then the manifests against each
other: a copy is only usable if its own manifest describes its bytes, and two stores
whose manifests disagree means one was tampered with or belongs to another run, which
the operator must hear about before trusting either.
"""

from __future__ import annotations

import argparse
from typing import Any

from backup_dr.cli.common import find_backup, fmt_bytes, open_policy_stores, scrub, workdir_arg
from backup_dr.cli.drill import run_drill, scratch_conn_id
from backup_dr.cli.main import EXIT_FAILED, EXIT_OK, emit, load_policy_arg
from backup_dr.core.artifacts.reader import load_manifest
from backup_dr.core.catalog import Catalog
from backup_dr.core.engines import engine_for
from backup_dr.core.errors import BackupDRError
from backup_dr.core.verify import record_verification, verify_copy

_EPILOG = """\
examples:
  python -m backup_dr verify critical_data.mongodb.full.20261126T080000Z
  python -m backup_dr verify critical_data.mongodb.full.20261126T080000Z --store s3 --store gcs
  python -m backup_dr verify critical_data.mongodb.full.20261126T080000Z --scratch --scratch-conn mongo_scratch
  python -m backup_dr verify operational_data.redis_cache.rdb.20261126T020000Z --scratch   # a fresh local redis-server

exit 1 when any copy is bad (the message names the stores holding a good copy) or the scratch restore failed.
"""


def register(sub, common) -> None:
    p = sub.add_parser(
        "verify", parents=[common], formatter_class=argparse.RawDescriptionHelpFormatter, epilog=_EPILOG,
        help="re-hash every copy of a backup (and restore it to scratch with --scratch)",
        description="Re-read every file of the backup in every store holding it (or the named stores) and compare "
                    "size and sha256 with the manifest. Each result is kept as a verification record next to the "
                    "backup (--no-record to only read). --scratch also restores a good copy into a scratch target "
                    "(MongoDB: ops.drill_scratch.mongodb_conn_id or --scratch-conn; PostgreSQL: a fresh database on "
                    "ops.drill_scratch.postgresql_conn_id or --scratch-conn; Redis: a fresh local redis-server; "
                    "files/git: a temp directory) and records a drill.",
    )
    p.add_argument("backup_id", help="<class>.<source>.<kind>.<YYYYMMDDTHHMMSSZ>")
    p.add_argument("--store", action="append", metavar="NAME", help="only these stores (repeatable; a named store "
                   "without the backup counts as a bad copy)")
    p.add_argument("--scratch", action="store_true", help="also restore a good copy into a scratch target (a drill)")
    p.add_argument("--scratch-conn", metavar="CONN_ID", help="MongoDB or PostgreSQL scratch server (default: the "
                   "policy's ops.drill_scratch.<type>_conn_id); never a production source")
    p.add_argument("--no-record", action="store_true", help="do not write verification/drill records (read-only access)")
    p.add_argument("--workdir", metavar="DIR", help="where downloaded copies are hashed and restored (default: system temp)")
    p.set_defaults(func=run)


def _cross_check(manifests: dict[str, Any]) -> dict[str, str]:
    """Stores whose manifest lists other files than the majority's: {store: problem}."""
    groups: dict[frozenset, list[str]] = {}
    for name, m in manifests.items():
        groups.setdefault(frozenset((f.name, f.size, f.sha256) for f in m.files), []).append(name)
    if len(groups) < 2:
        return {}
    ranked = sorted(groups.values(), key=len, reverse=True)
    majority = ranked[0] if len(ranked[0]) > len(ranked[1]) else []
    return {name: f"manifest.json lists other files than the copy in {', '.join(majority) or 'the other stores'}"
            for members in ranked for name in members if name not in majority}


def run(args) -> int:
    policy = load_policy_arg(args)
    workdir = workdir_arg(args.workdir)
    conn_id = None
    stores = open_policy_stores(policy, args.store)
    entry = find_backup(Catalog(stores.opened), args.backup_id)
    if args.scratch and entry.bid.source in policy.sources:
        conn_id = scratch_conn_id(policy, engine_for(policy.sources[entry.bid.source]), args.scratch_conn)  # before any long work
    check = list(args.store) if args.store else [n for n in stores.opened if n in entry.copies]
    results: dict[str, dict[str, Any]] = {}
    manifests = {}
    for name in check:
        store = stores.opened[name]
        try:
            results[name] = verify_copy(store, entry.bid)
        except BackupDRError as e:  # transient I/O: the copy's state is unknown, not bad
            results[name] = {"store": name, "ok": False, "problems": [f"could not be read: {scrub(e.message)}"], "unreadable": True}
            continue
        if name in entry.complete_in:
            try:
                manifests[name] = load_manifest(store, entry.bid)
            except BackupDRError:
                pass
    for name, problem in _cross_check(manifests).items():
        results[name]["ok"] = False
        results[name]["problems"].append(problem)
    if not args.no_record:
        for name, res in results.items():
            if name in manifests and not res.get("unreadable"):
                try:
                    record_verification(stores.opened[name], entry.bid, {k: v for k, v in res.items() if k != "store"})
                except BackupDRError as e:
                    res.setdefault("warnings", []).append(f"record not written: {scrub(e.message)}")
    good = [n for n, r in results.items() if r["ok"]]
    bad = [n for n, r in results.items() if not r["ok"]]
    absent = [n for n in stores.opened if n not in results and n in (policy.classes[entry.bid.backup_class].stores
                                                                     if entry.bid.backup_class in policy.classes else ())]
    drill = None
    if args.scratch:
        if good:
            drill = run_drill(manifests.get(good[0]) or entry.manifest(), stores.opened[good[0]], policy,
                              conn_id=conn_id, workdir=workdir, record=not args.no_record)
        else:
            drill = {"ok": False, "problems": ["no good copy to restore from"], "store": None}
    ok = not bad and bool(good) and (drill is None or drill["ok"])
    data = {"backup_id": entry.backup_id, "ok": ok, "good_stores": good, "bad_stores": bad, "absent_from": absent,
            "unavailable_stores": stores.unavailable,
            "copies": {n: {k: r.get(k) for k in ("ok", "problems", "bytes", "seconds", "files", "warnings", "location")}
                       for n, r in results.items()},
            "drill": drill}
    emit(args, data, _human)
    return EXIT_OK if ok else EXIT_FAILED


def _human(d: dict[str, Any]) -> str:
    lines = [f"verify {d['backup_id']}"]
    for name, r in d["copies"].items():
        state = "OK " if r["ok"] else "BAD"
        size = f"{fmt_bytes(r.get('bytes'))} in {r.get('seconds')}s" if r.get("seconds") is not None else ""
        lines.append(f"  {state} {name:8} {size}" + ("" if r["ok"] else ": " + "; ".join(r.get("problems") or [])))
        for w in r.get("warnings") or []:
            lines.append(f"      warning: {w}")
    for name in d["absent_from"]:
        lines.append(f"  --  {name:8} holds no copy (the class keeps one there: redundancy below policy)")
    for name, why in d["unavailable_stores"].items():
        lines.append(f"  ??  {name:8} not checked: {why}")
    if d["drill"] is not None:
        dr = d["drill"]
        if dr["ok"]:
            lines.append(f"  scratch restore from {dr['store']}: OK in {dr['restore_seconds']}s"
                         + (f" (RTO {dr['rto_seconds']:.0f}s)" if dr.get("rto_seconds") else ""))
        else:
            lines.append(f"  scratch restore{' from ' + dr['store'] if dr.get('store') else ''}: FAILED: " + "; ".join(dr["problems"]))
    if d["bad_stores"]:
        lines.append(f"result: BAD copy in {', '.join(d['bad_stores'])}; "
                     + (f"good copy in {', '.join(d['good_stores'])} (restore with --from-store {d['good_stores'][0]})"
                        if d["good_stores"] else "NO good copy in any checked store"))
    elif d["ok"]:
        lines.append(f"result: OK: good copy in {', '.join(d['good_stores'])}")
    else:
        lines.append("result: FAILED")
    return "\n".join(lines)
