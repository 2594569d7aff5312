"""Redis restores and the restore journal: undoing a network load or a data-dir restore that died.

* A network load (:mod:`.load`) records its safety copy (an RDB ``safety`` backup in the
  local store, or "the target was empty"); undoing it = flush the target, load the safety
  copy, compare the whole target with it.
* A data-dir restore (:mod:`.restore`) records the data dir, the safety directory its files
  are moved into, which files existed, the runtime settings and the restart command, all
  BEFORE it moves anything; undoing it looks at what is where (a file in the safety
  directory was moved, so whatever now sits in its place came from the restore), puts the
  previous files back, restarts the server and checks it serves its previous key counts.
"""

from __future__ import annotations

import logging
from typing import Any

from backup_dr.core.connections import ConnInfo
from backup_dr.core.restores.journal import JournalDir, JournalEntry
from backup_dr.core.restores.signals import shielded

log = logging.getLogger(__name__)


def rollback_interrupted_load(conn: ConnInfo, journal: JournalDir, entry: JournalEntry, *, timeout: float = 3600.0,
                              workdir: str | None = None) -> dict[str, Any]:
    from backup_dr.core.redis.load import load_safety, put_back

    with journal.claim(entry), shielded():
        if not entry.touched:
            return {"journal": entry.id, "target": entry.label, "rolled_back": [], "note": "the target was never touched"}
        safety, store = load_safety(entry.safety)
        report = put_back(conn, safety, store, timeout=timeout, workdir=workdir)
    log.info("interrupted load %s rolled back: %s holds its safety copy again (%s)", entry.id, entry.label,
             report["verified"]["method"])
    return {"journal": entry.id, "target": entry.label, "rolled_back": sorted(report["restored"]),
            "safety": entry.safety_text(), "verified": report["verified"]}


def rollback_interrupted_data_dir(conn: ConnInfo, journal: JournalDir, entry: JournalEntry) -> dict[str, Any]:
    from backup_dr.core.redis.restore import undo_recorded

    with journal.claim(entry), shielded():
        if not entry.touched:
            return {"journal": entry.id, "target": entry.label, "rolled_back": [], "note": "the target was never touched"}
        keys = undo_recorded(conn, entry.safety)
    log.info("interrupted data-dir restore %s rolled back: %s serves its previous data (%s)", entry.id, entry.label, keys)
    return {"journal": entry.id, "target": entry.label, "rolled_back": sorted(keys), "safety": entry.safety_text(),
            "keys": keys}
