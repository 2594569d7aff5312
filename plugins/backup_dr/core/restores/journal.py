"""The restore journal: what survives a SIGKILL or a power cut in the middle of a restore.

A signal can be caught and rolled back (:mod:`.signals`); SIGKILL, an OOM kill or a power
loss cannot. So before a restore changes its target it writes a small JSON record: which
engine, which target, which backup, when, by which process, and how to undo it (the safety
backup). The record is removed only after the restore validated (or after a rollback put
the target back). One that is still there, with its owner gone, IS an interrupted restore:
the next restore into that target refuses to start, ``health`` reports it as CRITICAL, the
DR DAG's safety step stops on it, and ``python -m backup_dr restore status | rollback |
resume`` shows it, undoes it, or finishes it.

Where: ``<local store>/backup-dr-v1/_journal/<id>.json`` — next to the safety backups, on
the disk every worker, the CLI and the health check already share, readable without
Airflow. Each record has a ``<id>.lock`` its restore holds an ``flock`` on while it runs:
a lock that can be taken means the owner is dead (no PID guessing; the kernel drops the
lock when the process dies, however it dies). Records are written through the local
store (temp file, fsync, atomic rename), so a torn record never exists.

Phases: ``preparing`` (checks and safety backup: the target is untouched, a dead record in
this phase is removed by the next restore), ``writing`` (set just before the first change),
``rolling_back``.
"""

from __future__ import annotations

import fcntl
import json
import logging
import os
import secrets
import shutil
import socket
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Iterator

from backup_dr.core.artifacts.layout import ROOT
from backup_dr.core.artifacts.manifest import iso
from backup_dr.core.locks import is_locked
from backup_dr.core.errors import InterruptedRestoreFound, NotFoundError, RestoreRefused, RestoreRolledBack
from backup_dr.core.restores.signals import interruptible
from backup_dr.core.stores.local import LocalStore

log = logging.getLogger(__name__)

JOURNAL_PREFIX = f"{ROOT}/_journal/"
_DIR_LOCK = ".journal.lock"
CLI = "python -m backup_dr"


@dataclass
class JournalEntry:
    """One restore's record. ``target``: ``kind`` (mongodb | redis | files), ``label`` (for
    people), and what identifies it: ``addresses`` + ``database`` or ``path``."""

    id: str
    engine: str  # mongodb | redis_load | redis_data_dir | files
    target: dict[str, Any]
    backup_id: str | None
    started_at: str
    host: str
    pid: int
    phase: str = "preparing"
    safety: dict[str, Any] = field(default_factory=dict)
    resume: dict[str, Any] = field(default_factory=dict)
    updated_at: str | None = None
    alive: bool = field(default=False, compare=False)  # not stored: found by the lock
    location: str = field(default="", compare=False)  # not stored: the journal's root

    def to_json(self) -> bytes:
        data = {k: v for k, v in asdict(self).items() if k not in ("alive", "location")}
        return (json.dumps(data, indent=2, ensure_ascii=False, default=str) + "\n").encode("utf-8")

    @classmethod
    def from_json(cls, raw: bytes, *, location: str = "") -> "JournalEntry":
        data = json.loads(raw)
        known = {k: data[k] for k in cls.__dataclass_fields__ if k in data and k not in ("alive", "location")}
        return cls(**known, location=location)

    @property
    def label(self) -> str:
        return str(self.target.get("label") or self.target)

    @property
    def touched(self) -> bool:
        """Whether the target may have been changed (anything after ``preparing``)."""
        return self.phase != "preparing"

    def describe(self) -> str:
        who = f"pid {self.pid} on {self.host}"
        what = f"{self.engine} restore of {self.backup_id or 'a backup'} into {self.label}"
        return f"{what}, started {self.started_at} by {who}, last phase {self.phase}"

    def safety_text(self) -> str:
        s = self.safety
        if not s:
            return "no safety backup recorded yet"
        if s.get("none"):
            return f"no safety backup ({s['none']})"
        return s.get("describe") or json.dumps(s, ensure_ascii=False)

    def commands(self) -> list[str]:
        return [f"{CLI} restore rollback {self.id}", f"{CLI} restore resume {self.id}"]


