"""``manifest.json``: what a backup is, written LAST. No manifest = not a backup.

It records everything needed to trust and restore the backup without any other system:
format version, id, class, source, kind, times, the consistent point, every file with
size + sha256 + codec (+ encryption metadata), counts, tool version and the retention
that applies. Verification results live in separate ``verify-*.json`` records because a
manifest is immutable (and may be under S3 Object Lock).
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from datetime import datetime, timedelta, timezone
from typing import Any

from backup_dr import TOOL_NAME, __version__
from backup_dr.core.artifacts.layout import FORMAT_VERSION, BackupId, utc
from backup_dr.core.errors import IntegrityError


def iso(dt: datetime | None) -> str | None:
    return utc(dt).isoformat().replace("+00:00", "Z") if dt else None


def parse_iso(text: str | None) -> datetime | None:
    if not text:
        return None
    return utc(datetime.fromisoformat(text.replace("Z", "+00:00")))


#: Where a manifest's ``consistent_point`` holds the end / start of the data it covers.
END_KEYS = ("end", "end_ts", "end_optime", "end_time", "until", "time")  # "time": Redis snapshot time
START_KEYS = ("start", "start_ts", "start_optime", "start_time", "from")

Point = tuple[float, int]  # (UNIX seconds, increment): orders BSON Timestamps and times alike


def _as_point(value: Any) -> Point | None:
    """A BSON-Timestamp-like ``{"t", "i"}`` / ``{"$timestamp": ...}`` / ``[t, i]`` / seconds / ISO text."""
    if value is None or isinstance(value, bool):
        return None
    if isinstance(value, dict):
        if "$timestamp" in value:
            return _as_point(value["$timestamp"])
        if "t" in value:
            return float(value["t"]), int(value.get("i", 0))
        for k in ("ts", "time", "wall"):
            if k in value:
                return _as_point(value[k])
        return None
    if isinstance(value, (list, tuple)) and len(value) == 2:
        return float(value[0]), int(value[1])
    if isinstance(value, (int, float)):
        return float(value), 0
    if isinstance(value, datetime):
        return utc(value).timestamp(), 0
    if isinstance(value, str):
        try:
            return parse_iso(value).timestamp(), 0
        except ValueError:
            return None
    return None


def data_point(manifest: "Manifest", which: str = "end") -> Point:
    """The (end|start) of the data a backup covers, from ``consistent_point``.

    The contract with the engines: ``consistent_point["end"]`` (a full backup's consistent
    point; an oplog slice's last entry) and ``consistent_point["start"]`` (an oplog slice's
    first entry) hold a BSON Timestamp as ``{"t": seconds, "i": increment}`` or an ISO time.
    Missing, the manifest's ``finished_at`` / ``started_at`` stand in (safe bounds).
    """
    keys = END_KEYS if which == "end" else START_KEYS
    for k in keys:
        p = _as_point(manifest.consistent_point.get(k))
        if p is not None:
            return p
    fallback = manifest.finished if which == "end" else parse_iso(manifest.started_at)
    return fallback.timestamp(), 0


@dataclass(frozen=True)
class FileEntry:
    """One data file of a backup. ``sha256``/``size`` are of the bytes as stored.

    When encrypted, ``plain_sha256``/``plain_size`` are of the decrypted bytes (what a
    restore verifies) and ``encryption`` holds the wrapped data key and parameters.
    """

    name: str
    size: int
    sha256: str
    codec: str = "none"  # gzip | zstd | none (compression of the stored stream)
    format: str = ""  # mongodump-archive | bson | rdb | aof-dir-tar | tar | git-bundle | json
    plain_sha256: str | None = None
    plain_size: int | None = None
    encryption: dict[str, Any] | None = None


@dataclass(frozen=True)
class Manifest:
    backup_id: str
    backup_class: str
    source: str
    source_type: str  # mongodb | redis | files | git
    kind: str
    run_after: str
    started_at: str
    finished_at: str
    files: tuple[FileEntry, ...]
    consistent_point: dict[str, Any] = field(default_factory=dict)
    counts: dict[str, int] = field(default_factory=dict)
    retention: dict[str, Any] = field(default_factory=dict)
    details: dict[str, Any] = field(default_factory=dict)
    previous_id: str | None = None  # oplog slices: the slice this one continues
    tool: dict[str, str] = field(default_factory=lambda: {"name": TOOL_NAME, "version": __version__})
    format_version: int = FORMAT_VERSION

    @property
    def id(self) -> BackupId:
        return BackupId.parse(self.backup_id)

    @property
    def total_size(self) -> int:
        return sum(f.size for f in self.files)

    @property
    def finished(self) -> datetime:
        return parse_iso(self.finished_at)

    @property
    def captured_at(self) -> datetime:
        """When the data was captured: the consistent point (MongoDB: the dump's end optime, to
        which the restore replays; Redis: the snapshot time), else ``finished_at`` (files, git:
        every byte was read by then). Never the slot in the id: a late run's data is newer.
        Every age, "newest before T", RPO and retention decision uses this."""
        return datetime.fromtimestamp(data_point(self, "end")[0], timezone.utc)

    @property
    def expires_at(self) -> datetime | None:
        return parse_iso(self.retention.get("expires_at"))

    def file(self, name: str) -> FileEntry:
        for f in self.files:
            if f.name == name:
                return f
        raise KeyError(name)

    def to_json(self) -> bytes:
        data = asdict(self)
        return (json.dumps(data, indent=2, sort_keys=True, ensure_ascii=False, default=str) + "\n").encode("utf-8")

    @classmethod
    def from_json(cls, raw: bytes | str, *, where: str = "manifest") -> "Manifest":
        try:
            data = json.loads(raw)
            version = data.get("format_version")
            if version != FORMAT_VERSION:
                raise IntegrityError(
                    f"{where}: manifest format version {version!r} is not supported (this release reads {FORMAT_VERSION})",
                    hint="restore it with the backup_dr release that wrote it (see its 'tool' field)",
                )
            data["files"] = tuple(FileEntry(**f) for f in data["files"])
            return cls(**data)
        except (ValueError, TypeError, KeyError) as e:
            raise IntegrityError(f"{where}: manifest is unreadable ({type(e).__name__}: {e})", hint="the object may be truncated or not a backup_dr manifest") from e


def retention_block(text: str, keep_within: timedelta, taken_at: datetime) -> dict[str, Any]:
    """The retention recorded in a manifest (also the S3 Object Lock retain-until date)."""
    return {
        "keep_within": text,
        "keep_within_seconds": int(keep_within.total_seconds()),
        "expires_at": iso(utc(taken_at) + keep_within),
    }
