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
6. Any failure in 4-5 rolls back: the placed files are removed, the safety copy is renamed
   back, the server is restarted again (or, if the restart never happened, its runtime
   settings are put back) and must serve its previous key counts.
"""

from __future__ import annotations

import logging
import os
import shutil
import subprocess
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from backup_dr.core.artifacts.manifest import Manifest
from backup_dr.core.connections import ConnInfo, redact
from backup_dr.core.errors import BackupDRError, RestoreError, RestoreRefused
from backup_dr.core.policy_model import RedisSource
from backup_dr.core.redis.bgsave import bgsave, config_get
from backup_dr.core.redis.client import keyspace_counts, redis_client, target, translate
from backup_dr.core.redis.scratch import ScratchRedis
from backup_dr.core.redis.verify import compare_counts, fetch_backup_files, server_state
from backup_dr.core.stores.base import Store

log = logging.getLogger(__name__)


def _runtime_settings(r, conn) -> dict[str, str | None]:
    names = ("dir", "dbfilename", "appendonly", "appenddirname", "appendfilename", "save")
    values = {n: config_get(r, conn, n) for n in names}
    if values["appendonly"] is None or values["save"] is None:
        raise RestoreRefused(f"{target(conn).where}: user {target(conn).user!r} may not CONFIG GET; a data_dir restore "
                             "needs an admin connection", hint="use a connection whose user has +@admin (or +config)")
    return values


def _stage(data_dir: Path, rdb: Path, settings: dict, stamp: str) -> Path:
    stage = data_dir / f".backup-dr-restore-{stamp}"
    stage.mkdir()
    try:
        shutil.copyfile(rdb, stage / "dump.rdb")
        if settings["appendonly"] == "yes":
            aof = stage / "aof"
            aof.mkdir()
            base = f"{settings['appendfilename']}.1.base.rdb"
            os.link(stage / "dump.rdb", aof / base)  # Redis never modifies a base file in place
            (aof / f"{settings['appendfilename']}.manifest").write_text(f"file {base} seq 1 type b\n")
    except BaseException:  # e.g. the data dir's disk is full: nothing was touched yet
        shutil.rmtree(stage, ignore_errors=True)
        raise
    return stage


def _match_owner_mode(path: Path, like: os.stat_result | None, default_mode: int) -> None:
    mode = (like.st_mode & 0o7777) if like else default_mode
    os.chmod(path, mode)
    if like and (like.st_uid, like.st_gid) != (os.stat(path).st_uid, os.stat(path).st_gid):
        try:
            os.chown(path, like.st_uid, like.st_gid)
        except PermissionError:
            log.warning("cannot give %s the owner %s:%s of the file it replaces (not root); mode %o set",
                        path, like.st_uid, like.st_gid, mode)


def _stat(path: Path) -> os.stat_result | None:
    try:
        return path.stat()
    except FileNotFoundError:
        return None


def _run_restart(source: RedisSource, conn: ConnInfo, timeout: float) -> None:
    argv = list(source.restart_command)
    log.info("restarting redis source %s: %s", source.name, argv)
    try:
        proc = subprocess.run(argv, capture_output=True, text=True, errors="replace", timeout=timeout)
    except (OSError, subprocess.TimeoutExpired) as e:
        raise RestoreError(f"restart command of redis source {source.name!r} failed to run: {redact(str(e), conn.secrets)}") from None
    if proc.returncode != 0:
        tail = redact((proc.stderr or proc.stdout)[-800:], conn.secrets)
        raise RestoreError(f"restart command of redis source {source.name!r} exited with code {proc.returncode}",
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


def _swap_in(data_dir: Path, stage: Path, safety: Path, settings: dict) -> list[tuple[Path, Path]]:
    """Move current files to ``safety`` and staged ones into place; return (moved, back-to) pairs
    in the order to undo them."""
    undo: list[tuple[Path, Path]] = []
    rdb = data_dir / settings["dbfilename"]
    aof = data_dir / (settings["appenddirname"] or "appendonlydir")
    old_rdb, old_aof = _stat(rdb), _stat(aof)
    old_aof_file = next((p.stat() for p in aof.iterdir() if p.is_file()), None) if old_aof else None
    for current in (rdb, aof):
        if current.exists():
            os.rename(current, safety / current.name)
            undo.append((safety / current.name, current))
    os.rename(stage / "dump.rdb", rdb)
    undo.insert(0, (rdb, None))
    _match_owner_mode(rdb, old_rdb, 0o644)
    if (stage / "aof").exists():
        os.rename(stage / "aof", aof)
        undo.insert(0, (aof, None))
        _match_owner_mode(aof, old_aof, 0o755)
        for f in aof.iterdir():
            _match_owner_mode(f, old_aof_file or old_rdb, 0o644)
    return undo


def _remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path)
    else:
        path.unlink(missing_ok=True)


def _undo(undo: list[tuple[Path, Path | None]]) -> None:
    """Remove the placed files, then move the safety copy back. Whatever now sits where a safety
    file goes back (e.g. an AOF directory the restarted server created) came from the failed
    attempt and is removed first."""
    for path, back_to in undo:
        if back_to is None:
            _remove(path)
        else:
            if back_to.exists() or back_to.is_symlink():
                _remove(back_to)
            os.rename(path, back_to)


def restore_data_dir(conn: ConnInfo, source: RedisSource, store: Store, manifest: Manifest, *,
                     workdir: str | Path | None = None, restart_timeout: float = 300.0, load_timeout: float = 600.0,
                     keep_safety_copy: bool = True) -> dict[str, Any]:
    """Replace the data of the server behind ``conn`` with ``manifest``'s backup; see the module doc.

    Returns a report (counts, seconds, safety copy path). Raises RestoreRefused before touching
    anything, or RestoreError saying whether the server was rolled back.
    """
    import redis

    if not source.data_dir or not source.restart_command:
        raise RestoreRefused(f"redis source {source.name!r}: a data_dir restore needs data_dir and restart_command in the policy",
                             hint="set both, or restore into a scratch server (verify_rdb_restore / restore_to_scratch)")
    data_dir = Path(source.data_dir)
    if not data_dir.is_dir():
        raise RestoreRefused(f"redis source {source.name!r}: data_dir {data_dir} does not exist on this worker")
    t0 = time.monotonic()
    stamp = datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%S%fZ")
    work = Path(tempfile.mkdtemp(prefix="backup-dr-redis-restore-", dir=workdir))
    try:
        rdb, aof_dir = fetch_backup_files(store, manifest, work)
        expected, expected_expires = dict(manifest.counts), dict(manifest.details.get("expires") or {})
        if aof_dir is not None:  # prove it loads, learn its exact counts, and turn it into an RDB
            with ScratchRedis(aof_dir=aof_dir, workdir=work, appendfilename=manifest.details.get("appendfilename") or "appendonly.aof") as s:
                state = server_state(s)
                expected, expected_expires = state["keys"], state["expires"]
                rdb = work / "from-aof.rdb"
                shutil.copyfile(s.save_rdb(), rdb)
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
        stage = _stage(data_dir, rdb, settings, stamp)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    safety = data_dir / f".backup-dr-safety-{stamp}"
    undo: list = []
    try:
        with redis_client(conn, timeout=30) as r:
            if settings["appendonly"] == "yes":
                r.config_set("appendonly", "no")
            r.config_set("save", "")
            bgsave(r, conn, timeout=load_timeout)  # the safety copy holds what the server has in memory now
        safety.mkdir()
        undo = _swap_in(data_dir, stage, safety, settings)
        _run_restart(source, conn, restart_timeout)
        state, new_run_id = _wait_serving(conn, load_timeout)
        keys, expires = state["keys"], state["expires"]
        problems = _check_restored(state, expected, expected_expires)
        if problems:
            raise RestoreError(f"{target(conn).where} came back with other key counts than the backup", detail="; ".join(problems))
    except BaseException as failure:
        raise _roll_back(conn, source, settings, undo, safety, run_id, before_keys, before_expires,
                         restart_timeout, load_timeout, failure) from failure
    finally:
        shutil.rmtree(stage, ignore_errors=True)
    if not keep_safety_copy:
        shutil.rmtree(safety, ignore_errors=True)
    report = {"backup_id": manifest.backup_id, "restored": keys, "restored_expires": expires, "expected": expected,
              "previous": before_keys, "safety_copy": str(safety) if keep_safety_copy else None,
              "aof": settings["appendonly"] == "yes", "run_id": new_run_id, "seconds": round(time.monotonic() - t0, 3)}
    log.info("redis source %s restored from %s: %s keys, safety copy %s", source.name, manifest.backup_id,
             sum(keys.values()), report["safety_copy"])
    return report


def _roll_back(conn, source, settings, undo, safety: Path, run_id, before_keys, before_expires, restart_timeout,
               load_timeout, failure) -> RestoreError:
    """Put the previous data back; return the RestoreError that says how that went."""
    import redis

    cause = redact(str(failure), conn.secrets)
    log.error("redis restore of %s failed (%s); rolling back", source.name, cause)
    try:
        try:
            with redis_client(conn, timeout=5) as r:
                still_old = r.info("server")["run_id"] == run_id
                if not still_old:  # a new process serves the failed restore: it must not write on its way down
                    r.config_set("appendonly", "no")
                    r.config_set("save", "")
        except redis.RedisError:
            still_old = False  # down: nothing to quiesce
        _undo(undo)
        if safety.is_dir() and not any(safety.iterdir()):
            safety.rmdir()
        if still_old:  # the restart never happened: the old process still holds the old data
            with redis_client(conn, timeout=30) as r:
                r.config_set("save", settings["save"])
                if settings["appendonly"] == "yes":
                    r.config_set("appendonly", "yes")
        else:
            _run_restart(source, conn, restart_timeout)
        state, _ = _wait_serving(conn, load_timeout)
        keys = state["keys"]
        problems = compare_counts(before_keys, before_expires, keys, allow_extra=True)
        if problems:
            raise RestoreError("after the rollback the server's key counts differ from before: " + "; ".join(problems))
    except (BackupDRError, OSError, redis.RedisError) as e:
        log.error("rollback of the redis restore of %s failed: %s", source.name, redact(str(e), conn.secrets))
        return RestoreError(
            f"redis restore of {source.name!r} failed AND the rollback failed: {redact(str(e), conn.secrets)}",
            detail=f"restore failure: {cause}",
            hint=f"the previous files are in {safety} (or already back in place); put them back and restart by hand",
        )
    return RestoreError(f"redis restore of {source.name!r} failed; rolled back: the server serves its previous data "
                        f"({sum(keys.values())} keys)", detail=cause)
