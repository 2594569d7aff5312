"""``dr list`` / ``dr run SCENARIO``: a whole DR scenario of the policy, with Airflow gone.

The steps are the core's (:mod:`backup_dr.core.dr`), the very functions the DR DAG's tasks
run; only the access differs: stores and targets come from ``AIRFLOW_CONN_<ID>`` /
``$BACKUP_DR_CONNECTIONS_FILE`` (never argv), safety backups and the restore journal go to the
local store (else ./backup-dr-safety), as for ``restore mongo``. Human steps (provisioning,
DNS) are asked at the terminal, or confirmed in advance with ``--confirm STEP`` / ``--yes``;
without a terminal an unconfirmed human step refuses the run before anything is done.
``--dry-run`` runs every step as a rehearsal (probes, the pick, a re-hash of the chosen copy)
and prints the plan (which copy of which backup, from which store, into which target);
nothing is changed.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from typing import Any

from backup_dr.cli.common import UsageError, open_policy_stores, resolve_conn, scrub, unknown_in_policy
from backup_dr.cli.main import emit, load_policy_arg
from backup_dr.cli.restore_mongo import safety_dir
from backup_dr.cli.targets import new_mongo_client
from backup_dr.core.durations import format_duration
from backup_dr.core.stores.local import LocalStore

log = logging.getLogger("backup_dr.cli")

_EPILOG = """\
examples:
  python -m backup_dr dr list
  python -m backup_dr dr run database_server_failure --dry-run
  python -m backup_dr dr run database_server_failure --to mongo_new_primary          # asks at each human step
  python -m backup_dr dr run database_server_failure --confirm provision_mongodb --json
  python -m backup_dr dr run full_infrastructure_failure --redis-to redis_new --incident-time '2026-11-26 14:30' --yes
  python -m backup_dr dr run data_corruption --at 2026-11-26T14:29:59+09:00 --drop --confirm analyze_damage

