"""Verify a backup's copy in a store by re-hashing it, and keep the result next to the backup.

Why records are separate objects (``verify-<stamp>.json`` beside ``manifest.json``): the
manifest is immutable and may be under S3 Object Lock, and a record must say WHEN a copy
was last proven good. There is ONE record format and two things it can say, kept apart:

* ``kind: "verify"`` — a **copy check**: every byte of THIS store's copy was read and
  hashed against the manifest. ``method`` says how: ``re-hash`` (``verify``),
  ``replication read-back`` (written by replication once the uploaded copy was read back),
  ``read while replicating`` (the local copy, whose bytes the upload hashed as it sent them).
* ``kind: "drill"`` — a **restore drill**: the backup was restored into a scratch target
  and checked, with the restore time (download included). A drill also hashes the copy it
  fetches before restoring it: ``copy_ok`` says what that showed (None: it never got that far).

A copy's state (:func:`copy_evidence`) is the newest record that says something about ITS
BYTES: a copy check, or a drill's ``copy_ok``; a drill that failed for another reason (say
a count mismatch) does not make the copy bad. The last drill is the newest drill record. The
catalog (:class:`backup_dr.core.catalog.CatalogEntry`) reads both through this module, so
the CLI (``list``, ``show``, ``health``), the UI, retention and the good-copy picker agree::

    {"kind": "verify", "method": "re-hash", "ok": true, "store": "s3", "backup_id": "...",
     "checked_at": "...Z", "seconds": 1.2, "bytes": 1048576, "files": [...], "problems": []}
"""

from __future__ import annotations

import json
import logging
import time
from datetime import datetime, timezone
from typing import Any

from backup_dr.core.artifacts.layout import VERIFY_PREFIX, BackupId
from backup_dr.core.artifacts.manifest import Manifest, iso
from backup_dr.core.artifacts.reader import load_manifest
from backup_dr.core.errors import BackupDRError, IntegrityError, NotFoundError
from backup_dr.core.progress import Progress
from backup_dr.core.stores.base import Store

log = logging.getLogger(__name__)

_STAMP = "%Y%m%dT%H%M%S%fZ"

COPY_CHECK = "verify"
DRILL = "drill"
RE_HASH = "re-hash"
READ_BACK = "replication read-back"
READ_WHILE_SENT = "read while replicating"


def _as_bid(backup: Manifest | BackupId | str) -> BackupId:
    if isinstance(backup, Manifest):
        return backup.id
    return backup if isinstance(backup, BackupId) else BackupId.parse(backup)


def verify_copy(store: Store, backup: Manifest | BackupId | str) -> dict[str, Any]:
    """Re-hash every data file of a backup in ``store``; the result says which file is bad and why.

    ``backup`` may be the reference manifest (e.g. the local one): the store's own manifest
    must then list the same files. With only an id, the store's manifest is the reference.
    Does not raise on a bad copy (``ok`` is False); raises on transient I/O (``StoreError``).
    """
    bid = _as_bid(backup)
    started, t0 = datetime.now(timezone.utc), time.monotonic()
    problems: list[str] = []
    files: list[dict[str, Any]] = []
    try:
        stored = load_manifest(store, bid)
    except NotFoundError:
        stored = None
        problems.append("manifest.json is missing: the copy is incomplete")
    except IntegrityError as e:
        stored = None
        problems.append(f"manifest.json is unreadable: {e.message}")
    reference = backup if isinstance(backup, Manifest) else stored
    if isinstance(backup, Manifest) and stored is not None and _file_table(stored) != _file_table(backup):
        problems.append("manifest.json in this store lists different files than the reference manifest")
    total = 0
    if reference is not None:
        progress = Progress(f"verify {bid} in {store.name}", total_items=len(reference.files),
                            total_bytes=reference.total_size, unit="files")
        for entry in reference.files:
            row: dict[str, Any] = {"name": entry.name, "expected_size": entry.size, "expected_sha256": entry.sha256}
            try:
                size, digest = store.hash_object(bid.key(entry.name))
            except NotFoundError:
                row.update(ok=False, problem="missing")
            else:
                row.update(size=size, sha256=digest, ok=size == entry.size and digest == entry.sha256)
                if not row["ok"]:
                    row["problem"] = f"size {size} vs {entry.size}" if size != entry.size else "sha256 mismatch (corrupt or tampered)"
                total += size
            if not row["ok"]:
                problems.append(f"{entry.name}: {row['problem']}")
            files.append(row)
            progress.add(1, row.get("size", 0))
        progress.done()
    ok = not problems
    seconds = time.monotonic() - t0
    (log.info if ok else log.error)("verify %s in store %s: %s (%.1f MB in %.1fs)", bid, store.name,
                                    "OK" if ok else "; ".join(problems), total / 1e6, seconds)
    return {"kind": COPY_CHECK, "method": RE_HASH, "ok": ok, "store": store.name, "location": store.describe(), "backup_id": str(bid),
            "checked_at": iso(started), "seconds": round(seconds, 3), "bytes": total, "files": files, "problems": problems}


