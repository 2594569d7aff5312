"""The one place that names backup objects. No other code builds a key string by hand.

Layout inside every store (the format version is part of the prefix, as in WAL-E)::

    <store prefix>/backup-dr-v1/<class>/<source>/<YYYY>/<MM>/<DD>/<backup_id>/
        <data files ...>
        manifest.json          <- written LAST; no manifest = not a backup
        verify-<stamp>.json    <- verification / drill records (manifests may be locked)

A backup id is deterministic: ``<class>.<source>.<kind>.<YYYYMMDDTHHMMSSZ>`` from the DAG
run's ``run_after``, so a retried task reuses (and overwrites) its own partial work and
never creates a second copy. The id alone locates the backup in any store.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime, timezone

FORMAT_VERSION = 1
ROOT = f"backup-dr-v{FORMAT_VERSION}"
MANIFEST = "manifest.json"
VERIFY_PREFIX = "verify-"

#: Artifact kinds. ``safety`` is the copy of a restore target taken before overwriting it.
KINDS = ("full", "schema", "oplog", "rdb", "aof", "files", "bundle", "safety")

_PART = r"[a-z][a-z0-9_]*"
_ID = re.compile(rf"^({_PART})\.({_PART})\.([a-z]+)\.(\d{{8}}T\d{{6}}Z)$")
_STAMP = "%Y%m%dT%H%M%SZ"


def utc(dt: datetime) -> datetime:
    """Aware UTC datetime (naive input is taken as UTC, as pendulum/Airflow dates are)."""
    return dt.replace(tzinfo=timezone.utc) if dt.tzinfo is None else dt.astimezone(timezone.utc)


@dataclass(frozen=True, order=True)
class BackupId:
    """Parsed backup id; ``str(bid)`` is the canonical text."""

    stamp: datetime
    backup_class: str
    source: str
    kind: str

    @classmethod
    def new(cls, backup_class: str, source: str, kind: str, run_after: datetime) -> "BackupId":
        if kind not in KINDS:
            raise ValueError(f"unknown artifact kind {kind!r}; known: {', '.join(KINDS)}")
        for what, value in (("class", backup_class), ("source", source)):
            if not re.fullmatch(_PART, value):
                raise ValueError(f"{what} name {value!r} must be lower-case letters, digits and '_'")
        return cls(utc(run_after).replace(microsecond=0), backup_class, source, kind)

    @classmethod
    def parse(cls, text: str) -> "BackupId":
        m = _ID.match(text.strip())
        if not m:
            raise ValueError(
                f"{text!r} is not a backup id (expected <class>.<source>.<kind>.<YYYYMMDDTHHMMSSZ>, "
                "e.g. critical_data.mongodb.full.20261126T080000Z)"
            )
        stamp = datetime.strptime(m.group(4), _STAMP).replace(tzinfo=timezone.utc)
        return cls.new(m.group(1), m.group(2), m.group(3), stamp)

    def __str__(self) -> str:
        return f"{self.backup_class}.{self.source}.{self.kind}.{self.stamp.strftime(_STAMP)}"

    @property
    def prefix(self) -> str:
        """Directory of this backup inside a store, with a trailing slash."""
        d = self.stamp
        return f"{ROOT}/{self.backup_class}/{self.source}/{d:%Y}/{d:%m}/{d:%d}/{self}/"

    def key(self, filename: str) -> str:
        if not filename or filename.startswith("/") or ".." in filename.split("/"):
            raise ValueError(f"bad artifact file name {filename!r}")
        return self.prefix + filename

    @property
    def manifest_key(self) -> str:
        return self.prefix + MANIFEST


def kind_for(source, *, metadata_only: bool = False) -> str:
    """The artifact kind a policy source produces (``schema`` for a metadata-only MongoDB job);
    its engine decides (:mod:`backup_dr.core.engines`)."""
    from backup_dr.core.engines import engine_for

    return engine_for(source).artifact_kind(source, metadata_only=metadata_only)


def class_prefix(backup_class: str | None = None, source: str | None = None) -> str:
    """Listing prefix for a class (and source) in a store."""
    if backup_class is None:
        return ROOT + "/"
    if source is None:
        return f"{ROOT}/{backup_class}/"
    return f"{ROOT}/{backup_class}/{source}/"


def parse_key(key: str) -> tuple[BackupId, str] | None:
    """Split an object key into (backup id, file name); None if it is not inside a backup."""
    parts = key.split("/")
    try:
        i = parts.index(ROOT)
    except ValueError:
        return None
    rest = parts[i + 1 :]
    if len(rest) < 7:
        return None
    try:
        bid = BackupId.parse(rest[5])
    except ValueError:
        return None
    return bid, "/".join(rest[6:])
