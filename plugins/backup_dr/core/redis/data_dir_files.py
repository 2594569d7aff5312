"""The file moves of a data-dir restore, and how they are undone from what is on disk.

Every step is a ``rename`` inside the Redis data directory (same filesystem, atomic). The
undo does not replay a list of what this process did (a killed process has no list):
it looks at the disk. A file present in the safety directory WAS moved there, so whatever
sits in its place now came from the restore (or from the server it restarted) and goes;
a file absent from it was never moved and is left alone; a file that did not exist before
the restore and exists now was placed by it and goes. So the same undo serves the
in-process rollback and ``restore rollback`` after a SIGKILL.

Safety directories (``.backup-dr-safety-<UTC stamp>``) are kept for undoing by hand, up
to :data:`KEEP_SAFETY_COPIES` of them: older ones are removed after a successful restore,
unless a restore journal record still names them.
"""

from __future__ import annotations

import logging
import os
import shutil
from pathlib import Path
from typing import Any, Iterable

log = logging.getLogger(__name__)

SAFETY_PREFIX = ".backup-dr-safety-"
STAGE_PREFIX = ".backup-dr-restore-"
#: how many safety directories a data dir keeps (each holds the previous dump.rdb / AOF directory)
KEEP_SAFETY_COPIES = 2


def stage_files(data_dir: Path, rdb: Path, settings: dict, stamp: str) -> Path:
    """The new files in a staging directory inside the data dir; with AOF on, an AOF directory
    whose manifest names the RDB as its base (the AOF trap: see restore.py)."""
    stage = data_dir / f"{STAGE_PREFIX}{stamp}"
    stage.mkdir()
    try:
        shutil.copyfile(rdb, stage / "dump.rdb")
        if settings["appendonly"] == "yes":
            aof = stage / "aof"
            aof.mkdir()
            base = f"{settings['appendfilename']}.1.base.rdb"
            os.link(stage / "dump.rdb", aof / base)  # Redis never modifies a base file in place
            (aof / f"{settings['appendfilename']}.manifest").write_text(f"file {base} seq 1 type b\n")
    except BaseException:  # e.g. the data dir's disk is full: nothing was touched yet
        shutil.rmtree(stage, ignore_errors=True)
        raise
    return stage


def live_names(settings: dict) -> tuple[str, str]:
    return settings["dbfilename"], settings["appenddirname"] or "appendonlydir"


def items_of(data_dir: Path, settings: dict) -> list[dict[str, Any]]:
    """What the swap replaces, recorded before it starts: each name and whether it existed."""
    return [{"name": n, "existed": (data_dir / n).exists() or (data_dir / n).is_symlink()} for n in live_names(settings)]


def _match_owner_mode(path: Path, like: os.stat_result | None, default_mode: int) -> None:
    mode = (like.st_mode & 0o7777) if like else default_mode
    os.chmod(path, mode)
    if like and (like.st_uid, like.st_gid) != (os.stat(path).st_uid, os.stat(path).st_gid):
        try:
            os.chown(path, like.st_uid, like.st_gid)
        except PermissionError:
            log.warning("cannot give %s the owner %s:%s of the file it replaces (not root); mode %o set",
                        path, like.st_uid, like.st_gid, mode)


def _stat(path: Path) -> os.stat_result | None:
    try:
        return path.stat()
    except FileNotFoundError:
        return None


def swap_in(data_dir: Path, stage: Path, safety: Path, settings: dict) -> None:
    """Move the current files into ``safety`` and the staged ones into place, with the owner and
    mode of the files they replace."""
    rdb_name, aof_name = live_names(settings)
    rdb, aof = data_dir / rdb_name, data_dir / aof_name
    old_rdb, old_aof = _stat(rdb), _stat(aof)
    old_aof_file = next((p.stat() for p in aof.iterdir() if p.is_file()), None) if old_aof else None
    for current in (rdb, aof):
        if current.exists():
            os.rename(current, safety / current.name)
    os.rename(stage / "dump.rdb", rdb)
    _match_owner_mode(rdb, old_rdb, 0o644)
    if (stage / "aof").exists():
        os.rename(stage / "aof", aof)
        _match_owner_mode(aof, old_aof, 0o755)
        for f in aof.iterdir():
            _match_owner_mode(f, old_aof_file or old_rdb, 0o644)


def remove_path(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path)
    else:
        path.unlink(missing_ok=True)


def undo_swap(data_dir: Path, safety: Path, items: list[dict[str, Any]]) -> None:
    """Put the previous files back, judging from the disk (see the module doc)."""
    for item in items:
        live, saved = data_dir / item["name"], safety / item["name"]
        if item["existed"]:
            if saved.exists() or saved.is_symlink():
                if live.exists() or live.is_symlink():
                    remove_path(live)
                os.rename(saved, live)
        elif live.exists() or live.is_symlink():
            remove_path(live)
    if safety.is_dir() and not any(safety.iterdir()):
        safety.rmdir()


def prune_safety_copies(data_dir: Path, *, keep: int = KEEP_SAFETY_COPIES, protected: Iterable[str] = ()) -> list[str]:
    """Remove all but the newest ``keep`` safety directories (never a ``protected`` one); returns the removed."""
    keep_paths = {str(Path(p).resolve()) for p in protected}
    copies = sorted((p for p in data_dir.glob(f"{SAFETY_PREFIX}*") if p.is_dir()), key=lambda p: p.name, reverse=True)
    removed = []
    for old in copies[keep:]:
        if str(old.resolve()) in keep_paths:
            continue
        shutil.rmtree(old, ignore_errors=True)
        removed.append(str(old))
    if removed:
        log.info("removed %d old safety cop%s from %s (keeping the newest %d): %s", len(removed),
                 "y" if len(removed) == 1 else "ies", data_dir, keep, ", ".join(Path(r).name for r in removed))
    return removed
