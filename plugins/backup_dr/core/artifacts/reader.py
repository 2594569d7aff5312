"""Read a backup's files back, verified against the manifest, before anything is restored.

Restores never trust bytes they have not hashed: a file from a remote store is downloaded
to a work directory while hashing; a file in the local store is hashed in place. A
mismatch raises :class:`IntegrityError` naming the store and file, before the restore
target is touched.
"""

from __future__ import annotations

import hashlib
import logging
from pathlib import Path

from backup_dr.core.artifacts.layout import BackupId
from backup_dr.core.artifacts.manifest import FileEntry, Manifest
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


def fetch_verified(store: Store, manifest: Manifest, name: str, workdir: str | Path) -> Path:
    """A local path holding the verified bytes of ``name`` (in place for a local store)."""
    bid = manifest.id
    entry = manifest.file(name)
    key = bid.key(name)
    where = f"store {store.name!r} ({store.describe()})"
    progress = Progress(f"fetch {name} from {store.name}", total_bytes=entry.size, unit="chunks")
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
