"""A data-dir restore in a process of its own, for a test to SIGKILL: ``data_dir_restore_child.py ARGS_JSON``.

ARGS_JSON: {"store": dir, "backup_id": id, "port": n, "data_dir": dir, "restart_command": [argv],
"journal": dir}; the server's password comes in the environment (TEST_REDIS_PASSWORD), never argv.
"""

from __future__ import annotations

import json
import os
import sys

from backup_dr.core.artifacts.layout import BackupId
from backup_dr.core.artifacts.reader import load_manifest
from backup_dr.core.connections import ConnInfo
from backup_dr.core.policy_model import RedisSource
from backup_dr.core.redis.restore import restore_data_dir
from backup_dr.core.restores.journal import JournalDir
from backup_dr.core.stores.local import LocalStore

if __name__ == "__main__":
    a = json.loads(sys.argv[1])
    store = LocalStore(a["store"])
    conn = ConnInfo("redis_cache", "redis", "127.0.0.1", a["port"], None, os.environ["TEST_REDIS_PASSWORD"])
    source = RedisSource("redis_cache", "redis_cache", data_dir=a["data_dir"], restart_command=tuple(a["restart_command"]))
    restore_data_dir(conn, source, store, load_manifest(store, BackupId.parse(a["backup_id"])), journal=JournalDir(a["journal"]))
