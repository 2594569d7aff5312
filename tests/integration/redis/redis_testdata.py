"""Test data for the Redis tests: a fast seeder of every key type and a round-trip fingerprint.

* ``seed(r, db, n)``: fills one db through a server-side Lua loop (seconds, not minutes) -
  real write commands, so they reach an AOF too (``DEBUG POPULATE`` does not): strings raw
  and int-encoded, hashes, lists, sets (intset and hashtable), zsets, 10% with a TTL, plus
  big collections (non-compact encodings) and two streams with consumer groups and pending
  entries.
* ``fingerprint(r)``: DEBUG DIGEST (all dbs, every value; it ignores TTLs), per-db DBSIZE,
  PEXPIRETIME of a sample of keys with a TTL, stream groups and pending entries: what
  "restored equals source" means in these tests.
* ``RestartableRedis``: a server that ``restart_redis.py`` (a data_dir restore's restart
  command) can stop and start again.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

from backup_dr.core.connections import ConnInfo
from backup_dr.devstack.servers import RedisServer

PASSWORD = "redis-test-secret"
BACKUP_USER, BACKUP_PW = "backup", "backup-user-secret"
NOREPL_USER, NOREPL_PW = "norepl", "norepl-user-secret"
ACL_USERS = {BACKUP_USER: (BACKUP_PW, "+sync +psync +replconf"), NOREPL_USER: (NOREPL_PW, "+sync +psync")}
STAMP0 = datetime(2026, 11, 26, 8, 0, tzinfo=timezone.utc)
DBS = {0: 100_000, 1: 10_000, 5: 5_000}
RESTART_SCRIPT = Path(__file__).with_name("restart_redis.py")

_SEED = """
local prefix, n = ARGV[1], tonumber(ARGV[2])
for i = 1, n do
  local kind = i % 8
  local key = prefix .. kind .. ':' .. i
  if kind == 0 then redis.call('SET', key, 'value-' .. i .. string.rep('x', i % 40))
  elseif kind == 1 then redis.call('SET', key, i * 7)
  elseif kind == 2 then redis.call('HSET', key, 'name', 'business ' .. i, 'employees', i % 500, 'region', 'r' .. (i % 17))
  elseif kind == 3 then redis.call('RPUSH', key, 'page:' .. i, 'page:' .. (i + 1), i)
  elseif kind == 4 then redis.call('SADD', key, i, i + 1, i + 2)
  elseif kind == 5 then redis.call('SADD', key, 'region-' .. (i % 17), 'm' .. i)
  elseif kind == 6 then redis.call('ZADD', key, i, 'announcement:' .. i, i / 3, 'b' .. i)
  else redis.call('SET', key, 'session-' .. i) end
  if i % 10 == 3 then redis.call('PEXPIRE', key, 3600000 + i * 13) end