--to / --redis-to name connections (AIRFLOW_CONN_<ID> or $BACKUP_DR_CONNECTIONS_FILE), never URIs.
Exit codes: 0 recovered (or rehearsed), 1 a step failed or a human step was declined, 2 bad usage.
"""


def register(sub, common) -> None:
    p = sub.add_parser("dr", parents=[common], help="disaster-recovery scenarios of the policy (list, run)")
    kinds = p.add_subparsers(dest="dr_command", metavar="ACTION")
    ls = kinds.add_parser("list", parents=[common], help="the policy's DR scenarios and their steps")
    ls.set_defaults(func=run_list)
    r = kinds.add_parser("run", parents=[common], help="run a DR scenario's steps in order",
                         epilog=_EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter,
                         description="Run every step of a DR scenario, as its Airflow DAG would.")
    r.add_argument("scenario", help="scenario name (`dr list`)")
    r.add_argument("--dry-run", action="store_true", help="rehearse: print the plan, change nothing")
    r.add_argument("--to", dest="target", help="MongoDB connection id to restore into (default: the scenario's target_conn_id)")
    r.add_argument("--redis-to", dest="redis_target", help="Redis connection id to load (default: the scenario's)")
    r.add_argument("--incident-time", help="when the failure happened: backups captured after it are not used (default: now)")
    r.add_argument("--at", dest="point_in_time", help="point in time to restore to (scenarios with a point-in-time pick)")
    r.add_argument("--drop", action="store_true", help="allow overwriting a non-empty target database (safety backup first)")
    r.add_argument("--interrupted-restore", choices=("fail", "rollback", "resume"), default="fail",
                   help="when an earlier restore into the target was killed half-way")
    r.add_argument("--confirm", action="append", default=[], metavar="STEP", help="this human step is done (repeatable)")
    r.add_argument("--yes", action="store_true", help="every human step is done (no prompts)")
    r.set_defaults(func=run_scenario_cmd)
    p.set_defaults(func=lambda args: (p.print_help(), 2)[1])


def _scenario(policy, name: str):
    sc = policy.scenarios.get(name)
    if sc is None:
        roots = policy.root_causes(f"dr_scenarios.{name}")
        if roots:
            raise UsageError(f"scenario {name!r} is invalid in the policy", detail="; ".join(f"{p}: {r}" for p, r in roots))
        raise UsageError(f"unknown scenario {name!r}", hint=f"scenarios: {', '.join(sorted(policy.scenarios)) or 'none'} (`dr list`)")
    return sc


def run_list(args) -> int:
    from backup_dr.core.dr.scenario import plan

    policy = load_policy_arg(args)
    data = {"scenarios": [{"name": sc.name, "title": sc.title, "rpo": format_duration(sc.rpo), "rto": format_duration(sc.rto),
                           "backup_class": sc.backup_class, "target_conn_id": sc.target_conn_id,
                           "steps": [{"name": p.name, "kind": p.step.kind, "human": p.human, "title": p.step.title}
                                     for p in plan(policy, sc)]} for sc in policy.scenarios.values()]}

    def human(d):
        lines = []
        for s in d["scenarios"]:
            lines.append(f"{s['name']}: {s['title']} (RPO {s['rpo']}, RTO {s['rto']}, class {s['backup_class']})")
            lines += [f"  {i}. {st['name']}{'  [human: --confirm ' + st['name'] + ']' if st['human'] else ''}"
                      for i, st in enumerate(s["steps"], 1)]
        return "\n".join(lines) or "the policy has no DR scenarios"

    emit(args, data, human)
    return 0


def _confirmer(args, planned_steps):
    """``confirm(planned)``: --yes / --confirm, else a prompt on a terminal. Without a terminal every
    human step must be confirmed up front, checked BEFORE the first step runs."""
    human = [p.name for p in planned_steps if p.human]
    unknown = [n for n in args.confirm if n not in human]
    if unknown:
        raise UsageError(f"--confirm {unknown[0]}: scenario {args.scenario!r} has no such human step",
                         hint=f"its human steps: {', '.join(human) or 'none'}")
    pending = [n for n in human if not args.yes and n not in args.confirm]
    if pending and not args.dry_run and not sys.stdin.isatty():
        raise UsageError(f"human step(s) {', '.join(pending)} need a person and there is no terminal to ask",
                         hint=" ".join(f"--confirm {n}" for n in pending) + " once each is done (or --yes for all)")

    def confirm(p) -> bool:
        if args.yes or p.name in args.confirm:
            log.info("human step %s: confirmed on the command line (%s)", p.name, p.step.title)
            return True
        sys.stderr.write(f"\nHUMAN STEP {p.name}: {p.step.title}\n  {p.step.instructions}\n"
                         "Type 'yes' when it is done (anything else stops the recovery): ")
        sys.stderr.flush()
        return sys.stdin.readline().strip().lower() in ("y", "yes")

    return confirm


def build_run(args, policy, sc):
    """The core's :class:`DrRun` with access from the environment (nothing from Airflow)."""
    from backup_dr.core.dr.run import DrRun

    opened: dict[str, Any] = {}

    def stores(names):
        if "all" not in opened:
            opened["all"] = open_policy_stores(policy).opened
        return {n: s for n, s in opened["all"].items() if n in set(names)}

    def local(_cls):
        if "local" not in opened:
            opened["local"] = LocalStore(safety_dir(None, policy), name="local")
        return opened["local"]

    def mongo(conn_id, **options):
        return new_mongo_client(resolve_conn(conn_id), **options)

    for flag, value in (("--to", args.target), ("--redis-to", args.redis_target)):
        if value:
            resolve_conn(value, flag=flag)  # a URI is refused, an undefined id named, before any step runs
    return DrRun(policy=policy, scenario=sc, stores=stores, local=local, conn=lambda c: resolve_conn(c), mongo=mongo,
                 result=lambda kind: {}, log=log, target_conn_id=args.target, redis_target_conn_id=args.redis_target,
                 dry_run=args.dry_run, drop=args.drop, interrupted_restore=args.interrupted_restore,
                 point_in_time=args.point_in_time, incident_time=args.incident_time, run_id="cli",
                 rerun_hint="run `dr run` again with --interrupted-restore rollback or --interrupted-restore resume")


