"""``policy check``: validate the policy file and summarise what it protects."""

from __future__ import annotations

import argparse

from backup_dr.cli.main import emit, load_policy_arg
from backup_dr.core.durations import format_duration


def register(sub, common) -> None:
    p = sub.add_parser("policy", parents=[common], help="validate and summarise the policy file",
                       description="Validate the policy file and summarise what it protects. Exit 2 naming every bad field.",
                       epilog="example:\n  python -m backup_dr policy check --policy /etc/backup_dr/policy.yaml",
                       formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("action", choices=["check"], help="check: validate the file (exit 2 and name every bad field)")
    p.set_defaults(func=run)


def run(args) -> int:
    from backup_dr.core.policy_fallback import fallback_alerts

    policy = load_policy_arg(args, strict=True)
    fallback = fallback_alerts()
    data = {
        "path": policy.path,
        "classes": {
            c.name: {
                "schedule": c.schedule.cron or c.schedule.kind,
                "retention": c.retention.text,
                "stores": list(c.stores),
                "rpo": format_duration(c.objective.rpo),
                "rto": format_duration(c.objective.rto),
                "sources": [j.source for j in c.jobs],
            }
            for c in policy.classes.values()
        },
        "dr_scenarios": sorted(policy.scenarios),
        "fallback_alert_route": {"routes": fallback.describe(), "problems": list(fallback.problems)},
    }

    def human(d):
        lines = [f"policy OK: {d['path']}"]
        for name, c in d["classes"].items():
            lines.append(
                f"  {name:18} {c['schedule']:14} keep {c['retention']:9} RPO {c['rpo']:>4} RTO {c['rto']:>4} "
                f"-> {'+'.join(c['stores'])}  [{', '.join(c['sources'])}]"
            )
        lines.append(f"  DR scenarios: {', '.join(d['dr_scenarios'])}")
        fb = d["fallback_alert_route"]
        lines.append(f"  fallback alert route (alerts when this file cannot be loaded): {fb['routes']}")
        lines += [f"  WARNING: fallback alert route: {p}" for p in fb["problems"]]
        return "\n".join(lines)

    emit(args, data, human)
    return 0
