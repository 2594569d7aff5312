"""Restore a Redis backup into a server's data directory (the seed's procedure, made safe).

Order of operations, and why:

1. Everything that can fail without touching the server first: the backup is fetched and
   hashed against its manifest; an AOF backup is loaded into a scratch server and saved
   as an RDB (this proves it loads, and gives its exact key counts).
2. The new files are staged inside the data dir (same filesystem: every later step is an
   atomic rename). If the server runs with AOF, an AOF directory is staged as well whose
   manifest names the RDB as its base file. This is how the AOF trap is handled: a server
   started with ``appendonly yes`` ignores dump.rdb and would come up EMPTY; with the
   staged AOF directory it loads the data, with AOF on from its first second, whatever its
   config file or command line says (so the config file is never rewritten, and a server
   configured by command line flags works too).
3. The running server is told not to write over the placed files on its way down:
   ``CONFIG SET appendonly no`` and ``CONFIG SET save ""`` (runtime only: the restarted
   server reads its own config again). A fresh BGSAVE makes dump.rdb match its memory.
4. Safety copy: the current dump.rdb and AOF directory are renamed into
   ``.backup-dr-safety-<stamp>/``; the staged files are renamed into place with the owner
   and mode of the files they replace.
5. ``source.restart_command`` (an argv list: no shell, no secrets) restarts the server; then
   PING, loading finished, and DBSIZE per db against the manifest.
6. Any failure in 4-5, or SIGTERM / SIGINT / SIGHUP, rolls back: the placed files are
   removed, the safety copy is renamed back, the server is restarted again (or, if the
   restart never happened, its runtime settings are put back) and must serve its previous
   key counts. Everything the rollback needs is written to the restore journal BEFORE step
   3, so ``restore rollback`` does the same after a SIGKILL (:mod:`.data_dir_files`).
7. Old safety directories beyond the newest ``keep_safety_copies`` (2) are removed.

Any Redis server can be the target: ``conn`` names it, ``source`` supplies its data_dir and
restart_command (the CLI builds one for a replacement server from ``--data-dir DIR
--restart-command ...``; the backup's own policy source is only the default).
"""

from __future__ import annotations

import logging
import shutil
import subprocess
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from backup_dr.core.artifacts.manifest import Manifest
from backup_dr.core.connections import ConnInfo, redact
from backup_dr.core.errors import BackupDRError, RestoreError, RestoreRefused, RestoreRolledBack
from backup_dr.core.policy_model import RedisSource
from backup_dr.core.redis.bgsave import bgsave, config_get
from backup_dr.core.redis.client import keyspace_counts, redis_client, target, translate
from backup_dr.core.redis.data_dir_files import (KEEP_SAFETY_COPIES, SAFETY_PREFIX, STAGE_PREFIX, items_of, live_names,
                                                 prune_safety_copies, stage_files, swap_in, undo_swap)
from backup_dr.core.redis.load import redis_target
from backup_dr.core.redis.scratch import ScratchRedis
from backup_dr.core.redis.verify import compare_counts, fetch_backup_files, server_state
from backup_dr.core.restores.journal import JournalDir, recorded
from backup_dr.core.restores.signals import describe_failure, interrupted_by, shielded
from backup_dr.core.restores.workdirs import work_dir
from backup_dr.core.stores.base import Store

log = logging.getLogger(__name__)


def _runtime_settings(r, conn) -> dict[str, str | None]:
    names = ("dir", "dbfilename", "appendonly", "appenddirname", "appendfilename", "save")
    values = {n: config_get(r, conn, n) for n in names}
    if values["appendonly"] is None or values["save"] is None:
        raise RestoreRefused(f"{target(conn).where}: user {target(conn).user!r} may not CONFIG GET; a data_dir restore "
                             "needs an admin connection", hint="use a connection whose user has +@admin (or +config)")
    return values


def _run_restart(argv: list[str], name: str, conn: ConnInfo, timeout: float) -> None:
    log.info("restarting redis source %s: %s", name, argv)
    try:
        proc = subprocess.run(list(argv), capture_output=True, text=True, errors="replace", timeout=timeout)
    except (OSError, subprocess.TimeoutExpired) as e:
        raise RestoreError(f"restart command of redis source {name!r} failed to run: {redact(str(e), conn.secrets)}") from None
    if proc.returncode != 0:
        tail = redact((proc.stderr or proc.stdout)[-800:], conn.secrets)
        raise RestoreError(f"restart command of redis source {name!r} exited with code {proc.returncode}",
                           detail=tail.strip() or None)


