"""``list`` and ``show``: what backups exist, where, and whether they were proven good.

The stores ARE the catalog (see :mod:`backup_dr.core.catalog`): with Airflow and its
database gone, listing the stores is all it takes to see every backup.
"""

from __future__ import annotations

import argparse
from dataclasses import asdict
from typing import Any

from backup_dr.cli.common import (fmt_age, fmt_bytes, fmt_time, find_backup, open_policy_stores, warn_catalog_errors)
from backup_dr.cli.main import emit, load_policy_arg
from backup_dr.core.artifacts.manifest import parse_iso
from backup_dr.core.catalog import Catalog, data_point
from backup_dr.core.verify import read_record

_RAW = argparse.RawDescriptionHelpFormatter


def register(sub, common) -> None:
    p = sub.add_parser(
        "list", parents=[common], formatter_class=_RAW, help="list backups, newest first",
        description="List complete backups, newest first: id, time taken, size, the stores holding a complete "
                    "copy, and the verification state from verify/drill records.",
        epilog="examples:\n  python -m backup_dr list\n  python -m backup_dr list --class critical_data --limit 5\n"
               "  python -m backup_dr list --source mongodb --kind full --store s3 --json",
    )
    p.add_argument("--class", dest="backup_class", metavar="C", help="only this backup class")
    p.add_argument("--source", metavar="S", help="only this source (e.g. mongodb, redis_cache)")
    p.add_argument("--kind", metavar="K", help="only this kind (full, schema, oplog, rdb, aof, files, bundle, safety)")
    p.add_argument("--store", action="append", metavar="NAME", help="only these stores (repeatable; default: every store)")
    p.add_argument("--limit", type=int, default=50, metavar="N", help="at most N backups (default 50; 0 = all)")
    p.set_defaults(func=run_list)

    s = sub.add_parser(
        "show", parents=[common], formatter_class=_RAW, help="show one backup: manifest, stores, verification",
        description="Show one backup: its manifest (files with size, sha256 and codec; counts; consistent point; "
                    "retention and expiry), which stores hold it, and every verification/drill record.",
        epilog="example:\n  python -m backup_dr show critical_data.mongodb.full.20261126T080000Z",
    )
    s.add_argument("backup_id", help="<class>.<source>.<kind>.<YYYYMMDDTHHMMSSZ>")
    s.add_argument("--store", action="append", metavar="NAME", help="only these stores (repeatable)")
    s.set_defaults(func=run_show)


def _verification_text(v: dict[str, Any]) -> str:
    """The copy checks (``CatalogEntry.verification_state``, the same the UI shows), then the drill."""
    drill = v.get("drill")
    tail = "" if not drill else (f"; drill {'ok' if drill.get('ok') else 'FAILED'} {fmt_age(parse_iso(drill.get('checked_at')))}"
                                 f" from {drill.get('store')}")
    if v["state"] == "never":
        return "copies never checked" + tail
    parts = []
    for store, rec in v["by_store"].items():
        if rec is not None:
            parts.append(f"{store}:{'ok' if rec['ok'] else 'FAILED'}({rec['method']} {fmt_age(parse_iso(rec['checked_at']))})")
    return ("OK " if v["state"] == "verified" else v["state"].upper() + " ") + " ".join(parts) + tail


def run_list(args) -> int:
    policy = load_policy_arg(args)
    stores = open_policy_stores(policy, args.store)
    catalog = Catalog(stores.opened)
    entries = catalog.list(args.backup_class, args.source, args.kind)
    errors = warn_catalog_errors(catalog)
    total = len(entries)
    if args.limit and args.limit > 0:
        entries = entries[: args.limit]
    rows = []
    for e in entries:
        row = e.to_dict(with_verification=False)
        row["partial_in"] = [n for n, c in e.copies.items() if not c.complete]
        row["verification"] = e.verification_state()
        rows.append(row)
    data = {"stores": list(stores.opened), "unavailable_stores": stores.unavailable, "store_errors": errors,
            "total": total, "shown": len(rows), "backups": rows}

    def human(d):
        if not d["backups"]:
            return f"no complete backups match (stores searched: {', '.join(d['stores'])})"
        width = max(len(r["backup_id"]) for r in d["backups"])
        lines = [f"{'BACKUP ID':{width}}  {'CAPTURED AT':20}  {'SIZE':>9}  {'COMPLETE IN':16}  VERIFICATION"]
        for r in d["backups"]:
            where = ",".join(r["complete_in"]) + (f" (partial: {','.join(r['partial_in'])})" if r["partial_in"] else "")
            lines.append(f"{r['backup_id']:{width}}  {r['taken_at'] or '-':20}  {fmt_bytes(r['size']):>9}  {where:16}  "
                         f"{_verification_text(r['verification'])}")
        if d["shown"] < d["total"]:
            lines.append(f"({d['shown']} of {d['total']} shown; --limit 0 for all)")
        for name, why in {**d["unavailable_stores"], **d["store_errors"]}.items():
            lines.append(f"note: store {name} not searched: {why}")
        return "\n".join(lines)

    emit(args, data, human)
    return 0


