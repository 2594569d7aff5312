"""``restore redis``, ``restore files`` and ``restore git``.

* Redis ``--to scratch``: a fresh local ``redis-server`` loaded with the backup, password in a
  0600 config file (never printed), kept until Ctrl-C or left running with ``--detach``.
* Redis ``--to CONN_ID [--replace]``: loaded over the network into ANY server (a replacement
  one too); ``--replace`` makes the whole target equal the backup (every database, safety
  copy first, compared afterwards).
* Redis ``--to CONN_ID --data-dir [DIR] [--restart-command CMD]``: the safe data-dir restore
  (safety copy, restart, counts checked, rollback) of any server; the data dir and restart
  command default to the backup's policy source.
* Files: safe extraction into a staging directory, then an atomic swap; ``--overwrite`` moves
  a non-empty target aside first. A git bundle is cloned at the backed-up commit.
"""

from __future__ import annotations

import logging
import shlex
import signal
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

from backup_dr.cli.common import (UsageError, backup_arg, check_restorable, open_policy_stores, refuse_uri, resolve_conn,
                                  workdir_arg)
from backup_dr.cli.good_copy import with_good_copy
from backup_dr.cli.main import emit, load_policy_arg
from backup_dr.cli.restore_journal_cmd import journal_root
from backup_dr.core.catalog import Catalog
from backup_dr.core.engines import engine_for
from backup_dr.core.policy_model import RedisSource
from backup_dr.core.restores.journal import JournalDir
from backup_dr.core.restores.workdirs import sweep_stale, work_dir

log = logging.getLogger("backup_dr.cli")


# ----------------------------------------------------------------------------- redis


def redis_source_for(policy, name: str, data_dir: str | None, restart_command: str | list[str] | None) -> RedisSource:
    """The data dir and restart command of a data-dir restore: the flags, else the policy source
    ``name`` (the backup's own source by default), so any server can be the target."""
    src = policy.sources.get(name)
    base = src if isinstance(src, RedisSource) else RedisSource(name, "")
    argv = shlex.split(restart_command) if isinstance(restart_command, str) else restart_command
    source = replace(base, data_dir=data_dir or base.data_dir, restart_command=tuple(argv or base.restart_command))
    if not source.data_dir or not source.restart_command:
        raise UsageError(f"a data-dir restore needs the server's data directory and a restart command; "
                         f"{'the policy source ' + repr(name) if src is not None else 'no policy source'} gives "
                         f"{'neither' if not (source.data_dir or source.restart_command) else 'only one'}",
                         hint="pass --data-dir DIR --restart-command 'systemctl restart redis-server' (an argv, no shell, "
                              "no secrets), or load it over the network instead: --to CONN_ID --replace")
    return source


def run_redis(args) -> int:
    policy = load_policy_arg(args)
    workdir = workdir_arg(args.workdir)
    sweep_stale(workdir)
    to_scratch = args.to == "scratch"
    if not to_scratch:
        refuse_uri(args.to, "--to")  # before any message could quote it
    data_dir_mode = args.data_dir is not None
    if to_scratch and (data_dir_mode or args.replace):
        raise UsageError("--data-dir and --replace restore into a running server; they make no sense with --to scratch")
    if data_dir_mode and args.replace:
        raise UsageError("--data-dir replaces the server's files (all of its data) already; --replace is for network loads")
    if args.restart_command and not data_dir_mode:
        raise UsageError("--restart-command only applies to --data-dir restores")
    if args.detach and not to_scratch:
        raise UsageError("--detach only applies to --to scratch")
    conn = None if to_scratch else resolve_conn(args.to, flag="--to")
    stores = open_policy_stores(policy, [args.from_store] if args.from_store else None)
    entry = backup_arg(args, policy, Catalog(stores.opened), "redis", "restore redis")
    check_restorable(entry.manifest(), "redis", "restore redis")
    if to_scratch:
        return _redis_scratch(args, policy, entry, stores, workdir)
    journal = JournalDir(journal_root(policy))
    if not data_dir_mode:
        return _redis_load(args, policy, entry, stores, conn, journal, workdir)
    from backup_dr.core.redis.restore import restore_data_dir

    source = redis_source_for(policy, args.source or entry.bid.source, args.data_dir or None, args.restart_command)
    report, attempts = with_good_copy(entry, stores, args.from_store, policy,
                                      lambda store, m: restore_data_dir(conn, source, store, m, workdir=workdir, journal=journal))
    data = {"ok": True, "backup_id": entry.backup_id, "target": {"conn_id": conn.conn_id, "data_dir": source.data_dir},
            **attempts.as_dict(), "restore": report}
    emit(args, data, lambda d: (
        f"restored {d['backup_id']} from store {d['store']} into {d['target']['conn_id']} ({d['target']['data_dir']})\n"
        f"  keys: {d['restore']['restored']} (backup: {d['restore']['expected']})\n"
        f"  previous data kept in {d['restore']['safety_copy']}"))
    return 0