def run_scenario_cmd(args) -> int:
    from backup_dr.core.dr.run import typed_time
    from backup_dr.core.dr.scenario import plan, run_scenario
    from backup_dr.core.times import BadTimeInput

    policy = load_policy_arg(args)
    sc = _scenario(policy, args.scenario)
    if sc.backup_class not in policy.classes:
        raise unknown_in_policy(policy, "classes", sc.backup_class, "class")
    try:  # typed times are checked and said back before anything is opened
        for what, text in (("--at", args.point_in_time), ("--incident-time", args.incident_time)):
            typed = typed_time(policy, text, what, allow_timestamp=what == "--at")
            if typed is not None:
                sys.stderr.write(f"{what}: {typed.echo()}\n")
    except BadTimeInput as e:
        raise UsageError(e.message, detail=e.detail, hint=e.hint) from None
    run = build_run(args, policy, sc)
    confirm = _confirmer(args, plan(policy, sc, target=run.target_conn_id))
    log.info("DR scenario %s%s: target %s", sc.name, " (DRY RUN: nothing is changed)" if run.dry_run else "", run.target_conn_id)

    def progress(p, entry):
        log.info("step %-20s %s%s", p.name, entry["state"], f": {scrub(entry['error'])}" if entry.get("error") else "")

    report = json.loads(scrub(json.dumps(run_scenario(run, confirm=confirm, on_step=progress), default=str)))
    if not run.dry_run:
        report["summary"] = _summarize(run, report)
    emit(args, report, _human)
    return 0 if report["outcome"] != "failed" else 1


def _summarize(run, report: dict[str, Any]) -> dict[str, Any]:
    """As the DR DAG's summary task: the report kept under the local store's ``_reports/dr/``
    and sent on the policy's alert routes (plain SMTP / webhook, connections from the
    environment). Neither failing fails the recovery: each is a warning on stderr."""
    from backup_dr.core.artifacts.manifest import parse_iso
    from backup_dr.core.dr.scenario import RESTORE_KINDS
    from backup_dr.core.dr.summary import summarize
    from backup_dr.core.notify import send_routes

    results = {s["kind"]: s.get("result") or {} for s in report["steps"] if not s["human"]}
    failed = [s["name"] for s in report["steps"] if s["state"] in ("failed", "refused")]
    out: dict[str, Any] = {"saved_to": None, "alerts_sent": [], "alerts_failed": []}
    try:
        store = run.local(run.scenario.backup_class)
        summary = summarize(run.policy, run.scenario, store, run_id=run.run_id, started=parse_iso(report["started_at"]),
                            finished=parse_iso((results.get("health_check") or {}).get("checked_at")), failed=failed,
                            pick=results.get("pick_backup") or {}, restores=[results[k] for k in RESTORE_KINDS if results.get(k)],
                            validated=(results.get("validate") or {}).get("validated_at"),
                            incident_time=run.incident_time, dry_run=False)
    except Exception as e:  # noqa: BLE001 - the recovery is done (or failed) either way; say why nothing was kept
        sys.stderr.write(f"WARNING: the DR report was not saved and no alert was sent: {scrub(f'{type(e).__name__}: {e}')}\n")
        return out
    out.update(summary.report, saved_to=f"{store.name}:{summary.key}", path=str(store.root / summary.key))
    sent, errors = send_routes(run.policy.alerts, summary.severity, summary.title, summary.lines, resolve_conn)
    out.update(alerts_sent=sent, alerts_failed=[scrub(e) for e in errors])
    for e in out["alerts_failed"]:
        sys.stderr.write(f"WARNING: alert route {e}; fix that connection (AIRFLOW_CONN_<ID>): the DR summary was not sent there\n")
    log.info("DR report saved to %s; alert sent via %s", out["saved_to"], ", ".join(sent) or "no route")
    return out


def _human(r: dict[str, Any]) -> str:
    lines = [f"DR scenario {r['scenario']}: {r['outcome'].upper()}" + (f" — {r['error']}" if r.get("error") else "")]
    lines.append("plan:" if r["dry_run"] else "restored:")
    for row in r["plan"]:
        what = f"{row['step']}{' ' + row['source'] if row.get('source') else ''}"
        lines.append(f"  {what}: {row['backup_id']} from store {row['store']} into {row['target']}"
                     + (f" database {row['database']}" if row.get("database") else "")
                     + (f" up to {row['point_in_time']}" if row.get("point_in_time") else ""))
    for s in r["steps"]:
        if s["human"] and s["state"] == "would ask":
            lines.append(f"  human step {s['name']}: {s['instructions']}")
    if r.get("recovery_point"):
        lines.append(f"recovery point: {r['recovery_point']}")
    if r["recovery_time"].get("seconds") is not None:
        lines.append(f"recovery time: {r['recovery_time']['seconds']}s (first byte fetched → validated target)")
    summary = r.get("summary") or {}
    if summary.get("saved_to"):
        lines.append(f"report: {summary['saved_to']}; alert sent via {', '.join(summary['alerts_sent']) or 'no route'}")
    return "\n".join(lines)
