"""``health``: the RPO / health report, from what is actually in the stores (exit 1 if critical).

A store whose connection is not configured on this machine is reported as unreachable
(critical), exactly as a store that does not answer: a break-glass check must not look
healthy because it could not see part of the picture.
"""

from __future__ import annotations

import argparse
from typing import Any

from backup_dr.cli.common import local_store, open_policy_stores
from backup_dr.cli.main import EXIT_FAILED, EXIT_OK, emit, load_policy_arg
from backup_dr.core.health import Finding, check_health, save_report

_EPILOG = """\
examples:
  python -m backup_dr health
  python -m backup_dr health --json --save     # keep the report in the local store (latest.json + a dated copy)

exit 1 when the status is critical (no backup, RPO breached, failed verification or drill, unreachable store,
an interrupted restore: see `python -m backup_dr restore status`).
"""


def register(sub, common) -> None:
    p = sub.add_parser(
        "health", parents=[common], formatter_class=argparse.RawDescriptionHelpFormatter, epilog=_EPILOG,
        help="RPO / health report (exit 1 if critical)",
        description="For every class and source: the newest complete backup per store and its age against the RPO, "
                    "verification state, the last restore drill against the RTO, store reachability and free space.",
    )
    p.add_argument("--save", action="store_true", help="save the report in the policy's local store")
    p.set_defaults(func=run)


def run(args) -> int:
    policy = load_policy_arg(args)
    stores = open_policy_stores(policy)
    from backup_dr.core.pitr.health import pitr_health_check  # imported late: only `health` needs it
    from backup_dr.core.restores.health import interrupted_restores_check

    report = check_health(policy, stores.opened, unavailable=stores.unavailable,
                          extra_checks=[pitr_health_check, interrupted_restores_check])
    for name, roots in policy.broken("classes").items():  # an invalid class is not checked: say so, loudly
        report.findings.append(Finding("critical", f"class {name} is not checked: its policy entry is invalid ("
                                       + "; ".join(f"{p}: {r}" for p, r in roots) + ")"))
    data: dict[str, Any] = report.to_dict()
    if args.save:
        local = local_store(policy)
        data["saved_to"] = f"{local.describe()}/{save_report(local, report)}" if local is not None else None
    emit(args, data, _human)
    return EXIT_FAILED if report.status == "critical" else EXIT_OK


def _human(d: dict[str, Any]) -> str:
    lines = [f"health: {d['status'].upper()} at {d['generated_at']}"]
    for reason in d["reasons"]:
        lines.append(f"  {reason}")
    for cls, row in d["classes"].items():
        lines.append(f"  {cls}: {row['status']}")
        for src, s in row["sources"].items():
            age = s.get("freshest_age_seconds")
            lines.append(f"    {src:16} {s['status']:8} newest {s.get('newest') or '-'}"
                         + (f", {age // 3600}h{(age % 3600) // 60:02d}m old (RPO {row['rpo_seconds'] // 3600}h)" if age is not None else ""))
    for name, st in d["stores"].items():
        lines.append(f"  store {name}: {'reachable' if st.get('reachable') else 'UNREACHABLE'}"
                     + (f", {st.get('objects')} objects" if st.get("reachable") else f" ({st.get('error')})"))
    if d.get("saved_to"):
        lines.append(f"  report saved: {d['saved_to']}")
    elif "saved_to" in d:
        lines.append("  report NOT saved: the policy's local store does not exist here")
    return "\n".join(lines)
