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
from datetime import datetime, timedelta
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
