"""Key rotation: which master keys do the stored backups still need, and until when?

Manifests are immutable (and may be under S3 Object Lock), so a backup is never
re-encrypted: rotating means adding a new key to the keyring and making it active. Each
backup names the key it was encrypted with; that key must stay in the keyring until the
last backup naming it is gone. :func:`keys_needed` reads the manifests in the stores and
answers per key: how many backups, the oldest and newest, and the latest expiry
(``retention.expires_at``) - after that date and the next prune the key may be dropped.
Expired backups that were not pruned yet still count: they are restorable until deleted.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any, Iterable, Mapping

from backup_dr.core.artifacts.manifest import iso
from backup_dr.core.catalog import Catalog
from backup_dr.core.crypto.keys import EncryptionKeyError, Keyring, load_keyring
from backup_dr.core.errors import BackupDRError
from backup_dr.core.progress import Progress
from backup_dr.core.stores.base import Store

log = logging.getLogger(__name__)


@dataclass
class KeyUse:
    key_id: str
    fingerprint: str
    key_conn_ids: set[str] = field(default_factory=set)
    backups: list[str] = field(default_factory=list)
    keep_until: str | None = None  # latest expiry among them; None with ``forever``
    forever: bool = False  # some backup has no recorded expiry
    in_keyring: bool | None = None  # None: no keyring to check against

    def to_dict(self) -> dict[str, Any]:
        ordered = sorted(self.backups, key=lambda b: b.rsplit(".", 1)[-1])
        return {"key_id": self.key_id, "fingerprint": self.fingerprint, "key_conn_ids": sorted(self.key_conn_ids),
                "backups": len(self.backups), "oldest_backup": ordered[0], "newest_backup": ordered[-1],
                "keep_until": None if self.forever else self.keep_until, "in_keyring": self.in_keyring}


def keys_needed(stores: Iterable[Store] | Mapping[str, Store], *, backup_class: str | None = None,
                keyrings: Mapping[str, Keyring] | None = None, check_connections: Iterable[str] | None = None) -> dict[str, Any]:
    """Every master key (by fingerprint) that complete backups in ``stores`` were encrypted with.

    :param keyrings: keyrings by connection id; each key use is then marked ``in_keyring``
        (True/False) for the connections its backups name.
    :param check_connections: with no ``keyrings``, load (:func:`load_keyring`) these key
        connections and every one the manifests name; one that cannot be loaded is listed
        in ``keyring_problems`` (its keys stay ``in_keyring: None``).
    :returns: ``{"keys": [KeyUse.to_dict(), ...], "backups": n, "encrypted_backups": n,
        "unreadable": [...], "store_errors": {...}, "active": {conn: key id},
        "keyring_problems": {conn: why}}``; ``keys`` oldest key first.
    """
    catalog = Catalog(stores)
    entries = catalog.list(backup_class)
    uses: dict[str, KeyUse] = {}
    unreadable: list[str] = []
    encrypted = 0
    progress = Progress("read manifests for key usage", total_items=len(entries), unit="manifests")
    for entry in entries:
        try:
            manifest = entry.manifest()
        except BackupDRError as e:
            unreadable.append(f"{entry.backup_id}: {e.message}")
            progress.add(1)
            continue
        found = False
        for f in manifest.files:
            enc = f.encryption or {}
            if not enc:
                continue
            found = True
            fp = str(enc.get("key_fingerprint", ""))
            use = uses.setdefault(fp, KeyUse(str(enc.get("key_id", "?")), fp))
            if enc.get("key_conn_id"):
                use.key_conn_ids.add(str(enc["key_conn_id"]))
            if manifest.backup_id not in use.backups:
                use.backups.append(manifest.backup_id)
                expires = manifest.expires_at
                if expires is None:
                    use.forever = True
                elif use.keep_until is None or iso(expires) > use.keep_until:
                    use.keep_until = iso(expires)
        encrypted += found
        progress.add(1)
    progress.done()
    problems: dict[str, str] = {}
    if keyrings is None and check_connections is not None:
        wanted = set(check_connections) | {c for u in uses.values() for c in u.key_conn_ids}
        keyrings = {}
        for cid in sorted(wanted):
            try:
                keyrings[cid] = load_keyring(cid)
            except EncryptionKeyError as e:
                problems[cid] = e.message
    for use in uses.values():
        rings = [keyrings[c] for c in sorted(use.key_conn_ids) if keyrings and c in keyrings]
        if rings:
            use.in_keyring = all(any(k.fp_hex == use.fingerprint for k in r.keys) for r in rings)
    ordered = sorted(uses.values(), key=lambda u: min(b.rsplit(".", 1)[-1] for b in u.backups))
    return {"keys": [u.to_dict() for u in ordered], "backups": len(entries), "encrypted_backups": encrypted,
            "unreadable": unreadable, "store_errors": dict(catalog.errors),
            "active": {cid: r.active_id for cid, r in (keyrings or {}).items()}, "keyring_problems": problems}