end
return n
"""


def seed(r, db: int, n: int, prefix: str = "k") -> None:
    """``n`` keys of mixed types in ``db`` plus a few big collections and two streams."""
    r.execute_command("SELECT", db)
    r.eval(_SEED, 0, f"{prefix}{db}:", n)
    pipe = r.pipeline(transaction=False)
    pipe.hset(f"{prefix}big:hash", mapping={f"f{i}": f"v{i}" for i in range(1000)})
    pipe.rpush(f"{prefix}big:list", *[f"item-{i}" for i in range(5000)])
    pipe.sadd(f"{prefix}big:set", *[f"member-{i}" for i in range(1000)])
    pipe.zadd(f"{prefix}big:zset", {f"z{i}": i * 1.5 for i in range(1000)})
    for s in range(2):
        stream = f"{prefix}events:{s}"
        for i in range(300):
            pipe.xadd(stream, {"type": "view", "item": str(i)})
    pipe.execute()
    for s in range(2):
        stream = f"{prefix}events:{s}"
        r.xgroup_create(stream, "indexer", id="0")
        r.xgroup_create(stream, "mailer", id="0")
        r.xreadgroup("indexer", "worker-1", {stream: ">"}, count=25)
        r.xreadgroup("mailer", "worker-2", {stream: ">"}, count=7)
    r.pexpire(f"{prefix}big:list", 7_200_000)
    r.execute_command("SELECT", 0)


def seed_all(r, dbs: dict[int, int] = DBS) -> None:
    for db, n in dbs.items():
        seed(r, db, n)


def fingerprint(r, prefix: str = "k") -> dict:
    """What must survive a backup round trip, byte for byte (``prefix`` as given to :func:`seed`)."""
    out = {"digest": r.execute_command("DEBUG", "DIGEST"), "dbsize": {}, "pexpiretime": {}, "streams": {}}
    for db in range(16):
        r.execute_command("SELECT", db)
        size = r.dbsize()
        if not size:
            continue
        out["dbsize"][db] = size
        for i in range(3, size + 1, 970):  # i % 10 == 3 carry a TTL: every 97th of them, all types
            key = f"{prefix}{db}:{i % 8}:{i}"
            out["pexpiretime"][(db, key)] = r.execute_command("PEXPIRETIME", key)
        out["pexpiretime"][(db, f"{prefix}big:list")] = r.execute_command("PEXPIRETIME", f"{prefix}big:list")
        for s in range(2):
            stream = f"{prefix}events:{s}"
            if r.exists(stream):
                groups = [(g["name"], g["pending"], g["last-delivered-id"]) for g in r.xinfo_groups(stream)]
                pending = [(p["message_id"], p["consumer"]) for p in r.xpending_range(stream, "indexer", "-", "+", 1000)]
                out["streams"][(db, stream)] = (groups, pending)
    r.execute_command("SELECT", 0)
    assert any(v > 0 for v in out["pexpiretime"].values()), "the sample holds no key with a TTL"
    return out


def conn_for(server, user: str | None = None, password: str | None = PASSWORD, conn_id: str = "redis_cache") -> ConnInfo:
    return ConnInfo(conn_id, "redis", "127.0.0.1", server.port, user, password)


class RestartableRedis(RedisServer):
    """A devstack RedisServer that the restart script can stop and start again daemonized.

    The config gets a ``pidfile``; the restart script (an argv list, no secrets: the password
    stays in the 0600 config file) SIGTERMs that PID and runs ``redis-server <config>
    --daemonize yes``. Cleanup stops whichever PID the pidfile names, and only that.
    """

    def __init__(self, workdir, **kw):
        super().__init__(workdir, **kw)
        self.pidfile = self.workdir / "redis.pid"
        self.extra = {**self.extra, "pidfile": str(self.pidfile)}

    def restart_command(self, *flags: str) -> tuple[str, ...]:
        return (sys.executable, str(RESTART_SCRIPT), "--config", str(self.config_path), "--pidfile", str(self.pidfile),
                "--port", str(self.port), *flags)

    def restart_now(self, timeout: float = 30.0) -> None:
        """Run the plain restart command and wait until the server serves again."""
        subprocess.run(self.restart_command(), check=True, timeout=60)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                if self.ready():
                    return
            except Exception:  # noqa: BLE001 - not up yet
                pass
            time.sleep(0.05)
        raise AssertionError("the server did not come back after a restart")

    def cleanup(self) -> None:
        super().stop()
        try:
            pid = int(self.pidfile.read_text().strip())
        except (OSError, ValueError):
            pid = None
        if pid and _is_redis_server(pid):
            try:
                os.kill(pid, signal.SIGTERM)
                deadline = time.monotonic() + 10
                while self.pidfile.exists() and time.monotonic() < deadline:
                    time.sleep(0.05)
            except ProcessLookupError:
                pass
        super().cleanup()


def _is_redis_server(pid: int) -> bool:
    """Guard against a stale pidfile naming a reused PID: only ever signal a redis-server."""
    try:
        return b"redis-server" in Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return False


def _logical(r, key: bytes, kind: bytes):
    """A key's value independent of its encoding (a hashtable set's DUMP order varies per load)."""
    return {b"string": lambda: r.get(key), b"list": lambda: r.lrange(key, 0, -1),
            b"hash": lambda: sorted(r.hgetall(key).items()), b"set": lambda: sorted(r.smembers(key)),
            b"zset": lambda: r.zrange(key, 0, -1, withscores=True),
            b"stream": lambda: (r.xrange(key), sorted((g["name"], g["pending"]) for g in r.xinfo_groups(key)))}[kind]()


def everything(server) -> dict:
    """Every key of every database: (type, value, PEXPIRETIME) — what "the whole server equals" means."""
    out = {}
    for db in range(16):
        r = server.client(db=db)
        for key in r.scan_iter(count=2000):
            kind = r.type(key)
            out[(db, key)] = (kind, _logical(r, key, kind), r.execute_command("PEXPIRETIME", key))
        r.close()
    return out