def _wait_serving(conn: ConnInfo, timeout: float) -> tuple[dict[str, Any], str]:
    """Wait for PING and loading:0; return :func:`server_state` and the server's run_id."""
    import redis

    deadline = time.monotonic() + timeout
    last = "no answer"
    while time.monotonic() < deadline:
        try:
            with redis_client(conn, timeout=5) as r:
                if r.info("persistence").get("loading") == 0 and r.ping():
                    return server_state(r), r.info("server")["run_id"]
                last = "still loading"
        except (redis.ConnectionError, redis.TimeoutError, redis.BusyLoadingError) as e:
            last = redact(str(e), conn.secrets)
        time.sleep(0.1)
    raise RestoreError(f"{target(conn).where} did not come back within {timeout:.0f}s after the restart ({last})")


def _check_restored(state: dict[str, Any], expected: dict[str, int], expected_expires: dict[str, int]) -> list[str]:
    """The server loaded exactly the backup's keys at startup (clients may write right after
    the restart, so per-db counts may only grow, never fall short beyond keys with a TTL)."""
    problems = compare_counts(expected, expected_expires, state["keys"], allow_extra=True)
    if state["loaded"] is not None and state["loaded"] + (state["load_expired"] or 0) != sum(expected.values()):
        problems.append(f"the server loaded {state['loaded']} keys (+{state['load_expired']} already expired) at startup, "
                        f"the backup holds {sum(expected.values())}")
    return problems


def restore_data_dir(conn: ConnInfo, source: RedisSource, store: Store, manifest: Manifest, *,
                     workdir: str | Path | None = None, restart_timeout: float = 300.0, load_timeout: float = 600.0,
                     keep_safety_copy: bool = True, keep_safety_copies: int = KEEP_SAFETY_COPIES,
                     journal: JournalDir | None = None) -> dict[str, Any]:
    """Replace the data of the server behind ``conn`` with ``manifest``'s backup; see the module doc.

    Returns a report (counts, seconds, safety copy path). Raises RestoreRefused before touching
    anything, or RestoreError saying whether the server was rolled back (RestoreRolledBack).
    ``journal``: the restore journal to record in (the CLI and operators: the local store's).
    """
    import redis

    if not source.data_dir or not source.restart_command:
        raise RestoreRefused(f"redis source {source.name!r}: a data_dir restore needs data_dir and restart_command",
                             hint="set both in the policy (or, CLI: --data-dir DIR --restart-command '...'), or load the "
                                  "backup over the network (restore redis ID --to CONN --replace)")
    data_dir = Path(source.data_dir)
    if not data_dir.is_dir():
        raise RestoreRefused(f"redis source {source.name!r}: data_dir {data_dir} does not exist on this worker")
    t0 = time.monotonic()
    stamp = datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%S%fZ")
    safety = data_dir / f"{SAFETY_PREFIX}{stamp}"
    with work_dir("backup-dr-redis-restore-", workdir) as work:
        rdb, aof_dir = fetch_backup_files(store, manifest, work)
        expected, expected_expires = dict(manifest.counts), dict(manifest.details.get("expires") or {})
        if aof_dir is not None:  # prove it loads, learn its exact counts, and turn it into an RDB
            with ScratchRedis(aof_dir=aof_dir, workdir=work, appendfilename=manifest.details.get("appendfilename") or "appendonly.aof") as s:
                state = server_state(s)
                expected, expected_expires = state["keys"], state["expires"]
                rdb = work / "from-aof.rdb"
                shutil.copyfile(s.save_rdb(), rdb)
        with recorded(journal, "redis_data_dir", redis_target(conn), backup_id=manifest.backup_id,
                      what=f"the data-dir restore of {source.name}",
                      resume={"data_dir": str(data_dir), "restart_command": list(source.restart_command)}) as opened:
            try:
                with redis_client(conn, timeout=30) as r:
                    settings = _runtime_settings(r, conn)
                    before_keys, before_expires = keyspace_counts(r.info("keyspace"))
                    run_id = r.info("server")["run_id"]
            except redis.RedisError as e:  # nothing touched yet
                raise translate(conn, e, "read the server's settings before the restore") from None
            if settings["dir"] and Path(settings["dir"]).resolve() != data_dir.resolve():
                log.warning("redis source %s: the server's dir is %s, data_dir is %s (a mount seen differently?)",
                            source.name, settings["dir"], data_dir)
            record = {"data_dir": str(data_dir), "safety_dir": str(safety), "items": items_of(data_dir, settings),
                      "settings": settings, "run_id": run_id, "before_keys": before_keys, "before_expires": before_expires,
                      "restart_command": list(source.restart_command), "source": source.name,
                      "restart_timeout": restart_timeout, "load_timeout": load_timeout,
                      "cleanup": [str(data_dir / f"{STAGE_PREFIX}{stamp}")],  # the staging dir goes with the record
                      "describe": f"safety copy {safety} (the previous {' / '.join(live_names(settings))})"}
            opened.update(safety=record)
            stage = stage_files(data_dir, rdb, settings, stamp)
            try:
                opened.writing(safety=record)
                keys, expires, new_run_id = _replace_files(conn, source, settings, data_dir, stage, safety, expected,
                                                           expected_expires, restart_timeout, load_timeout, opened, record)
            except BaseException as failure:
                with shielded():
                    opened.rolling_back()
                    raise _roll_back(conn, source, record, opened, failure) from failure
            finally:
                shutil.rmtree(stage, ignore_errors=True)
    if not keep_safety_copy:
        shutil.rmtree(safety, ignore_errors=True)
    pruned = prune_safety_copies(data_dir, keep=keep_safety_copies, protected=_journal_protected(journal))
    report = {"backup_id": manifest.backup_id, "restored": keys, "restored_expires": expires, "expected": expected,
              "previous": before_keys, "safety_copy": str(safety) if keep_safety_copy else None, "safety_copies_removed": pruned,
              "aof": settings["appendonly"] == "yes", "run_id": new_run_id, "seconds": round(time.monotonic() - t0, 3)}
    log.info("redis source %s restored from %s: %s keys, safety copy %s", source.name, manifest.backup_id,
             sum(keys.values()), report["safety_copy"])
    return report


