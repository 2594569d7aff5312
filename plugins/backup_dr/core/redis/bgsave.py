"""BGSAVE on the server, wait for it properly, then copy its dump.rdb (co-located workers).

The seed's script compared ``LASTSAVE`` with itself and so never waited; LASTSAVE also
has a one-second resolution, so even a correct comparison can miss a save that finished
within the same second. Completion is read from ``INFO persistence`` instead:
``rdb_bgsave_in_progress:0`` *and* the ``rdb_saves`` counter above its value from before
the request *and* ``rdb_last_bgsave_status:ok``. A save that completes after a moment when
none was running necessarily started after that moment, so it is a snapshot at least as
new as the request.
"""

from __future__ import annotations

import logging
import os
import time
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

from backup_dr.core.connections import ConnInfo
from backup_dr.core.errors import ConnectionConfigError, NotFoundError, SourceError
from backup_dr.core.policy_model import RedisSource
from backup_dr.core.redis.client import target, translate

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class BgsaveResult:
    rdb_saves: int
    last_save_time: datetime
    scheduled: bool  # BGSAVE SCHEDULE was needed (an AOF rewrite was running)
    seconds: float


def _persistence(r, conn: ConnInfo) -> dict:
    import redis.exceptions as rx

    try:
        return r.info("persistence")
    except rx.RedisError as e:
        raise translate(conn, e, "run INFO persistence") from None


def _wait_idle(r, conn: ConnInfo, deadline: float, poll: float) -> dict:
    """Wait until no RDB save is running; return that INFO persistence."""
    while True:
        p = _persistence(r, conn)
        if not p.get("rdb_bgsave_in_progress"):
            return p
        if time.monotonic() > deadline:
            raise SourceError(f"{target(conn).where}: a BGSAVE already running did not finish in time")
        time.sleep(poll)


def bgsave(r, conn: ConnInfo, *, timeout: float = 3600.0, poll: float = 0.05) -> BgsaveResult:
    """Run a BGSAVE and wait until it (or a later save) completed successfully."""
    import redis.exceptions as rx

    t = target(conn)
    t0 = time.monotonic()
    deadline = t0 + timeout
    scheduled = False
    while True:
        before = _wait_idle(r, conn, deadline, poll)
        if "rdb_saves" not in before:
            raise ConnectionConfigError(
                f"{t.where}: INFO persistence has no rdb_saves counter (Redis < 7.0)",
                hint="mode 'bgsave' needs Redis 7.0+ to tell when its save finished; use mode 'replication'",
            )
        try:
            r.execute_command("BGSAVE")
        except rx.ResponseError as e:
            text = str(e)
            if "already in progress" in text:
                continue  # someone else's save started in between: wait for it, then ours
            if "Another child process is active" in text:  # an AOF rewrite: queue ours behind it
                r.execute_command("BGSAVE", "SCHEDULE")
                scheduled = True
            else:
                raise translate(conn, e, "run BGSAVE") from None
        except rx.RedisError as e:
            raise translate(conn, e, "run BGSAVE") from None
        break
    log.info("%s: BGSAVE %s (rdb_saves was %s)", t.where, "scheduled after the running AOF rewrite" if scheduled else "started",
             before["rdb_saves"])
    saw_running = False
    while True:
        p = _persistence(r, conn)
        running = bool(p.get("rdb_bgsave_in_progress"))
        saw_running = saw_running or running
        if not running and p["rdb_saves"] > before["rdb_saves"]:
            if p.get("rdb_last_bgsave_status") != "ok":
                raise SourceError(f"{t.where}: BGSAVE failed (rdb_last_bgsave_status:{p.get('rdb_last_bgsave_status')})",
                                  hint="see the Redis log: usually a full disk or a permission problem in its dir")
            break
        if not running and saw_running and p.get("rdb_last_bgsave_status") != "ok":
            raise SourceError(f"{t.where}: BGSAVE failed (rdb_last_bgsave_status:err)",
                              hint="see the Redis log: usually a full disk or a permission problem in its dir")
        if time.monotonic() > deadline:
            raise SourceError(f"{t.where}: BGSAVE did not finish within {timeout:.0f}s",
                              hint="raise the task timeout; large datasets need a while to fork and write")
        time.sleep(poll)
    last = datetime.fromtimestamp(int(p["rdb_last_save_time"]), timezone.utc)
    seconds = time.monotonic() - t0
    log.info("%s: BGSAVE done in %.1fs (rdb_saves %s -> %s)", t.where, seconds, before["rdb_saves"], p["rdb_saves"])
    return BgsaveResult(int(p["rdb_saves"]), last, scheduled, seconds)


def config_get(r, conn: ConnInfo, name: str) -> str | None:
    """A server setting, or None when the user may not read it."""
    import redis.exceptions as rx

    try:
        value = r.config_get(name).get(name)
    except rx.NoPermissionError:
        return None
    except rx.RedisError as e:
        raise translate(conn, e, f"run CONFIG GET {name}") from None
    return value.decode() if isinstance(value, bytes) else value


def server_data_dir(r, conn: ConnInfo, source: RedisSource) -> Path:
    """Where this worker finds the server's files: ``source.data_dir`` (the worker's view of the
    server's ``dir``, e.g. a mounted volume) or else the server's own ``CONFIG GET dir``."""
    if source.data_dir:
        return Path(source.data_dir)
    server_dir = config_get(r, conn, "dir")
    if not server_dir:
        raise ConnectionConfigError(
            f"redis source {source.name!r}: no data_dir configured and CONFIG GET dir is not permitted",
            hint="set data_dir for the source in the policy (the server's dir as this worker sees it)",
        )
    return Path(server_dir)


def rdb_path(r, conn: ConnInfo, source: RedisSource) -> Path:
    name = config_get(r, conn, "dbfilename") or "dump.rdb"
    path = server_data_dir(r, conn, source) / name
    if not path.is_file():
        raise NotFoundError(
            f"redis source {source.name!r}: {path} does not exist after BGSAVE",
            hint="data_dir must be the server's dir as seen from this worker (mode 'bgsave' needs a co-located worker)",
        )
    return path


def open_fresh_rdb(path: Path, result: BgsaveResult, source: RedisSource):
    """Open the dump the save just wrote. Redis replaces it by rename, so the open file stays
    one consistent snapshot even if another save lands while it is copied. An old file means
    data_dir points somewhere else, and copying it would silently back up stale data."""
    f = open(path, "rb")
    mtime = os.fstat(f.fileno()).st_mtime
    if mtime < result.last_save_time.timestamp() - 2:
        f.close()
        raise ConnectionConfigError(
            f"redis source {source.name!r}: {path} was last written "
            f"{datetime.fromtimestamp(mtime, timezone.utc):%Y-%m-%d %H:%M:%S}Z, before the BGSAVE that just finished",
            hint="data_dir is not the directory this server saves into; fix data_dir in the policy",
        )
    return f