def _redis_load(args, policy, entry, stores, conn, journal, workdir) -> int:
    from backup_dr.cli.restore_mongo import safety_dir
    from backup_dr.core.redis.load import load_into_server
    from backup_dr.core.stores.local import LocalStore

    safety = LocalStore(safety_dir(args.safety_dir, policy), name="safety")
    with work_dir("backup-dr-restore-", workdir) as tmp:
        report, attempts = with_good_copy(entry, stores, args.from_store, policy, lambda store, m: load_into_server(
            conn, store, m, replace=args.replace, workdir=str(tmp), safety_store=safety, journal=journal))
    data = {"ok": True, "backup_id": entry.backup_id, "target": {"conn_id": conn.conn_id}, **attempts.as_dict(), "restore": report}
    emit(args, data, lambda d: "\n".join([
        f"loaded {d['backup_id']} from store {d['store']} into {d['target']['conn_id']} ({d['restore']['target']})",
        f"  keys: {d['restore']['copied']}",
        f"  the whole target equals the backup: {d['restore']['verified']['method']}, "
        f"{d['restore']['verified']['keys']} keys compared",
        f"  previous data kept as safety copy {d['restore']['safety_backup']}" if d["restore"]["safety_backup"]
        else "  the target was empty: no safety copy needed"]))
    return 0


def _redis_scratch(args, policy, entry, stores, workdir) -> int:
    from backup_dr.core.redis.verify import compare_counts, restore_to_scratch, server_state

    scratch, attempts = with_good_copy(entry, stores, args.from_store, policy,
                                       lambda store, m: restore_to_scratch(store, m, workdir=workdir, outlive_parent=args.detach))
    try:
        manifest = entry.manifest()
        state = server_state(scratch)
        problems = compare_counts(dict(manifest.counts), dict(manifest.details.get("expires") or {}), state["keys"],
                                  expired=state["expired"]) if manifest.counts else []
        config = scratch.workdir / "redis.conf"
        data = {"ok": True, "backup_id": entry.backup_id, **attempts.as_dict(), "host": "127.0.0.1", "port": scratch.port,
                "address": f"127.0.0.1:{scratch.port}", "pid": scratch.pid, "dir": str(scratch.workdir),
                "password_file": str(config), "keys": state["keys"], "expected_keys": dict(manifest.counts),
                "count_warnings": problems, "detached": bool(args.detach)}
        for p in problems:
            log.warning("scratch server key counts differ from the manifest: %s", p)
        emit(args, data, _scratch_text)
    except BaseException:
        scratch.stop()
        raise
    if args.detach:
        scratch.hand_over()  # it runs in its own session and outlives us
        return 0
    return _serve_until_interrupted(scratch)