def run_show(args) -> int:
    policy = load_policy_arg(args)
    stores = open_policy_stores(policy, args.store)
    catalog = Catalog(stores.opened)
    entry = find_backup(catalog, args.backup_id)
    manifest = entry.manifest()
    store_rows: dict[str, Any] = {}
    records: dict[str, list[dict]] = {}
    for name, store in stores.opened.items():
        copy = entry.copies.get(name)
        if copy is None:
            store_rows[name] = {"state": "absent", "location": store.describe()}
            continue
        store_rows[name] = {"state": "complete" if copy.complete else "incomplete (no manifest)", "size": copy.size,
                            "objects": copy.objects, "location": store.describe()}
        recs = [read_record(store, k) for k in copy.verify_keys]
        records[name] = [r for r in recs if r is not None]
    end = data_point(manifest, "end")
    data = {
        "backup_id": entry.backup_id,
        "manifest": asdict(manifest),
        "total_size": manifest.total_size,
        "recovery_point": {"seconds": end[0], "increment": end[1],
                           "time": fmt_time(parse_iso(manifest.consistent_point.get("end_time")) if manifest.consistent_point.get("end_time") else None)},
        "expires_at": manifest.retention.get("expires_at"),
        "stores": store_rows,
        "unavailable_stores": stores.unavailable,
        "verification": records,
    }
    emit(args, data, lambda d: _show_text(d, manifest))
    return 0


def _point(value: Any) -> str:
    """A BSON Timestamp recorded as {"t", "i"} reads as Timestamp(t, i), the form --at accepts."""
    if isinstance(value, dict) and set(value) == {"t", "i"}:
        return f"Timestamp({value['t']}, {value['i']})"
    return str(value)


def _show_text(d: dict[str, Any], m) -> str:
    lines = [f"backup {m.backup_id}",
             f"  class {m.backup_class}   source {m.source} ({m.source_type})   kind {m.kind}   "
             f"format v{m.format_version}, {m.tool.get('name')} {m.tool.get('version')}",
             f"  run_after {m.run_after}   started {m.started_at}   finished {m.finished_at}"]
    if m.consistent_point:
        cp = ", ".join(f"{k}={_point(v)}" for k, v in m.consistent_point.items())
        lines.append(f"  consistent point: {cp}")
    if m.previous_id:
        lines.append(f"  continues: {m.previous_id}")
    if m.retention:
        exp = parse_iso(m.retention.get("expires_at"))
        lines.append(f"  retention: keep {m.retention.get('keep_within')}, expires {fmt_time(exp)} ({fmt_age(exp)})")
    lines.append(f"  files ({len(m.files)}, {fmt_bytes(m.total_size)}):")
    for f in m.files:
        lines.append(f"    {f.name}  {fmt_bytes(f.size)} ({f.size} bytes)  codec {f.codec}  {f.format}  sha256 {f.sha256}"
                     + ("  [encrypted]" if f.encryption else ""))
    if m.counts:
        lines.append("  counts: " + ", ".join(f"{k} {v}" for k, v in m.counts.items()))
    lines.append("  stores:")
    for name, row in d["stores"].items():
        extra = f"  {fmt_bytes(row['size'])}, {row['objects']} object(s)" if "size" in row else ""
        lines.append(f"    {name:8} {row['state']}{extra}  {row['location']}")
    for name, why in d["unavailable_stores"].items():
        lines.append(f"    {name:8} not searched: {why}")
    lines.append("  verification records:")
    any_rec = False
    for name, recs in d["verification"].items():
        for r in recs:
            any_rec = True
            ok = "ok" if r.get("ok") else "FAILED"
            secs = r.get("restore_seconds", r.get("seconds"))
            why = "; ".join(r.get("problems") or [])
            lines.append(f"    {name:8} {r.get('checked_at')}  {r.get('kind')} {ok}"
                         + (f" in {secs}s" if secs is not None else "") + (f": {why}" if why else ""))
    if not any_rec:
        lines.append("    none (python -m backup_dr verify <id> records one)")
    return "\n".join(lines)
