"""A files restore in a process of its own, for a test to SIGKILL: ``files_restore_child.py ARGS_JSON``
with {"store": dir, "backup_id": id, "target": dir, "workdir": dir, "journal": dir}."""

from __future__ import annotations

import json
import sys

from backup_dr.core.artifacts.layout import BackupId
from backup_dr.core.artifacts.reader import load_manifest
from backup_dr.core.files import restore_files
from backup_dr.core.restores.journal import JournalDir
from backup_dr.core.stores.local import LocalStore

if __name__ == "__main__":
    a = json.loads(sys.argv[1])
    store = LocalStore(a["store"])
    restore_files(store, load_manifest(store, BackupId.parse(a["backup_id"])), a["target"], workdir=a["workdir"],
                  overwrite=True, journal=JournalDir(a["journal"]))
