"""The Redis engine: :mod:`backup_dr.core.redis` behind the engine protocol.

Backups are an RDB (replication or BGSAVE) or the Redis 7 AOF directory; a drill loads it
into a fresh local ``redis-server`` and compares key counts and a sample of keys.
"""

from __future__ import annotations

import time

from backup_dr.core.engines.base import BackupRequest, Connector, SourceEngine


class RedisEngine(SourceEngine):
    type = "redis"
    dr_role = "cache"
    label = "Redis"
    restore_commands = ("redis",)
    backup_operator = "backup_dr.operators.backup:RDBSnapshotOperator"
    journal_engines = ("redis_load", "redis_data_dir")
    journal_takeover = ("redis_load",)  # a network load; a data-dir restore swaps the files

    def artifact_kind(self, source, *, metadata_only: bool = False) -> str:
        return "aof" if getattr(source, "mode", None) == "aof" else "rdb"


    def backup(self, source, writer, connector: Connector, request: BackupRequest):
        from backup_dr.core.redis.backup import backup_redis

        conn = connector.conn_info(request.conn_id or source.conn_id)
        return backup_redis(conn, source, writer, timeout=request.timeout)

    def drill(self, manifest, store, workdir, scratch):
        from backup_dr.core.redis.verify import verify_rdb_restore

        t0 = time.monotonic()
        rep = verify_rdb_restore(store, manifest, workdir=workdir, raise_on_mismatch=False)
        return {"ok": rep["ok"], "restore_seconds": round(time.monotonic() - t0, 3), "problems": rep["problems"],
                "details": {k: rep[k] for k in ("load_seconds", "expected", "restored", "sampled_keys", "warnings")}}

    def roll_back_interrupted(self, journal, entry, connector, conn_id, secrets=None):
        from backup_dr.core.redis.interrupted import rollback_interrupted_data_dir, rollback_interrupted_load

        undo = rollback_interrupted_load if entry.engine == "redis_load" else rollback_interrupted_data_dir
        return undo(connector.conn_info(conn_id), journal, entry)
