"""Test data for the Redis tests: a fast seeder of every key type and a round-trip fingerprint.

* ``seed(r, db, n)``: fills one db through a server-side Lua loop (seconds, not minutes) -
  real write commands, so they reach an AOF too (``DEBUG POPULATE`` does not): strings raw
  and int-encoded, hashes, lists, sets (intset and hashtable), zsets, 10% with a TTL, plus
  big collections (non-compact encodings) and two streams with consumer groups and pending
  entries.
* ``fingerprint(r)``: DEBUG DIGEST (all dbs, every value; it ignores TTLs), per-db DBSIZE,
  PEXPIRETIME of a sample of keys with a TTL, stream groups and pending entries: what
  "restored equals source" means in these tests.
"""

from __future__ import annotations

from datetime import datetime, timezone
from pathlib import Path

from backup_dr.core.connections import ConnInfo

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


def fingerprint(r) -> dict:
    """What must survive a backup round trip, byte for byte."""
    out = {"digest": r.execute_command("DEBUG", "DIGEST"), "dbsize": {}, "pexpiretime": {}, "streams": {}}
    for db in range(16):
        r.execute_command("SELECT", db)
        size = r.dbsize()
        if not size:
            continue
        out["dbsize"][db] = size
        for i in range(3, DBS.get(db, 0) + 1, 970):  # i % 10 == 3 carry a TTL: every 97th of them, all types
            key = f"k{db}:{i % 8}:{i}"
            out["pexpiretime"][(db, key)] = r.execute_command("PEXPIRETIME", key)
        out["pexpiretime"][(db, "kbig:list")] = r.execute_command("PEXPIRETIME", "kbig:list")
        for s in range(2):
            stream = f"kevents:{s}"
            if r.exists(stream):
                groups = [(g["name"], g["pending"], g["last-delivered-id"]) for g in r.xinfo_groups(stream)]
                pending = [(p["message_id"], p["consumer"]) for p in r.xpending_range(stream, "indexer", "-", "+", 1000)]
                out["streams"][(db, stream)] = (groups, pending)
    r.execute_command("SELECT", 0)
    assert any(v > 0 for v in out["pexpiretime"].values()), "the sample holds no key with a TTL"
    return out


def conn_for(server, user: str | None = None, password: str | None = PASSWORD, conn_id: str = "redis_cache") -> ConnInfo:
    return ConnInfo(conn_id, "redis", "127.0.0.1", server.port, user, password)
