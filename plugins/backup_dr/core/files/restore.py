"""Restore a files backup into a directory: verified bytes, safe extraction, atomic swap.

The target is never half-restored:

1. the archive is fetched and its sha256 checked against the manifest (a corrupt copy is
   refused before anything on disk changes);
2. it is extracted into a hidden staging directory next to the target (same filesystem,
   so the final step is a rename), through :mod:`backup_dr.core.files.safe_extract`;
3. the extracted counts are checked against the manifest;
4. swap: an absent or empty target is replaced by one ``rename``. A non-empty target is
   refused unless ``overwrite=True``; then it is first renamed aside to
   ``<target>.pre-restore-<UTC stamp>`` (the safety copy, kept and reported), and put back
   if the final rename fails.

Any failure before step 4 (a signal included) deletes the staging directory and leaves the
target as it was; signals are held off during the two renames of step 4. With a restore
journal (``journal=``, the CLI and operators pass the local store's) the staging and safety
paths are recorded before anything happens, so a SIGKILL is found and undone afterwards
(:mod:`.interrupted`). Known limit: the target cannot be a mount point (a mount point cannot
be renamed); restore into a new directory and switch the mount instead.
"""

from __future__ import annotations

import logging
import os
import shutil
import stat
import time
import uuid
from dataclasses import asdict, dataclass
from datetime import datetime, timezone
from pathlib import Path

from backup_dr.core.artifacts.manifest import FileEntry, Manifest
from backup_dr.core.artifacts.reader import fetch_verified
from backup_dr.core.errors import BackupDRError, RestoreError, RestoreRefused, RestoreRolledBack, VerificationError
from backup_dr.core.files.safe_extract import ExtractStats, extract_archive
from backup_dr.core.restores.journal import JournalDir, recorded
from backup_dr.core.restores.signals import shielded
from backup_dr.core.stores.base import Store
from backup_dr.core.stores.local import LocalStore

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class FilesRestoreResult:
    backup_id: str
    target: str
    files: int
    bytes: int
    directories: int
    symlinks: int
    safety_copy: str | None  # where the previous content was moved (overwrite=True on a non-empty target)
    seconds: float

    def as_dict(self) -> dict:
        return asdict(self)


def archive_entry(manifest: Manifest) -> FileEntry:
    """The tar file of a files backup (clear error for any other kind of backup)."""
    tars = [f for f in manifest.files if f.format == "tar"]
    if manifest.kind != "files" or len(tars) != 1:
        raise RestoreRefused(
            f"backup {manifest.backup_id} is a {manifest.kind!r} backup of a {manifest.source_type} source, "
            "not a files archive",
            hint="restore it with the restore command of its own kind",
        )
    return tars[0]


def is_empty_dir(path: Path) -> bool:
    with os.scandir(path) as it:
        return next(it, None) is None


def check_target(target: Path, *, overwrite: bool) -> bool:
    """Refuse unusable targets; True if the target exists and is not empty."""
    if target.is_symlink():
        raise RestoreRefused(f"restore target {target} is a symlink", hint="give the real directory it points to")
    if not target.exists():
        return False
    if not target.is_dir():
        raise RestoreRefused(f"restore target {target} exists and is not a directory",
                             hint="move it away or choose another target")
    if is_empty_dir(target):
        return False
    if not overwrite:
        raise RestoreRefused(
            f"restore target {target} is not empty; refusing to overwrite it",
            hint="restore into a new directory, or pass overwrite=True (--overwrite): the current content "
                 "is then kept as a safety copy next to it",
        )
    return True


def remove_tree(path: Path) -> None:
    """Delete a staging tree even if it contains read-only directories."""

    def make_writable_and_retry(func, p, _exc):
        try:
            os.chmod(os.path.dirname(p), stat.S_IRWXU)
            if os.path.isdir(p) and not os.path.islink(p):
                os.chmod(p, stat.S_IRWXU)
            func(p)
        except OSError:
            pass

    if path.exists() or path.is_symlink():
        shutil.rmtree(path, onerror=make_writable_and_retry)


def sibling(target: Path, label: str) -> Path:
    return target.parent / f".{target.name}.{label}-{uuid.uuid4().hex[:10]}"