def same_target(a: dict[str, Any], b: dict[str, Any]) -> bool:
    """Two targets are the same when their kind matches and their addresses overlap (and the
    database is the same), or their paths are the same."""
    if a.get("kind") != b.get("kind"):
        return False
    if a.get("path") or b.get("path"):
        return a.get("path") == b.get("path")
    return bool(set(a.get("addresses") or ()) & set(b.get("addresses") or ())) and a.get("database") == b.get("database")


class JournalDir:
    """The journal records under ``root`` (a local store's root)."""

    def __init__(self, root: str | os.PathLike):
        self.root = Path(root)
        self.store = LocalStore(self.root, name="journal")
        self.dir = self.root / JOURNAL_PREFIX

    def describe(self) -> str:
        return str(self.dir)

    def _key(self, entry_id: str) -> str:
        return f"{JOURNAL_PREFIX}{entry_id}.json"

    def _lock_path(self, entry_id: str) -> Path:
        return self.dir / f"{entry_id}.lock"

    def entries(self) -> list[JournalEntry]:
        """Every record, oldest first, each with ``alive`` (its restore still runs)."""
        if not self.dir.is_dir():
            return []
        out = []
        for path in sorted(self.dir.glob("*.json")):
            try:
                entry = JournalEntry.from_json(path.read_bytes(), location=str(self.root))
            except (OSError, ValueError, TypeError) as e:
                log.error("unreadable restore journal record %s (%s): check it by hand", path, e)
                continue
            entry.alive = is_locked(self._lock_path(entry.id))
            out.append(entry)
        return sorted(out, key=lambda e: e.started_at)

    def interrupted(self) -> list[JournalEntry]:
        """Records whose restore is no longer running: interrupted restores."""
        return [e for e in self.entries() if not e.alive]

    def get(self, entry_id: str) -> JournalEntry:
        for e in self.entries():
            if e.id == entry_id:
                return e
        raise NotFoundError(f"no restore journal record {entry_id!r} in {self.describe()}",
                            hint=f"`{CLI} restore status` lists the records")

    def remove(self, entry: JournalEntry) -> None:
        self.store.delete(self._key(entry.id))
        self._lock_path(entry.id).unlink(missing_ok=True)

    def clear(self, entry: JournalEntry) -> None:
        """Remove a dead record and the scratch paths it lists (``safety.cleanup``: e.g. a staging
        directory next to the target, outside any temp dir)."""
        for path in entry.safety.get("cleanup") or ():
            shutil.rmtree(path, ignore_errors=True)
        self.remove(entry)

    def write(self, entry: JournalEntry) -> None:
        entry.updated_at = iso(datetime.now(timezone.utc))
        self.store.put_bytes(self._key(entry.id), entry.to_json())

    @contextmanager
    def _dir_lock(self) -> Iterator[None]:
        self.dir.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.dir / _DIR_LOCK, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield
        finally:
            os.close(fd)

    def _check_free(self, target: dict[str, Any], takes_over: str | None) -> None:
        for e in self.entries():
            if e.id == takes_over or not same_target(e.target, target):
                continue
            if e.alive:
                raise RestoreRefused(f"another restore into {e.label} is running right now ({e.describe()})",
                                     hint="wait for it to finish; two restores must never write one target at once")
            if not e.touched:
                log.warning("removing the journal record of a restore that died before touching %s: %s", e.label, e.describe())
                self.clear(e)
                continue
            raise InterruptedRestoreFound(
                f"an interrupted restore into {e.label} was found: the target may be half-written",
                detail=f"{e.describe()}; safety: {e.safety_text()}; journal {self.describe()}{e.id}.json",
                hint=f"roll it back to its state before that restore: {e.commands()[0]}   or finish that restore: "
                     f"{e.commands()[1]}   (then run this restore again, if still wanted)",
            )

    @contextmanager
    def begin(self, engine: str, target: dict[str, Any], *, backup_id: str | None, what: str,
              resume: dict[str, Any] | None = None, takes_over: JournalEntry | None = None) -> Iterator["OpenJournal"]:
        """Record a restore for the duration of the block, with signals turned into exceptions.

        Refuses (before anything happens) when a restore into the same target runs or was
        interrupted, unless ``takes_over`` names that interrupted record (resume: its safety
        backup is kept). On leaving the block the record is removed after success, after a
        :class:`RestoreRolledBack`, or when the target was never touched; otherwise it stays.
        """
        with self._dir_lock():
            self._check_free(target, takes_over.id if takes_over else None)
            stamp = datetime.now(timezone.utc)
            entry = JournalEntry(id=f"{engine}-{stamp:%Y%m%dT%H%M%S}-{secrets.token_hex(3)}", engine=engine, target=target,
                                 backup_id=backup_id, started_at=iso(stamp), host=socket.gethostname(), pid=os.getpid(),
                                 resume=dict(resume or {}), location=str(self.root), alive=True)
            if takes_over is not None:
                entry.safety, entry.phase = dict(takes_over.safety), takes_over.phase
            fd = os.open(self._lock_path(entry.id), os.O_RDWR | os.O_CREAT, 0o600)
            fcntl.flock(fd, fcntl.LOCK_EX)
            self.write(entry)
            if takes_over is not None:
                self.remove(takes_over)
                log.info("restore journal %s takes over the interrupted restore %s (its safety backup is kept)", entry.id, takes_over.id)
        opened = OpenJournal(self, entry)
        log.info("restore journal %s: %s", self.describe() + entry.id, entry.describe())
        try:
            with interruptible(what):
                yield opened
        except BaseException as e:
            if not entry.touched or isinstance(e, (RestoreRolledBack, RestoreRefused)):
                self.remove(entry)
                if not entry.touched:
                    e.untouched = entry.label  # the CLI says "nothing to undo"
            else:
                log.error("restore journal %s KEPT: %s did not finish and was not rolled back (%s: %s); see `%s restore status`",
                          entry.id, entry.describe(), type(e).__name__, e, CLI)
            raise
        else:
            self.remove(entry)
        finally:
            os.close(fd)

    @contextmanager
    def claim(self, entry: JournalEntry) -> Iterator[JournalEntry]:
        """Hold a dead record's lock while undoing its restore: the record is removed when the
        block succeeds and kept (phase ``rolling_back``) when it fails."""
        fd = os.open(self._lock_path(entry.id), os.O_RDWR | os.O_CREAT, 0o600)
        try:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                raise RestoreRefused(f"the restore of journal record {entry.id} is still running ({entry.describe()})",
                                     hint="wait for it: a running restore rolls itself back if it fails") from None
            if entry.touched:
                entry.phase = "rolling_back"
                self.write(entry)
            yield entry
            self.clear(entry)
        finally:
            os.close(fd)


