"""Load a Redis backup into a RUNNING server over the network (no shell on the Redis host).

The ``data_dir`` restore (restore.py) needs the worker on the Redis host and a restart
command. In a disaster the replacement Redis is often a fresh managed instance the worker
can only reach over the network, so this path: start a scratch ``redis-server`` on the
worker with the verified backup, then copy every key with ``DUMP`` / ``RESTORE ... REPLACE
ABSTTL`` (values travel in Redis's own serialisation, TTLs as absolute times), pipelined,
database by database. Key counts per db are checked against the manifest afterwards.

A non-empty target is refused unless ``replace=True`` (then each target db is flushed
first): a cache is cheap to lose, but never silently.
"""

from __future__ import annotations

import logging
import time
from typing import Any

from backup_dr.core.artifacts.manifest import Manifest
from backup_dr.core.connections import ConnInfo
from backup_dr.core.errors import RestoreError, RestoreRefused
from backup_dr.core.progress import Progress
from backup_dr.core.redis.client import keyspace_counts, redis_client, target, translate
from backup_dr.core.redis.verify import restore_to_scratch
from backup_dr.core.stores.base import Store

log = logging.getLogger(__name__)

_BATCH = 500


def _copy_db(src, dst, db: int, progress: Progress) -> int:
    src.execute_command("SELECT", db)
    dst.execute_command("SELECT", db)
    copied, cursor = 0, 0
    while True:
        cursor, keys = src.scan(cursor=cursor, count=_BATCH)
        if keys:
            read = src.pipeline(transaction=False)
            for k in keys:
                read.dump(k)
                read.execute_command("PEXPIRETIME", k)
            values = read.execute()
            write = dst.pipeline(transaction=False)
            n = 0
            for i, k in enumerate(keys):
                payload, expire_at = values[2 * i], values[2 * i + 1]
                if payload is None or expire_at == -2:  # vanished or expired while copying
                    continue
                args = ["RESTORE", k, max(expire_at, 0), payload, "REPLACE"]
                if expire_at > 0:
                    args.append("ABSTTL")
                write.execute_command(*args)
                n += 1
            write.execute()
            copied += n
            progress.add(n, sum(len(values[2 * i] or b"") for i in range(len(keys))))
        if cursor == 0:
            return copied


def load_into_server(conn: ConnInfo, store: Store, manifest: Manifest, *, replace: bool = False,
                     workdir: str | None = None, timeout: float = 3600.0) -> dict[str, Any]:
    """Copy the backup's keys into the live server of ``conn``; returns counts and timing."""
    t = target(conn)
    started = time.monotonic()
    dst = redis_client(conn, timeout=timeout)
    try:
        before, _ = keyspace_counts(dst.info("keyspace"))
    except Exception as e:  # noqa: BLE001 - translated: config vs transient
        raise translate(conn, e, "read INFO keyspace") from e
    if any(before.values()) and not replace:
        raise RestoreRefused(
            f"{t.where} is not empty ({', '.join(f'{db}: {n} keys' for db, n in sorted(before.items()) if n)})",
            hint="pass replace=True (CLI: --replace) to flush the target databases first",
        )
    expected = {db: n for db, n in manifest.counts.items() if db.startswith("db")}
    progress = Progress(f"load {manifest.backup_id} into {t.host}:{t.port}", total_items=sum(expected.values()) or None, unit="keys")
    copied: dict[str, int] = {}
    with restore_to_scratch(store, manifest, workdir=workdir) as scratch:
        src = scratch.client(socket_timeout=timeout)
        try:
            dbs = sorted(keyspace_counts(src.info("keyspace"))[0], key=lambda d: int(d[2:]))
            for name in dbs:
                db = int(name[2:])
                if replace:
                    dst.execute_command("SELECT", db)
                    dst.flushdb()
                copied[name] = _copy_db(src, dst, db, progress)
            after, _ = keyspace_counts(dst.info("keyspace"))
        except RestoreError:
            raise
        except Exception as e:  # noqa: BLE001 - network trouble mid-copy: say what state the target is in
            raise RestoreError(f"loading {manifest.backup_id} into {t.where} failed midway", detail=str(translate(conn, e, "copy keys")),
                               hint="the target holds part of the data; re-run with replace=True") from e
        finally:
            src.close()
            dst.close()
    progress.done()
    # every key copied must be there; keys that expired since the snapshot are reported, not missing
    problems = [f"{db}: {after.get(db, 0)} keys after the load, {n} copied" for db, n in copied.items() if after.get(db, 0) < n]
    expired = {db: n - copied.get(db, 0) for db, n in expected.items() if n > copied.get(db, 0)}
    result = {"backup_id": manifest.backup_id, "target": f"{t.host}:{t.port}", "copied": copied, "keys_after": after,
              "expired_since_snapshot": expired, "seconds": round(time.monotonic() - started, 3), "problems": problems}
    if problems:
        raise RestoreError(f"loading {manifest.backup_id} into {t.where} left keys missing", detail="; ".join(problems))
    log.info("loaded %s into %s: %s", manifest.backup_id, t.where, copied)
    return result

