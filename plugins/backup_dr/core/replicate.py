"""Copy a finished local backup to other stores: data files, verified, then ``manifest.json`` LAST.

The rules, and why:

* Every data file is uploaded, then READ BACK and hashed (size + sha256 against the
  manifest). moto accepts wrong checksums and a proxy can corrupt bytes, so only a
  client-side read-back proves the copy. The stores additionally compare the server's own
  checksums (GCS crc32c/md5, S3 ChecksumSHA256) with the bytes sent.
* ``manifest.json`` goes up only after every file verified, so a store never shows a
  backup it does not completely hold; then a copy-check record (``verify-*.json``, method
  ``replication read-back``) says so, and the local copy, read in full for the upload, gets one
  too, so a fresh backup shows as verified everywhere it was proven (UI, CLI, health). A verification failure raises ``IntegrityError``
  and no manifest is written there.
* Idempotent: keys are deterministic, so a retry after a crash overwrites its own partial
  work; files already present with the right size AND hash are skipped; S3 multipart
  leftovers of the crashed attempt are aborted first. The result is exactly one backup.
* With Object Lock on the store, every object is retained until the backup's expiry
  (``retention.expires_at`` in the manifest).
* :func:`replicate_all` runs the stores in parallel threads and reports each store
  separately; one failing store never hides another's success, and it raises (after all
  finished) when any failed.
"""

from __future__ import annotations

import logging
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timezone
from typing import Any, BinaryIO, Callable, Iterable, Mapping

from backup_dr.core.artifacts.manifest import Manifest, iso
from backup_dr.core.errors import BackupDRError, IntegrityError, StoreError
from backup_dr.core.progress import Progress
from backup_dr.core.stores.base import Store
from backup_dr.core.stores.local import LocalStore
from backup_dr.core.verify import COPY_CHECK, READ_BACK, READ_WHILE_SENT, record_verification

log = logging.getLogger(__name__)


class ReplicationError(BackupDRError):
    """At least one store failed. ``results`` maps every store to its outcome (successes too)."""

    def __init__(self, results: dict[str, dict[str, Any]]):
        self.results = results
        failed = {n: r for n, r in results.items() if r.get("status") == "failed"}
        ok = sorted(n for n, r in results.items() if r.get("status") != "failed")
        lines = [f"{n}: {r['error']}" for n, r in sorted(failed.items())]
        super().__init__(
            f"replication failed for {len(failed)} of {len(results)} store(s): {', '.join(sorted(failed))}"
            + (f" (succeeded: {', '.join(ok)})" if ok else ""),
            detail="\n    ".join(lines),
            hint="retrying is safe: verified files are skipped and the manifest goes up last",
        )
        self.retryable = all(r.get("retryable") for r in failed.values())


class _SourceReader:
    """The local file being uploaded: read errors name it, progress is counted as bytes flow."""

    def __init__(self, raw: BinaryIO, where: str, on_read: Callable[[int], None]):
        self._raw, self._where, self._on_read = raw, where, on_read

    def read(self, n: int = -1) -> bytes:
        try:
            data = self._raw.read(n)
        except OSError as e:
            raise StoreError(f"reading the local copy {self._where} failed: {e.strerror or e}") from e
        self._on_read(len(data))
        return data

    def readable(self) -> bool:
        return True


def _same_files(a: Manifest, b: Manifest) -> bool:
    return {(f.name, f.size, f.sha256) for f in a.files} == {(f.name, f.size, f.sha256) for f in b.files}


def _is_source(local: LocalStore, dest: Store) -> bool:
    return isinstance(dest, LocalStore) and dest.root.resolve() == local.root.resolve()


