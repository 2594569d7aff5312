"""MongoDB restores and the restore journal: what is recorded, and how a dead restore is undone.

The safe restore (:mod:`.safe_restore`) records itself in the journal before it touches
the target (:func:`journal_for`), with the safety backup (:func:`safety_record`) and the
collections it writes. If its process is SIGKILLed, :func:`rollback_interrupted` later puts
the target back from that record alone: it drops the collections the restore writes,
restores them from the safety backup, and validates them against the safety backup's
counts and indexes before the record goes. ``restore resume`` instead re-runs the restore
with the SAME safety backup (a new one would save the half-written state).

Limit: a collection that only the archive's oplog window creates (not in the backup's
collection list) is not known to the record, so a rollback after a kill does not drop it.
"""

from __future__ import annotations

import logging
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator

from backup_dr.core.artifacts.layout import BackupId
from backup_dr.core.artifacts.manifest import Manifest
from backup_dr.core.artifacts.reader import load_manifest
from backup_dr.core.errors import RestoreError
from backup_dr.core.mongo.mongo_errors import describe, translate
from backup_dr.core.restores.journal import JournalDir, JournalEntry, OpenJournal, same_target
from backup_dr.core.restores.signals import shielded
from backup_dr.core.stores.local import LocalStore

log = logging.getLogger(__name__)


@dataclass
class Journaling:
    """How a MongoDB restore is journaled. ``dir``: the journal's root (default: the safety
    store's root, i.e. the local store); ``conn_id``: the target's connection id, so
    ``restore resume`` can reconnect; ``resume``: what ``restore resume`` re-runs;
    ``takes_over``: the interrupted record this restore finishes; ``open``: a record the
    caller already holds (a point-in-time restore journals base restore + replay as one)."""

    dir: str | Path | None = None
    conn_id: str | None = None
    backup_id: str | None = None
    resume: dict[str, Any] = field(default_factory=dict)
    takes_over: JournalEntry | None = None
    open: OpenJournal | None = None


def mongo_target(client, database: str, conn_id: str | None = None) -> dict[str, Any]:
    """The journal's identity of a target: every server address the client knows + the database."""
    client.admin.command("ping")  # discovery done: a replica set lists its members
    addresses = sorted(f"{host}:{port}" for host, port in client.topology_description.server_descriptions())
    label = f"MongoDB {','.join(addresses)} database {database!r}" + (f" (connection {conn_id})" if conn_id else "")
    return {"kind": "mongodb", "addresses": addresses, "database": database, "conn_id": conn_id, "label": label}


@contextmanager
def journal_for(client, database: str, safety_store: LocalStore, journaling: Journaling | None, *, what: str,
                secrets: list[str] | None = None) -> Iterator[OpenJournal]:
    """The open journal record of this restore (a new one, or the caller's ``open`` one)."""
    j = journaling or Journaling()
    if j.open is not None:
        yield j.open
        return
    with translate(f"preparing the restore into {database!r}", secrets=secrets, cls=RestoreError):
        target = mongo_target(client, database, j.conn_id)
    journal = JournalDir(j.dir or safety_store.root)
    with journal.begin("mongodb", target, backup_id=j.backup_id, what=what, resume=j.resume, takes_over=j.takes_over) as opened:
        yield opened


def find_interrupted(journal: JournalDir, client, database: str) -> JournalEntry | None:
    """The newest interrupted restore into this database on this server, if any."""
    target = mongo_target(client, database)
    dead = [e for e in journal.interrupted() if same_target(e.target, target)]
    return dead[-1] if dead else None


def safety_record(manifest: Manifest | None, store: LocalStore) -> dict[str, Any]:
    """What the journal keeps about the safety backup (enough to roll back without a catalog)."""
    if manifest is None:
        return {"none": "the target database did not exist before the restore: undoing it means dropping what it wrote"}
    return {"backup_id": manifest.backup_id, "root": str(Path(store.root).resolve()), "database": manifest.details.get("database"),
            "archive": str(store.path(manifest.id.key(manifest.files[0].name))), "counts": dict(manifest.counts),
            "describe": f"safety backup {manifest.backup_id} in {store.describe()}"}


def journal_safety(entry: JournalEntry) -> tuple[Manifest | None, LocalStore | None]:
    """The safety backup a record names (None, None when the target database did not exist)."""
    s = entry.safety
    if not s.get("backup_id"):
        return None, None
    store = LocalStore(s["root"], name="safety")
    return load_manifest(store, BackupId.parse(s["backup_id"])), store


def rollback_interrupted(client, journal: JournalDir, entry: JournalEntry, *, secrets: list[str] | None = None) -> dict[str, Any]:
    """Undo a MongoDB restore that died mid-way, from its journal record; validated, then the record goes."""
    from backup_dr.core.mongo.restore import open_archive, restore_archive
    from backup_dr.core.mongo.safe_restore import validate_restore

    database = entry.target["database"]
    written = list(entry.resume.get("written") or [])
    with journal.claim(entry), shielded():
        if not entry.touched:
            log.info("restore %s died before touching %s: nothing to undo", entry.id, entry.label)
            return {"journal": entry.id, "target": entry.label, "rolled_back": [], "note": "the target was never touched"}
        manifest, store = journal_safety(entry)
        with translate(f"rolling back the interrupted restore into {database!r}", secrets=secrets, cls=RestoreError):
            db = client[database]
            existing = set(db.list_collection_names())
            for name in sorted(set(written) & existing):
                db.drop_collection(name)
            restored: list[str] = []
            validation: dict[str, Any] = {}
            if manifest is not None:
                archive = store.path(manifest.id.key(manifest.files[0].name))
                with open_archive(archive) as reader:
                    have = {e.collection for e in reader.prelude if not e.is_oplog}
                restored = sorted(set(written) & have)
                if restored:
                    result = restore_archive(client, archive, target_db=database, collections=restored, drop=True,
                                             replay_oplog=False)
                    validation = validate_restore(client, result)
    log.info("interrupted restore %s rolled back: %s restored from %s, the rest of %s dropped", entry.id,
             ", ".join(restored) or "nothing", entry.safety_text(), ", ".join(written) or "nothing")
    return {"journal": entry.id, "target": entry.label, "rolled_back": restored,
            "dropped": sorted(set(written) - set(restored)), "safety": entry.safety_text(), "validation": validation}


def rollback_failed_hint(opened: OpenJournal, safety_text: str) -> str:
    """The hint of a restore whose rollback failed too: the CLI command that finishes the rollback."""
    return (f"the journal record {opened.id} is kept; when the target answers again, finish the rollback with "
            f"`python -m backup_dr restore rollback {opened.id}` (it puts back the {safety_text}, validated). "
            "`python -m backup_dr restore status` shows it.")


def short_error(e: BaseException, secrets: list[str] | None) -> str:
    return f"{type(e).__name__}: {describe(e, secrets)}"