def _scratch_text(d: dict[str, Any]) -> str:
    lines = [f"scratch redis-server with {d['backup_id']} (from store {d['store']}) listening on {d['address']}",
             f"  pid {d['pid']}, files in {d['dir']}",
             f"  password: the 'requirepass' line of {d['password_file']} (mode 0600; not printed), e.g.",
             f"    REDISCLI_AUTH=\"$(awk '/^requirepass/ {{print $2}}' {d['password_file']})\" redis-cli -p {d['port']}",
             f"  keys: {d['keys']} (backup: {d['expected_keys']})"]
    for s in d["fell_back_from"]:
        lines.append(f"  note: the copy in {s['store']} failed verification ({s['reason']}); used {d['store']} instead")
    if d["detached"]:
        lines.append(f"  left running: stop it with `kill {d['pid']}`, then remove {d['dir']}")
    else:
        lines.append("  serving until Ctrl-C (then it is stopped and its files removed)")
    return "\n".join(lines)


def _serve_until_interrupted(scratch) -> int:
    def on_term(signum, frame):
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGTERM, on_term)
    try:
        while scratch.proc is not None and scratch.proc.poll() is None:
            time.sleep(0.2)
        log.error("the scratch redis-server exited on its own (code %s); see %s", scratch.proc.returncode if scratch.proc else "?",
                  scratch.logfile)
        return 1
    except KeyboardInterrupt:
        log.info("stopping the scratch redis-server (pid %s)", scratch.pid)
        return 0
    finally:
        signal.signal(signal.SIGTERM, previous)
        scratch.stop()


# ----------------------------------------------------------------------------- files / git


def run_files(args, *, git_only: bool = False) -> int:
    policy = load_policy_arg(args)
    workdir = workdir_arg(args.workdir)
    command = "git" if git_only else "files"
    what = f"restore {command}"
    target = Path(args.to).expanduser().absolute()
    stores = open_policy_stores(policy, [args.from_store] if args.from_store else None)
    entry = backup_arg(args, policy, Catalog(stores.opened), command, what)
    manifest = entry.manifest()
    check_restorable(manifest, command, what)
    engine = engine_for(manifest)  # files: extracted; git: the bundle cloned at its commit
    if not engine.overwrites and getattr(args, "overwrite", False):
        raise UsageError(f"a {engine.label} backup is cloned into an absent or empty directory; --overwrite does not apply",
                         hint="give a new directory with --to")
    sweep_stale(workdir)
    with work_dir("backup-dr-files-", workdir) as tmp:
        result, attempts = with_good_copy(entry, stores, args.from_store, policy, lambda store, m: engine.restore_into(
            store, m, target, tmp, overwrite=getattr(args, "overwrite", False), journal=JournalDir(journal_root(policy))))
    data = {"ok": True, "backup_id": entry.backup_id, "kind": manifest.kind, **attempts.as_dict(),
            "target": str(target), "restore": result.as_dict()}
    emit(args, data, _files_text)
    return 0


def _files_text(d: dict[str, Any]) -> str:
    r = d["restore"]
    if d["kind"] == "bundle":
        lines = [f"cloned {d['backup_id']} from store {d['store']} into {d['target']}",
                 f"  at commit {r['commit']}" + (f" on branch {r['branch']}" if r.get("branch") else "") + f", {len(r['refs'])} ref(s)",
                 "  the clone has no remote: add the real origin with `git remote add origin ...`"]
    else:
        lines = [f"restored {d['backup_id']} from store {d['store']} into {d['target']}",
                 f"  {r['files']} file(s), {r['directories']} dir(s), {r['symlinks']} symlink(s), {r['bytes']} bytes in {r['seconds']:.1f}s"]
        if r.get("safety_copy"):
            lines.append(f"  the previous content was moved to {r['safety_copy']}")
    for s in d["fell_back_from"]:
        lines.append(f"  note: the copy in {s['store']} failed verification ({s['reason']}); used {d['store']} instead")
    return "\n".join(lines)
