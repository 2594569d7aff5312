"""Does a Redis server hold exactly what another holds? The proof a network restore reports.

A replace restore promises that the WHOLE target (every database) equals the backup. Key
counts cannot show that (stale keys in a database the backup lacks, a value changed in
place); this compares everything, all 16+ databases:

* ``DEBUG DIGEST`` on both servers when both allow it: one hash over every key name, type
  and value of every database. It ignores TTLs, so the expiry time of every key is read
  as well (``PEXPIRETIME``, exact to the millisecond: the load copies it as an absolute
  time). Method ``debug-digest+ttl``.
* Otherwise (production servers usually run without debug commands) the same comparison
  key by key: every key of every database of the reference exists in the other with the
  same ``DUMP`` payload (or, when the payloads differ only because the two servers encode
  small values differently, the same logical value) and the same expiry time, and no
  database of the other holds more keys. Method ``full-compare``.

A key that expires while being compared (missing on one side, its expiry time passed) is
not a difference.
"""

from __future__ import annotations

import time
from typing import Any, Callable

_BATCH = 500
_MAX_LISTED = 20


def _digest(r) -> str | None:
    import redis

    try:
        value = r.execute_command("DEBUG", "DIGEST")
    except redis.ResponseError:  # debug commands disabled, or not allowed for this user
        return None
    return value.decode() if isinstance(value, bytes) else str(value)


def _dbs(r) -> dict[int, int]:
    return {int(name[2:]): int(v.get("keys", 0)) for name, v in r.info("keyspace").items()
            if name.startswith("db") and isinstance(v, dict)}


def _value(r, key: bytes, kind: str):
    read: dict[str, Callable[[], Any]] = {
        "string": lambda: r.get(key), "list": lambda: r.lrange(key, 0, -1), "hash": lambda: sorted(r.hgetall(key).items()),
        "set": lambda: sorted(r.smembers(key)), "zset": lambda: r.zrange(key, 0, -1, withscores=True),
        "stream": lambda: (r.xrange(key), sorted((g["name"], g["pending"], g["last-delivered-id"]) for g in r.xinfo_groups(key))),
    }
    return read.get(kind, lambda: None)()


def _kind(r, key: bytes) -> str:
    kind = r.type(key)
    return kind.decode() if isinstance(kind, bytes) else kind


def _same_value(a, b, key: bytes) -> bool:
    kind = _kind(a, key)
    return kind == _kind(b, key) and _value(a, key, kind) == _value(b, key, kind)


def _compare_db(ref, other, db: int, with_values: bool, problems: list[str]) -> int:
    """Every key of ``ref``'s db ``db`` against ``other``'s; returns how many keys were checked."""
    checked, cursor = 0, 0
    while True:
        cursor, keys = ref.scan(cursor=cursor, count=_BATCH)
        if keys:
            sides = []
            for r in (ref, other):
                pipe = r.pipeline(transaction=False)
                for k in keys:
                    pipe.execute_command("PEXPIRETIME", k)
                    if with_values:
                        pipe.dump(k)
                sides.append(pipe.execute())
            step = 2 if with_values else 1
            now_ms = int(time.time() * 1000)
            for i, k in enumerate(keys):
                exp_a, exp_b = sides[0][i * step], sides[1][i * step]
                if exp_a == -2 or (exp_b == -2 and 0 < exp_a <= now_ms + 1000):
                    continue  # expired during the comparison
                checked += 1
                if exp_b == -2:
                    problems.append(f"db{db}: key {k[:80]!r} is missing")
                elif exp_a != exp_b:
                    problems.append(f"db{db}: key {k[:80]!r} expires at {exp_b} ms, the backup says {exp_a}")
                elif with_values and sides[0][i * step + 1] != sides[1][i * step + 1] and not _same_value(ref, other, k):
                    problems.append(f"db{db}: key {k[:80]!r} holds another value")
                if len(problems) > _MAX_LISTED:
                    return checked
        if cursor == 0:
            return checked


def compare_servers(ref_client: Callable[[int], Any], other_client: Callable[[int], Any]) -> dict[str, Any]:
    """Compare every database of two servers; ``*_client(db)`` returns a redis-py client on that db.

    Returns ``{"method", "equal", "keys", "digest", "problems"}`` (``problems`` lists the
    first differences found, at most about 20).
    """
    opened: list = []

    def on(factory, db):
        client = factory(db)
        opened.append(client)
        return client

    try:
        ref0, other0 = on(ref_client, 0), on(other_client, 0)
        digests = (_digest(ref0), _digest(other0))
        use_digest = None not in digests
        ref_dbs, other_dbs = _dbs(ref0), _dbs(other0)
        problems: list[str] = []
        if use_digest and digests[0] != digests[1]:
            problems.append(f"DEBUG DIGEST differs: {digests[1]} here, {digests[0]} in the backup")
        for db in sorted(set(other_dbs) - set(ref_dbs)):
            problems.append(f"db{db}: {other_dbs[db]} key(s) in a database the backup does not have")
        checked = 0
        for db in sorted(ref_dbs):
            a, b = on(ref_client, db), on(other_client, db)
            checked += _compare_db(a, b, db, not use_digest, problems)
            extra = b.dbsize() - a.dbsize()
            if extra > 0:
                problems.append(f"db{db}: {extra} key(s) more than the backup")
    finally:
        for client in opened:
            client.close()
    return {"method": "debug-digest+ttl" if use_digest else "full-compare", "equal": not problems, "keys": checked,
            "digest": digests[0] if use_digest else None, "problems": problems[:_MAX_LISTED]}
