"""``prune``: apply the per-class retention; a plan with every decision and its reason first.

Deleting needs ``--yes``: a plain ``prune`` shows the plan and refuses (exit 2), so a
mistyped command never deletes. Every store of the policy is needed for the plan because a
verification record in one store keeps a backup in another ("newest verified" rule); with
``--store`` only the named stores are pruned (the others are still read when reachable).
"""

from __future__ import annotations

import argparse
from datetime import timedelta
from typing import Any

from backup_dr.cli.common import UsageError, fmt_bytes, open_policy_stores, unknown_in_policy
from backup_dr.cli.main import EXIT_FAILED, EXIT_OK, EXIT_USAGE, emit, load_policy_arg
from backup_dr.core.artifacts.layout import BackupId
from backup_dr.core.durations import parse_duration
from backup_dr.core.retention import DEFAULT_GRACE, PrunePlan, execute_prune, plan_prune

_EPILOG = """\
examples:
  python -m backup_dr prune --dry-run                       # every decision with its reason; deletes nothing
  python -m backup_dr prune --class operational_data --dry-run
  python -m backup_dr prune --class operational_data --yes  # delete what the plan says
"""


def register(sub, common) -> None:
    p = sub.add_parser(
        "prune", parents=[common], formatter_class=argparse.RawDescriptionHelpFormatter, epilog=_EPILOG,
        help="apply retention: --dry-run shows the plan, --yes deletes",
        description="Plan retention per class and store (keep-within, GFS, newest, newest verified, PITR chain bases; "
                    "incomplete backups past a grace period are garbage), print every decision and its reason, and "
                    "with --yes delete (manifest first, Object-Locked objects skipped).",
    )
    p.add_argument("--class", dest="backup_class", metavar="C", help="only this class's backups")
    p.add_argument("--store", action="append", metavar="NAME", help="only delete from these stores (repeatable)")
    mode = p.add_mutually_exclusive_group()
    mode.add_argument("--dry-run", action="store_true", help="print the plan; delete nothing")
    mode.add_argument("--yes", action="store_true", help="really delete what the plan says")
    p.add_argument("--grace", metavar="DURATION", default=None,
                   help=f"age after which an incomplete backup is garbage (default {int(DEFAULT_GRACE.total_seconds() // 3600)}h)")
    p.set_defaults(func=run)


def _only(plan: PrunePlan, backup_class: str | None, stores: list[str] | None) -> PrunePlan:
    keep = [d for d in plan.decisions
            if (backup_class is None or BackupId.parse(d.backup_id).backup_class == backup_class)
            and (not stores or d.store in stores)]
    return PrunePlan(now=plan.now, grace=plan.grace, decisions=keep)


def run(args) -> int:
    policy = load_policy_arg(args)
    if args.backup_class is not None and args.backup_class not in policy.classes:
        raise unknown_in_policy(policy, "classes", args.backup_class, "class")  # its retention is what prune needs
    try:
        grace = parse_duration(args.grace) if args.grace else DEFAULT_GRACE
    except ValueError as e:
        raise UsageError(f"--grace: {e}") from None
    if grace < timedelta(hours=1):
        raise UsageError(f"--grace {args.grace} is shorter than 1h: a backup still being written could be deleted")
    stores = open_policy_stores(policy, args.store)
    if not args.store and stores.unavailable:
        raise UsageError("prune needs every store of the policy; not available: "
                         + "; ".join(f"{n}: {why}" for n, why in stores.unavailable.items()),
                         hint="fix their connections, or pass --store NAME to prune only the stores you can reach")
    if args.store:  # read the others too when reachable: their verification records protect backups
        others = open_policy_stores(policy, None) if len(stores.opened) < len(policy.stores) else stores
        readable = {**others.opened, **stores.opened}
    else:
        readable = stores.opened
    plan = _only(plan_prune(readable, policy, grace=grace), args.backup_class, args.store)
    data: dict[str, Any] = {"mode": "dry-run" if args.dry_run else "delete" if args.yes else "refused", **plan.to_dict()}
    deletions = plan.deletions()
    if not deletions:
        emit(args, {**data, "mode": "dry-run" if args.dry_run else "nothing-to-delete"},
             lambda d: plan.render() + "\nnothing to delete")
        return EXIT_OK
    if not args.yes:
        if not args.dry_run:
            data["refused"] = f"not deleting {len(deletions)} backup(s) without --yes"
        emit(args, data, lambda d: plan.render() + ("" if args.dry_run else
             f"\nrefused: this would delete {len(deletions)} backup(s) ({fmt_bytes(sum(x.size for x in deletions))}); "
             "re-run with --yes to delete, or --dry-run to only look"))
        return EXIT_OK if args.dry_run else EXIT_USAGE
    result = execute_prune(plan, stores.opened, raise_on_failure=False)
    data["result"] = result
    emit(args, data, lambda d: plan.render() + (
        f"\ndeleted {len(result['deleted'])} backup(s), {fmt_bytes(result['bytes_freed'])} freed; "
        f"{len(result['locked'])} object(s) under Object Lock skipped; {len(result['skipped'])} skipped; "
        f"{len(result['failed'])} failed" + "".join(f"\n  FAILED {f['store']}:{f['backup_id']}: {f['error']}" for f in result["failed"])))
    return EXIT_FAILED if result["failed"] else EXIT_OK
