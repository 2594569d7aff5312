"""Read a backup's files back, verified against the manifest, before anything is restored.

Restores never trust bytes they have not hashed: a file from a remote store is downloaded
to a work directory while hashing; a file in the local store is hashed in place. A
mismatch raises :class:`IntegrityError` naming the store and file, before the restore
target is touched.

An encrypted file (``FileEntry.encryption``) is decrypted while it is read, into the work
directory (also from a local store), and returned only when its header matches the
manifest, every chunk authenticated, and both the ciphertext and the plaintext hashes
match. The master key comes from the keyring given, else from the connection the manifest
names (:func:`backup_dr.core.crypto.load_keyring`): restore code needs no change.
"""

from __future__ import annotations

import hashlib
import logging
from pathlib import Path

from backup_dr.core.artifacts.layout import BackupId
from backup_dr.core.artifacts.manifest import FileEntry, Manifest
from backup_dr.core.crypto.files import decrypt_to_file, key_conn_id, require_key
from backup_dr.core.crypto.keys import Keyring, load_keyring
from backup_dr.core.errors import IntegrityError, NotFoundError
from backup_dr.core.progress import Progress
from backup_dr.core.stores.base import CHUNK, Store
from backup_dr.core.stores.local import LocalStore

log = logging.getLogger(__name__)


def load_manifest(store: Store, bid: BackupId) -> Manifest:
    """The manifest of ``bid`` in ``store``; NotFoundError if the backup is not there (or incomplete)."""
    try:
        raw = store.get_bytes(bid.manifest_key)
    except NotFoundError:
        raise NotFoundError(
            f"backup {bid} has no manifest in store {store.name!r} ({store.describe()})",
            hint="it never completed there, or was pruned; `python -m backup_dr list` shows what exists",
        ) from None
    return Manifest.from_json(raw, where=f"{store.name}:{bid.manifest_key}")


def _check(entry: FileEntry, size: int, digest: str, where: str) -> None:
    if size != entry.size or digest != entry.sha256:
        raise IntegrityError(
            f"{where}: {entry.name} does not match its manifest (corrupt or tampered)",
            detail=f"size {size} vs {entry.size}, sha256 {digest[:16]}… vs {entry.sha256[:16]}…",
            hint="restore from another store's copy (python -m backup_dr verify <id> shows which copies are good)",
        )


def fetch_verified(store: Store, manifest: Manifest, name: str, workdir: str | Path, *, keyring: Keyring | None = None) -> Path:
    """A local path holding the verified (decrypted) bytes of ``name`` (in place for a plain file in a
    local store). ``keyring``: master keys for an encrypted file (default: its manifest's connection)."""
    bid = manifest.id
    entry = manifest.file(name)
    key = bid.key(name)
    where = f"store {store.name!r} ({store.describe()})"
    progress = Progress(f"fetch {name} from {store.name}", total_bytes=entry.size, unit="chunks")
    if entry.encryption:
        return _fetch_decrypted(store, manifest, entry, Path(workdir) / name, keyring, where, progress)
    if isinstance(store, LocalStore):
        path = store.path(key)
        if not path.exists():
            raise NotFoundError(f"{where}: {key} is missing")
        h, n = hashlib.sha256(), 0
        with open(path, "rb") as f:
            for chunk in iter(lambda: f.read(CHUNK), b""):
                h.update(chunk)
                n += len(chunk)
                progress.add(1, len(chunk))
        _check(entry, n, h.hexdigest(), where)
        return path
    dest = Path(workdir) / name
    dest.parent.mkdir(parents=True, exist_ok=True)
    h, n = hashlib.sha256(), 0
    with store.open(key) as src, open(dest, "wb") as out:
        for chunk in iter(lambda: src.read(CHUNK), b""):
            h.update(chunk)
            n += len(chunk)
            out.write(chunk)
            progress.add(1, len(chunk))
    try:
        _check(entry, n, h.hexdigest(), where)
    except IntegrityError:
        dest.unlink(missing_ok=True)
        raise
    progress.done()
    return dest


def _fetch_decrypted(store: Store, manifest: Manifest, entry: FileEntry, dest: Path, keyring: Keyring | None, where: str,
                     progress: Progress) -> Path:
    keyring = keyring or load_keyring(key_conn_id(entry))
    require_key(entry, keyring, f"{manifest.backup_id}/{entry.name}")  # a missing key fails before any download
    with store.open(manifest.id.key(entry.name)) as src:
        decrypt_to_file(src, dest, entry, keyring, backup_id=manifest.backup_id, where=where,
                        on_read=lambda n: progress.add(1, n))
    progress.done()
    return dest