def replicate(local: LocalStore, manifest: Manifest, dest: Store, *, retain_until: datetime | None = None) -> dict[str, Any]:
    """Upload, verify and complete one backup in ``dest``; returns a small JSON-able result.

    :param retain_until: Object Lock date (default: the manifest's ``retention.expires_at``).
    :raises IntegrityError: a copy did not verify (no manifest was written there), or
        ``dest`` already holds a different backup under the same id.
    :raises StoreError: transient I/O; a retry resumes where this attempt stopped.
    """
    bid = manifest.id
    base = {"store": dest.name, "type": dest.type, "location": dest.describe(), "backup_id": str(bid)}
    if _is_source(local, dest):
        return {**base, "status": "source", "files": len(manifest.files), "uploaded": 0, "skipped": len(manifest.files),
                "bytes_uploaded": 0, "seconds": 0.0, "mb_per_s": None, "verified": True, "locked_until": None}
    t0, started = time.monotonic(), datetime.now(timezone.utc)
    raw_manifest = local.get_bytes(bid.manifest_key)
    if not _same_files(Manifest.from_json(raw_manifest, where=f"{local.name}:{bid.manifest_key}"), manifest):
        raise IntegrityError(f"backup {bid}: the local manifest.json differs from the manifest given to replicate()")
    lock_until = retain_until or manifest.expires_at
    done = _already_complete(dest, manifest)
    if done is not None:
        log.info("backup %s is already complete in store %s; nothing to upload", bid, dest.name)
        return {**base, **done, "seconds": round(time.monotonic() - t0, 3)}

    dest.abort_incomplete_uploads(bid.prefix)
    present = {i.key: i for i in dest.list(bid.prefix)}
    progress = Progress(f"replicate {bid} to {dest.name}", total_items=len(manifest.files), total_bytes=manifest.total_size,
                        unit="files")
    uploaded = skipped = sent = 0
    for entry in manifest.files:
        key = bid.key(entry.name)
        info = present.get(key)
        if info is not None and info.size == entry.size and dest.hash_object(key) == (entry.size, entry.sha256):
            log.info("%s: %s already present and verified; skipped", dest.name, entry.name)
            skipped += 1
            progress.add(1, 0)
            continue
        log.info("%s: uploading %s (%.1f MB)", dest.name, entry.name, entry.size / 1e6)
        with local.open(key) as raw:
            src = _SourceReader(raw, f"{local.root}/{key}", lambda n: progress.add(0, n))
            dest.put(key, src, size=entry.size, sha256=entry.sha256, retain_until=lock_until)
        size, digest = dest.hash_object(key)
        if (size, digest) != (entry.size, entry.sha256):
            raise IntegrityError(
                f"store {dest.name!r} ({dest.describe()}): {entry.name} did not verify after upload; no manifest written",
                detail=f"read back {size} bytes sha256 {digest[:16]}…, manifest says {entry.size} bytes {entry.sha256[:16]}…",
                hint="the store or the network corrupted the bytes; the task retry uploads it again",
            )
        uploaded += 1
        sent += entry.size
        progress.add(1, 0)
    dest.put_bytes(bid.manifest_key, raw_manifest, retain_until=lock_until)
    if dest.get_bytes(bid.manifest_key) != raw_manifest:
        raise IntegrityError(f"store {dest.name!r}: manifest.json of {bid} did not read back identically")
    progress.done()
    seconds = time.monotonic() - t0
    _record_checks(local, dest, manifest, started, seconds, sent, all_sent=uploaded == len(manifest.files))
    rate = sent / 1e6 / seconds if seconds > 0 else None
    log.info("replicated %s to %s (%s): %d uploaded, %d skipped, %.1f MB in %.1fs = %.1f MB/s (upload + read-back verify)",
             bid, dest.name, dest.describe(), uploaded, skipped, sent / 1e6, seconds, rate or 0.0)
    locked = lock_until if lock_until and getattr(dest, "object_lock", None) else None
    return {**base, "status": "replicated", "files": len(manifest.files), "uploaded": uploaded, "skipped": skipped,
            "bytes_uploaded": sent, "seconds": round(seconds, 3), "mb_per_s": round(rate, 2) if rate else None,
            "verified": True, "locked_until": iso(locked)}