def _file_table(m: Manifest) -> set[tuple[str, int, str]]:
    return {(f.name, f.size, f.sha256) for f in m.files}


def copy_evidence(rec: dict[str, Any] | None) -> dict[str, Any] | None:
    """What a record says about the bytes of the copy it was made on, or None (nothing).

    ``{"ok", "method", "checked_at", "problems", "kind"}``. Drill records written before
    ``copy_ok`` existed count as a good read when the drill succeeded."""
    if not rec:
        return None
    kind = rec.get("kind", COPY_CHECK)
    if kind == COPY_CHECK:
        return {"ok": rec.get("ok"), "method": rec.get("method") or RE_HASH, "checked_at": rec.get("checked_at"),
                "problems": rec.get("problems") or [], "kind": kind}
    if kind == DRILL:
        ok = rec.get("copy_ok", True if rec.get("ok") is True else None)
        if ok is None:
            return None
        return {"ok": ok, "method": "read for a restore drill", "checked_at": rec.get("checked_at"),
                "problems": [] if ok else list(rec.get("problems") or []), "kind": kind}
    return None


def record_verification(store: Store, backup: Manifest | BackupId | str, record: dict[str, Any]) -> str:
    """Write ``record`` as ``verify-<UTC stamp>.json`` next to the manifest; returns its key.

    ``record`` needs ``ok`` (bool); ``kind`` defaults to "verify" (drills use "drill"),
    ``checked_at`` to now. Never Object-Locked: records are pruned with their backup.
    """
    if not isinstance(record.get("ok"), bool):
        raise BackupDRError("a verification record needs an 'ok' field (true/false)")
    bid = _as_bid(backup)
    now = datetime.now(timezone.utc)
    body = {"kind": "verify", "checked_at": iso(now), "backup_id": str(bid), "store": store.name, **record}
    key = bid.key(f"{VERIFY_PREFIX}{now.strftime(_STAMP)}.json")
    store.put_bytes(key, (json.dumps(body, indent=2, sort_keys=True, default=str) + "\n").encode())
    return key


def verification_keys(store: Store, bid: BackupId) -> list[str]:
    """Keys of every verification record of ``bid`` in ``store``, oldest first."""
    return sorted(i.key for i in store.list(bid.prefix + VERIFY_PREFIX) if i.key.endswith(".json"))


def read_record(store: Store, key: str) -> dict[str, Any] | None:
    """One record; None if it vanished or is unreadable (a bad record must not hide the backup)."""
    try:
        data = json.loads(store.get_bytes(key))
    except NotFoundError:
        return None
    except ValueError:
        log.warning("verification record %s in store %s is not JSON; ignored", key, store.name)
        return None
    return data if isinstance(data, dict) else None


def latest_verification(store: Store, backup: Manifest | BackupId | str, *, kind: str | None = None,
                        keys: list[str] | None = None) -> dict[str, Any] | None:
    """The newest record for the backup in ``store`` (of ``kind`` if given), or None.

    ``keys``: record keys already known from a listing (saves a list call).
    """
    bid = _as_bid(backup)
    for key in reversed(keys if keys is not None else verification_keys(store, bid)):
        rec = read_record(store, key)
        if rec is not None and (kind is None or rec.get("kind") == kind):
            return rec
    return None
