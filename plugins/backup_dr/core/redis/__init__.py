"""Redis backup and restore: RDB over the replication protocol, BGSAVE + copy, AOF directories.

The functions the Airflow operators and the CLI call (all take plain objects)::

    backup_redis(conn, source, writer)               -> Manifest        (modes replication | bgsave | aof)
    artifact_kind(source)                            -> "rdb" | "aof"   (the BackupId kind)
    verify_rdb_restore(store, manifest)              -> report dict     (scratch server, counts, sampled keys)
    restore_to_scratch(store, manifest)              -> ScratchRedis    (drills: a running copy; stop() it)
    restore_data_dir(conn, source, store, manifest)  -> report dict     (safety copy, restart, rollback)
    fetch_rdb(conn, out)                             -> RdbFetch        (the raw replication fetch)
"""

from __future__ import annotations

from backup_dr.core.redis.backup import AOF_FILE, RDB_FILE, artifact_kind, backup_redis
from backup_dr.core.redis.replication import RdbFetch, fetch_rdb
from backup_dr.core.redis.restore import restore_data_dir
from backup_dr.core.redis.scratch import ScratchRedis
from backup_dr.core.redis.verify import restore_to_scratch, verify_rdb_restore, verify_redis_restore

__all__ = [
    "AOF_FILE", "RDB_FILE", "RdbFetch", "ScratchRedis", "artifact_kind", "backup_redis", "fetch_rdb",
    "restore_data_dir", "restore_to_scratch", "verify_rdb_restore", "verify_redis_restore",
]