class OpenJournal:
    """The record of the running restore; engines update it as they go."""

    def __init__(self, journal: JournalDir, entry: JournalEntry):
        self.journal, self.entry = journal, entry

    @property
    def id(self) -> str:
        return self.entry.id

    def update(self, **fields: Any) -> None:
        for k, v in fields.items():
            setattr(self.entry, k, v)
        self.journal.write(self.entry)

    def writing(self, **fields: Any) -> None:
        """Called right before the first change to the target."""
        self.update(phase="writing", **fields)

    def rolling_back(self) -> None:
        self.update(phase="rolling_back")


class _Unrecorded:
    """Stands in for an OpenJournal when a caller keeps no journal (signals still roll back)."""

    id = None

    def update(self, **fields: Any) -> None:
        pass

    writing = update

    def rolling_back(self) -> None:
        pass


@contextmanager
def recorded(journal: JournalDir | None, engine: str, target: dict[str, Any], *, backup_id: str | None, what: str,
             resume: dict[str, Any] | None = None, takes_over: JournalEntry | None = None) -> Iterator[OpenJournal]:
    """``journal.begin(...)``; without a journal only the signal guard (API callers that keep none)."""
    if journal is None:
        with interruptible(what):
            yield _Unrecorded()  # type: ignore[misc]
        return
    with journal.begin(engine, target, backup_id=backup_id, what=what, resume=resume, takes_over=takes_over) as opened:
        yield opened
