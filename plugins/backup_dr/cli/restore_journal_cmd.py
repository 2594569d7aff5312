"""``restore status | rollback | resume``: interrupted restores, found through the restore journal.

A restore killed by SIGKILL or a power cut leaves its journal record behind
(:mod:`backup_dr.core.restores.journal`). ``status`` lists records (exit 1 when one is
interrupted), ``rollback`` puts that target back from the record's safety backup
(validated, then the record goes), ``resume`` finishes the restore the record describes
with the SAME safety backup (a data-dir or files restore is rolled back and run again).
The journal lives in the policy's local store (``backup-dr-v1/_journal/``), where every
restore command writes it; ``--journal-dir`` looks elsewhere.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from backup_dr.cli.common import UsageError, local_store, resolve_conn
from backup_dr.cli.main import EXIT_FAILED, EXIT_OK, emit, load_policy_arg
from backup_dr.core.restores.journal import JournalDir, JournalEntry
from backup_dr.core.restores.workdirs import sweep_stale

_EPILOG = """\
examples:
  python -m backup_dr restore status                       # exit 1 when an interrupted restore is found
  python -m backup_dr restore rollback mongodb-20261126T081500-3f9a1c
  python -m backup_dr restore resume latest                # the newest interrupted restore
"""


def journal_root(policy, given: str | None = None) -> Path:
    """Where restore journal records are written and looked for: ``given``, else the policy's
    local store (the disk the health check and the DR DAG read), else ./backup-dr-safety."""
    if given:
        return Path(given)
    local = local_store(policy)
    if local is not None and os.access(local.root, os.W_OK):
        return Path(local.root)
    return Path.cwd() / "backup-dr-safety"


def register(kinds, common, raw) -> None:
    s = kinds.add_parser("status", parents=[common], formatter_class=raw, epilog=_EPILOG,
                         help="interrupted restores (the restore journal); exit 1 if one is found",
                         description="List restore journal records: restores running now, and interrupted ones "
                                     "(killed, power loss) whose target may be half-written.")
    r = kinds.add_parser("rollback", parents=[common], formatter_class=raw, epilog=_EPILOG,
                         help="undo an interrupted restore from its safety backup",
                         description="Put the target of an interrupted restore back as it was before that restore, "
                                     "from the safety backup its journal record names; validated, then the record goes.")
    u = kinds.add_parser("resume", parents=[common], formatter_class=raw, epilog=_EPILOG,
                         help="finish an interrupted restore (keeping its original safety backup)",
                         description="Run an interrupted restore again to the end, with the safety backup taken before "
                                     "it first started (never a new one of the half-written target).")
    for p in (r, u):
        p.add_argument("journal_id", metavar="JOURNAL_ID", help="a record id from `restore status`, or 'latest'")
        p.add_argument("--to", metavar="CONN_ID", help="the target's connection id, when it differs from the one recorded")
        p.add_argument("--workdir", metavar="DIR", help="where remote copies are downloaded and verified (resume)")
    for p in (s, r, u):
        p.add_argument("--journal-dir", metavar="DIR", help="look for records under DIR (default: the policy's local store)")
    s.set_defaults(func=run_status)
    r.set_defaults(func=run_rollback)
    u.set_defaults(func=run_resume)


def _as_dict(e: JournalEntry) -> dict[str, Any]:
    return {"id": e.id, "state": "running" if e.alive else "INTERRUPTED", "engine": e.engine, "target": e.label,
            "conn_id": e.target.get("conn_id"), "backup_id": e.backup_id, "started_at": e.started_at, "host": e.host,
            "pid": e.pid, "phase": e.phase, "target_may_be_half_written": e.touched and not e.alive,
            "safety": e.safety_text(), "commands": [] if e.alive else e.commands()}


def run_status(args) -> int:
    sweep_stale()  # temp dirs of killed restores go; their journal records stay until rolled back or resumed
    policy = load_policy_arg(args)
    journal = JournalDir(journal_root(policy, args.journal_dir))
    entries = journal.entries()
    data = {"journal": journal.describe(), "restores": [_as_dict(e) for e in entries],
            "interrupted": sum(1 for e in entries if not e.alive)}
    emit(args, data, _status_text)
    return EXIT_FAILED if data["interrupted"] else EXIT_OK


def _status_text(d: dict[str, Any]) -> str:
    if not d["restores"]:
        return f"no restore in progress and no interrupted restore (journal {d['journal']})"
    lines = [f"restore journal {d['journal']}: {d['interrupted']} interrupted"]
    for r in d["restores"]:
        lines.append(f"  {r['state']:11} {r['id']}: {r['engine']} restore of {r['backup_id']} into {r['target']}")
        lines.append(f"              started {r['started_at']} by pid {r['pid']} on {r['host']}, phase {r['phase']}; {r['safety']}")
        for cmd in r["commands"]:
            lines.append(f"              {cmd}")
    return "\n".join(lines)


def pick(journal: JournalDir, journal_id: str) -> JournalEntry:
    if journal_id == "latest":
        dead = journal.interrupted()
        if not dead:
            raise UsageError(f"no interrupted restore in {journal.describe()}", hint="`python -m backup_dr restore status`")
        return dead[-1]
    return journal.get(journal_id)


def _clients():
    from backup_dr.cli.targets import mongo_client

    return (lambda conn_id: mongo_client(resolve_conn(conn_id))), resolve_conn


def run_rollback(args) -> int:
    from backup_dr.core.restores.recover import roll_back

    sweep_stale()
    policy = load_policy_arg(args)
    journal = JournalDir(journal_root(policy, args.journal_dir))
    entry = pick(journal, args.journal_id)
    mongo, redis_conn = _clients()
    report = roll_back(journal, entry, mongo_client=mongo, redis_conn=redis_conn, conn_id=args.to)
    emit(args, {"ok": True, **report}, lambda d: (
        f"rolled back the interrupted restore {d['journal']} of {d['target']}: the target is as it was before it\n"
        f"  from: {d.get('safety', '-')}; restored: {', '.join(map(str, d.get('rolled_back') or [])) or 'nothing to restore'}"
        + (f"; dropped: {', '.join(d['dropped'])}" if d.get("dropped") else "")))
    return EXIT_OK


def run_resume(args) -> int:
    from backup_dr.cli import restore_resume

    sweep_stale(getattr(args, "workdir", None))
    policy = load_policy_arg(args)
    journal = JournalDir(journal_root(policy, args.journal_dir))
    entry = pick(journal, args.journal_id)
    if entry.alive:
        raise UsageError(f"the restore of journal record {entry.id} is still running ({entry.describe()})")
    report = restore_resume.resume(args, policy, journal, entry)
    emit(args, {"ok": True, "journal": entry.id, "target": entry.label, **report}, lambda d: (
        f"finished the interrupted restore {d['journal']} of {d.get('backup_id')} into {d['target']}\n"
        f"  {d.get('summary', '')}"))
    return EXIT_OK