def _journal_protected(journal: JournalDir | None) -> list[str]:
    """Safety directories journal records still name (an interrupted restore's undo needs them)."""
    if journal is None:
        return []
    return [e.safety["safety_dir"] for e in journal.entries() if e.engine == "redis_data_dir" and e.safety.get("safety_dir")]


def _replace_files(conn, source, settings, data_dir, stage, safety, expected, expected_expires, restart_timeout, load_timeout,
                   opened, record):
    """Steps 3-5 of the module doc: quiesce, safety copy + swap, restart, check."""
    with redis_client(conn, timeout=30) as r:
        if settings["appendonly"] == "yes":
            r.config_set("appendonly", "no")
        r.config_set("save", "")
        bgsave(r, conn, timeout=load_timeout)  # the safety copy holds what the server has in memory now
    record["items"] = items_of(data_dir, settings)  # the BGSAVE may have written the first dump.rdb
    opened.update(safety=record)
    safety.mkdir()
    swap_in(data_dir, stage, safety, settings)
    _run_restart(source.restart_command, source.name, conn, restart_timeout)
    state, new_run_id = _wait_serving(conn, load_timeout)
    problems = _check_restored(state, expected, expected_expires)
    if problems:
        raise RestoreError(f"{target(conn).where} came back with other key counts than the backup", detail="; ".join(problems))
    return state["keys"], state["expires"], new_run_id


def undo_recorded(conn: ConnInfo, record: dict[str, Any]) -> dict[str, int]:
    """Put the previous files back and the server on them, from a journal record's ``safety``;
    returns the key counts it serves (RestoreError when they fall short of those before)."""
    import redis

    try:
        with redis_client(conn, timeout=5) as r:
            still_old = r.info("server")["run_id"] == record["run_id"]
            if not still_old:  # a new process serves the failed restore: it must not write on its way down
                r.config_set("appendonly", "no")
                r.config_set("save", "")
    except redis.RedisError:
        still_old = False  # down: nothing to quiesce
    undo_swap(Path(record["data_dir"]), Path(record["safety_dir"]), record["items"])
    if still_old:  # the restart never happened: the old process still holds the old data
        with redis_client(conn, timeout=30) as r:
            r.config_set("save", record["settings"]["save"])
            if record["settings"]["appendonly"] == "yes":
                r.config_set("appendonly", "yes")
    else:
        _run_restart(record["restart_command"], record["source"], conn, record["restart_timeout"])
    state, _ = _wait_serving(conn, record["load_timeout"])
    problems = compare_counts(record["before_keys"], record["before_expires"], state["keys"], allow_extra=True)
    if problems:
        raise RestoreError("after the rollback the server's key counts differ from before: " + "; ".join(problems))
    return state["keys"]


def _roll_back(conn, source, record: dict[str, Any], opened, failure: BaseException) -> RestoreError:
    """Put the previous data back; return the error that says how that went."""
    import redis

    cause = redact(str(failure), conn.secrets)
    how = describe_failure(failure)
    log.error("redis restore of %s %s (%s); rolling back", source.name, how, cause)
    try:
        keys = undo_recorded(conn, record)
    except (BackupDRError, OSError, redis.RedisError) as e:
        log.error("rollback of the redis restore of %s failed: %s", source.name, redact(str(e), conn.secrets))
        again = (f"`python -m backup_dr restore rollback {opened.id}` (journal record kept) finishes it once the cause is fixed"
                 if opened.id else "put them back and restart the server by hand")
        return RestoreError(
            f"redis restore of {source.name!r} {how} AND the rollback failed: {redact(str(e), conn.secrets)}",
            detail=f"restore failure: {cause}",
            hint=f"the previous files are in {record['safety_dir']} (or already back in place); {again}",
        )
    return RestoreRolledBack(f"redis restore of {source.name!r} {how}; rolled back: the server serves its previous data "
                             f"({sum(keys.values())} keys)", detail=cause, signum=interrupted_by(failure))