def restore_files(store: Store, manifest: Manifest, target_dir: str | os.PathLike, *, workdir: str | os.PathLike,
                  overwrite: bool = False, journal: JournalDir | None = None) -> FilesRestoreResult:
    """Restore a ``files`` backup into ``target_dir`` (see the module docstring for the guarantees).

    :param store: the store to read the archive from (its bytes are verified against ``manifest``).
    :param manifest: the backup's manifest (``load_manifest(store, bid)``).
    :param target_dir: directory to restore into; created if absent.
    :param workdir: scratch space for downloads from remote stores.
    :param overwrite: replace a non-empty target, keeping the old content as a safety copy.
    :param journal: the restore journal to record in (None: signals still roll back, a SIGKILL is not recorded).
    """
    started = time.monotonic()
    entry = archive_entry(manifest)
    target = Path(target_dir).absolute()
    check_target(target, overwrite=overwrite)
    with recorded(journal, "files", files_target(target), backup_id=manifest.backup_id, what=f"the restore into {target}",
                  resume={"target": str(target)}) as opened:
        archive = fetch_verified(store, manifest, entry.name, workdir)
        downloaded = not isinstance(store, LocalStore)
        staging = sibling(target, "restore")
        opened.update(safety={"staging": str(staging), "cleanup": [str(staging)]})
        try:
            target.parent.mkdir(parents=True, exist_ok=True)
            staging.mkdir(mode=0o700)
            try:
                stats = extract_archive(archive, entry.codec, staging)
                _check_counts(manifest, stats)
                _apply_root_attrs(manifest, staging)
                non_empty = check_target(target, overwrite=overwrite)  # again: it may have changed meanwhile
            except BackupDRError:
                remove_tree(staging)
                log.error("restore of %s failed before %s was touched; staging directory removed", manifest.backup_id, target)
                raise
            except Exception as e:
                remove_tree(staging)
                raise RestoreError(f"restore of {manifest.backup_id} failed while extracting; {target} was not touched",
                                   detail=f"{type(e).__name__}: {e}") from e
            except BaseException:  # a signal: nothing touched, nothing left
                remove_tree(staging)
                raise
            safety = _safety_path(target) if non_empty else None
            opened.writing(safety={"staging": str(staging), "cleanup": [str(staging)],
                                   "safety_copy": str(safety) if safety else None,
                                   "target_state": "non_empty" if non_empty else ("empty" if target.exists() else "absent"),
                                   "describe": f"previous content moved to {safety}" if safety else "no previous content"})
            with shielded():
                _swap_in(staging, target, safety)
        finally:
            if downloaded:
                Path(archive).unlink(missing_ok=True)
    result = FilesRestoreResult(manifest.backup_id, str(target), stats.files, stats.bytes, stats.directories,
                                stats.symlinks, str(safety) if safety else None, round(time.monotonic() - started, 3))
    log.info("restored %s into %s: %d files, %.1f MB in %.1fs%s", manifest.backup_id, target, stats.files,
             stats.bytes / 1e6, result.seconds, f"; previous content kept at {safety}" if safety else "")
    return result


def files_target(target: Path) -> dict:
    """The journal's identity of a files restore target."""
    return {"kind": "files", "path": str(target), "label": f"directory {target}"}


def _check_counts(manifest: Manifest, stats: ExtractStats) -> None:
    expected = {k: manifest.counts.get(k) for k in ("files", "bytes", "directories", "symlinks")}
    got = {"files": stats.files, "bytes": stats.bytes, "directories": stats.directories, "symlinks": stats.symlinks}
    wrong = {k: (v, got[k]) for k, v in expected.items() if v is not None and v != got[k]}
    if wrong:
        raise VerificationError(
            f"backup {manifest.backup_id}: the archive does not hold what its manifest counts",
            detail=", ".join(f"{k}: manifest {a}, archive {b}" for k, (a, b) in wrong.items()),
        )


def _apply_root_attrs(manifest: Manifest, staging: Path) -> None:
    """Give the restored top directory the source directory's mode and mtime (not stored in the tar)."""
    root = manifest.details.get("root") or {}
    if "mode" in root:
        os.chmod(staging, int(root["mode"], 8) & 0o777)
    if "mtime_ns" in root:
        ns = int(root["mtime_ns"])
        os.utime(staging, ns=(ns, ns))


def _safety_path(target: Path) -> Path:
    stamp = datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%SZ")
    safety = target.parent / f"{target.name}.pre-restore-{stamp}"
    return target.parent / f"{safety.name}-{uuid.uuid4().hex[:6]}" if safety.exists() else safety


def _swap_in(staging: Path, target: Path, safety: Path | None) -> None:
    if safety is None:
        try:
            os.rename(staging, target)  # replaces an empty directory atomically
        except OSError as e:
            remove_tree(staging)
            raise RestoreError(f"could not move the restored tree into {target}; {target} was not touched",
                               detail=str(e)) from e
        return
    try:
        os.rename(target, safety)
    except OSError as e:
        remove_tree(staging)
        raise RestoreError(f"could not move the current {target} aside; it was not touched", detail=str(e),
                           hint="a mount point cannot be moved: restore into a new directory and switch the mount") from e
    try:
        os.rename(staging, target)
    except OSError as e:
        try:
            os.rename(safety, target)
        except OSError as e2:
            raise RestoreError(f"restore into {target} failed and the previous content could not be put back; "
                               f"it is intact at {safety}", detail=f"{e}; then {e2}",
                               hint=f"move {safety} back to {target} by hand") from e2
        remove_tree(staging)
        raise RestoreRolledBack(f"restore into {target} failed at the final swap; the previous content was put back",
                                detail=str(e)) from e
    log.info("previous content of %s kept as a safety copy at %s", target, safety)