def _record_checks(local: LocalStore, dest: Store, manifest: Manifest, started: datetime, seconds: float, sent: int, *,
                   all_sent: bool) -> None:
    """Say what this replication proved, as copy-check records (:mod:`backup_dr.core.verify`):
    the new copy was read back and hashed; the local copy, when every file was sent, was read
    in full and the store checked the bytes it consumed against the manifest's sha256. A
    record that cannot be written is logged: the copy is no less good for it."""
    base = {"kind": COPY_CHECK, "ok": True, "checked_at": iso(started), "seconds": round(seconds, 3), "problems": [],
            "files": [{"name": f.name, "size": f.size, "ok": True} for f in manifest.files]}
    checks = [(dest, {**base, "method": READ_BACK, "bytes": manifest.total_size})]
    if all_sent:
        checks.append((local, {**base, "method": READ_WHILE_SENT, "sent_to": dest.name, "bytes": sent}))
    for store, record in checks:
        try:
            record_verification(store, manifest, record)
        except BackupDRError as e:
            log.warning("copy-check record of %s in %s not written: %s", manifest.backup_id, store.name, e.message)


def _already_complete(dest: Store, manifest: Manifest) -> dict[str, Any] | None:
    """A result if ``dest`` already has this backup complete (manifest there = it was verified then)."""
    bid = manifest.id
    if dest.stat(bid.manifest_key) is None:
        return None
    theirs = Manifest.from_json(dest.get_bytes(bid.manifest_key), where=f"{dest.name}:{bid.manifest_key}")
    if not _same_files(theirs, manifest):
        raise IntegrityError(
            f"store {dest.name!r} ({dest.describe()}) already holds a DIFFERENT backup with id {bid}",
            hint="ids are deterministic per run; delete that copy only after checking which one is right",
        )
    sizes = {i.key: i.size for i in dest.list(bid.prefix)}
    missing = [f.name for f in manifest.files if sizes.get(bid.key(f.name)) != f.size]
    if missing:
        raise IntegrityError(f"store {dest.name!r}: backup {bid} has a manifest but {', '.join(missing)} missing or wrong size",
                             hint="run verify on that store; prune or re-replicate after investigation")
    return {"status": "present", "files": len(manifest.files), "uploaded": 0, "skipped": len(manifest.files),
            "bytes_uploaded": 0, "mb_per_s": None, "verified": True, "locked_until": None}


def replicate_all(local: LocalStore, manifest: Manifest, stores: Iterable[Store] | Mapping[str, Store], *,
                  retain_until: datetime | None = None, max_workers: int | None = None) -> dict[str, dict[str, Any]]:
    """:func:`replicate` to every store in parallel; ``{store name: result}``.

    :raises ReplicationError: after ALL stores finished, if any failed (its ``results``
        include the successes).
    """
    targets = list(stores.values() if isinstance(stores, Mapping) else stores)
    names = [s.name for s in targets]
    if len(set(names)) != len(names):
        raise BackupDRError(f"replicate_all: store names must be unique, got {names}")
    results: dict[str, dict[str, Any]] = {}
    first_error: BaseException | None = None
    with ThreadPoolExecutor(max_workers=max_workers or max(1, len(targets)), thread_name_prefix="replicate") as pool:
        futures = {s.name: pool.submit(replicate, local, manifest, s, retain_until=retain_until) for s in targets}
        for store in targets:
            try:
                results[store.name] = futures[store.name].result()
            except Exception as e:  # noqa: BLE001 - recorded per store, raised below after all finished
                first_error = first_error or e
                log.error("replication of %s to %s failed: %s", manifest.backup_id, store.name, e)
                results[store.name] = {"store": store.name, "type": store.type, "location": store.describe(),
                                       "backup_id": manifest.backup_id, "status": "failed", "error": str(e),
                                       "error_type": type(e).__name__, "retryable": bool(getattr(e, "retryable", False))}
    for name, r in results.items():
        if r["status"] != "failed":
            log.info("store %s: %s, %s MB/s", name, r["status"], r.get("mb_per_s"))
    if first_error is not None:
        raise ReplicationError(results) from first_error
    return results
