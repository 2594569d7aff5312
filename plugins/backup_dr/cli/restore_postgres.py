"""``restore postgres``: a PostgreSQL backup onto a database of any server, through its engine.

The engine (:mod:`backup_dr.core.engines.postgresql` over :mod:`backup_dr.core.postgres`)
fetches a copy whose sha256 matches the manifest (next store on a bad copy), refuses a
target that already has the backed-up tables unless ``--replace``, takes a safety dump of
the target, restores in one transaction, compares every table with the manifest (row count
+ content hash) and rolls back from the safety dump on any failure. An empty or new
database (a rebuilt server) needs no ``--replace``.
"""

from __future__ import annotations

from typing import Any

from backup_dr.cli.common import backup_arg, check_restorable, open_policy_stores, refuse_uri, resolve_conn, workdir_arg
from backup_dr.cli.good_copy import with_good_copy
from backup_dr.cli.main import emit, load_policy_arg
from backup_dr.cli.restore_mongo import safety_dir
from backup_dr.core.catalog import Catalog
from backup_dr.core.engines import engine_for
from backup_dr.core.errors import TargetNotEmpty
from backup_dr.core.restores.workdirs import sweep_stale, work_dir

COMMAND = "postgres"


def run(args) -> int:
    policy = load_policy_arg(args)
    workdir = workdir_arg(args.workdir)
    sweep_stale(workdir)
    refuse_uri(args.to, "--to")
    conn = resolve_conn(args.to, flag="--to")
    stores = open_policy_stores(policy, [args.from_store] if args.from_store else None)
    entry = backup_arg(args, policy, Catalog(stores.opened), COMMAND, "restore postgres")
    manifest = entry.manifest()
    check_restorable(manifest, COMMAND, "restore postgres")
    engine = engine_for(manifest)
    safety = safety_dir(args.safety_dir, policy)
    with work_dir("backup-dr-restore-", workdir) as tmp:
        try:
            result, attempts = with_good_copy(entry, stores, args.from_store, policy, lambda store, m: engine.restore(
                conn, store, m, workdir=tmp, safety_dir=safety, target_db=args.db, replace=args.replace))
        except TargetNotEmpty as e:
            raise TargetNotEmpty(e.message, detail="nothing was changed on the target",
                                 hint="restore into another (empty) database with --db NAME, or pass --replace "
                                      "(a safety dump of the target is taken first and put back if anything fails)") from None
    data = {"ok": True, "backup_id": entry.backup_id, **attempts.as_dict(), "recovery_point": manifest.consistent_point,
            "restore": result.as_dict()}
    emit(args, data, _text)
    return 0


def _text(d: dict[str, Any]) -> str:
    r = d["restore"]
    lines = [f"restored {d['backup_id']} from store {d['store']} into {r['target']}",
             f"  {r['tables']} table(s), {r['rows']} row(s) in {r['seconds']:.1f}s; every table equals the backup "
             "(row count + content hash)"]
    for s in d["fell_back_from"]:
        lines.append(f"  note: the copy in {s['store']} failed verification ({s['reason']}); used {d['store']} instead")
    if (d.get("recovery_point") or {}).get("time"):
        lines.append(f"  recovery point: {d['recovery_point']['time']}")
    lines.append(f"  safety dump of the target's previous state: {r['safety_backup']} in {r['safety_dir']}")
    return "\n".join(lines)
