"""Typed, immutable objects the policy file is validated into.

Nothing here reads files or validates; see :mod:`backup_dr.core.policy` for that. Every
object is a frozen dataclass so a DAG, an operator and the CLI can share one parsed policy
without anyone changing it underneath the others.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import timedelta
from typing import Literal

StoreType = Literal["local", "s3", "gcs"]
SourceType = Literal["mongodb", "redis", "files", "git", "postgresql"]

#: The step kinds a DR scenario may use. Python decides how each is carried out.
STEP_KINDS = (
    "detect",
    "pick_backup",
    "approval",
    "safety_backup",
    "restore",
    "restore_redis",
    "restore_files",
    "validate",
    "repoint",
    "health_check",
)


@dataclass(frozen=True)
class Defaults:
    owner: str = "platform-dba"
    timezone: str = "UTC"
    #: how a typed time without an offset is read: "refuse" (default) or "policy_timezone"
    #: (in ``timezone``); see :mod:`backup_dr.core.times`
    naive_times: str = "refuse"
    retries: int = 2
    retry_delay: timedelta = timedelta(minutes=2)
    max_retry_delay: timedelta = timedelta(minutes=30)


@dataclass(frozen=True)
class Objective:
    """A recovery-objective tier: how much data may be lost (RPO) and how long recovery may take (RTO)."""

    name: str
    rpo: timedelta
    rto: timedelta


@dataclass(frozen=True)
class ObjectLock:
    mode: Literal["COMPLIANCE", "GOVERNANCE"]


@dataclass(frozen=True)
class Encryption:
    """Client-side encryption of a class's backups (``classes.<name>.encryption``).

    The master key (or keyring) comes from connection ``key_conn_id``; see
    :mod:`backup_dr.core.crypto.keys`. Per class, not per store: the files are encrypted once
    when written, so every store holds the same ciphertext and one manifest fits them all.
    """

    key_conn_id: str


@dataclass(frozen=True)
class StoreSpec:
    name: str
    type: StoreType
    path: str | None = None  # local
    bucket: str | None = None  # s3 / gcs
    prefix: str = ""
    conn_id: str | None = None
    object_lock: ObjectLock | None = None


@dataclass(frozen=True)
class MongoSource:
    name: str
    conn_id: str
    database: str
    collections: tuple[str, ...] = ()
    read_preference: str = "secondaryPreferred"
    compression: Literal["gzip", "zstd", "none"] = "gzip"
    format: Literal["archive", "directory"] = "archive"
    queue: str | None = None  # Celery queue of its dumps (see backup_dr.core.routing)
    type: SourceType = "mongodb"


@dataclass(frozen=True)
class RedisSource:
    name: str
    conn_id: str
    mode: Literal["replication", "bgsave", "aof"] = "replication"
    data_dir: str | None = None  # bgsave / aof modes: the server's `dir`, readable by the worker
    restart_command: tuple[str, ...] = ()  # data_dir restores: how to restart the server
    queue: str | None = None  # Celery queue of its dumps (see backup_dr.core.routing)
    type: SourceType = "redis"


@dataclass(frozen=True)
class FilesSource:
    name: str
    path: str
    include: tuple[str, ...] = ()
    exclude: tuple[str, ...] = ()
    modified_within: timedelta | None = None
    compression: Literal["zstd", "gzip"] = "zstd"
    queue: str | None = None  # Celery queue of its dumps (see backup_dr.core.routing)
    type: SourceType = "files"


@dataclass(frozen=True)
class GitSource:
    name: str
    path: str
    queue: str | None = None  # Celery queue of its dumps (see backup_dr.core.routing)
    type: SourceType = "git"


from backup_dr.core.postgres.source import PostgresSource  # noqa: E402 - the engine's own dataclass

Source = MongoSource | RedisSource | FilesSource | GitSource | PostgresSource


@dataclass(frozen=True)
class Schedule:
    """When a class runs. ``interval`` is the longest gap between two runs (None: event-driven)."""

    kind: Literal["cron", "on_deploy", "manual"]
    cron: str | None = None
    interval: timedelta | None = None
    asset_uri: str | None = None


@dataclass(frozen=True)
class Gfs:
    """Grandfather-father-son counts kept on top of ``keep_within`` (0 = rule off)."""

    hourly: int = 0
    daily: int = 0
    weekly: int = 0
    monthly: int = 0


@dataclass(frozen=True)
class Retention:
    keep_within: timedelta
    gfs: Gfs = field(default_factory=Gfs)
    text: str = ""  # as written in the policy, for messages and manifests


@dataclass(frozen=True)
class Job:
    """One source backed up by a class, with the seed orchestrator's priority and timeout."""

    source: str
    priority: int = 1
    timeout: timedelta = timedelta(hours=1)
    critical: bool = False
    collections: tuple[str, ...] = ()  # MongoDB: override the source's collection list
    metadata_only: bool = False  # MongoDB: options, validators and indexes only ("schema")


@dataclass(frozen=True)
class BackupClass:
    name: str
    description: str
    schedule: Schedule
    retention: Retention
    stores: tuple[str, ...]
    objective: Objective
    jobs: tuple[Job, ...]
    encryption: Encryption | None = None
    queue: str | None = None  # Celery queue of its replication/prune (see backup_dr.core.routing)


@dataclass(frozen=True)
class PitrSpec:
    source: str
    backup_class: str
    interval: timedelta
    stores: tuple[str, ...]


@dataclass(frozen=True)
class Step:
    kind: str
    name: str
    title: str
    instructions: str = ""
    point_in_time: bool = False
    sources: tuple[str, ...] = ()


@dataclass(frozen=True)
class Scenario:
    name: str
    title: str
    rpo: timedelta
    rto: timedelta
    backup_class: str
    steps: tuple[Step, ...]
    target_conn_id: str | None = None  # MongoDB to restore into (default: the source's own connection)
    redis_target_conn_id: str | None = None  # Redis to load into (restore_redis steps)


@dataclass(frozen=True)
class Alerts:
    email_conn_id: str | None
    email_to: tuple[str, ...]
    slack_conn_id: str | None


@dataclass(frozen=True)
class Ops:
    health_schedule: str = "15 * * * *"
    drill_schedule: str = "30 4 * * *"
    scratch_mongodb_conn_id: str | None = None
    app_health_url: str | None = None
    repoint_webhook_conn_id: str | None = None  # DR "repoint" steps POST the new endpoints here
    scratch_postgresql_conn_id: str | None = None

    @property
    def drill_scratch(self) -> dict[str, str | None]:
        """``ops.drill_scratch`` as written: field -> conn id (engines name their field)."""
        return {"mongodb_conn_id": self.scratch_mongodb_conn_id, "postgresql_conn_id": self.scratch_postgresql_conn_id}


@dataclass(frozen=True)
class Policy:
    """The whole validated policy. ``issues`` lists entries dropped in lenient mode; ``causes``
    links each knock-on issue to the entry that caused it (see :mod:`backup_dr.core.policy_causes`)."""

    version: int
    defaults: Defaults
    objectives: dict[str, Objective]
    stores: dict[str, StoreSpec]
    sources: dict[str, Source]
    classes: dict[str, BackupClass]
    pitr: dict[str, PitrSpec]
    scenarios: dict[str, Scenario]
    alerts: Alerts
    ops: Ops
    issues: tuple[tuple[str, str], ...] = ()
    path: str | None = None
    causes: dict[str, str] = field(default_factory=dict)

    def issues_for(self, prefix: str) -> list[tuple[str, str]]:
        """Problems recorded under a path prefix such as ``classes.critical_data``."""
        from backup_dr.core.policy_causes import under

        return [(p, r) for p, r in self.issues if under(p, prefix)]

    def root_causes(self, prefix: str) -> list[tuple[str, str]]:
        """Why ``prefix`` (e.g. ``dr_scenarios.data_corruption``) is invalid: the ROOT problems,
        e.g. ``classes.critical_data.schedule: ...`` rather than "its class is invalid"."""
        from backup_dr.core.policy_causes import root_causes

        return root_causes(list(self.issues), self.causes, prefix)

    def broken(self, section: str) -> dict[str, list[tuple[str, str]]]:
        """Entries of ``section`` dropped in lenient mode -> their root problems."""
        from backup_dr.core.policy_causes import entry_of

        names = dict.fromkeys(entry_of(p).split(".", 1)[1] for p, _ in self.issues
                              if p.startswith(section + ".") and "." in entry_of(p))
        return {n: self.root_causes(f"{section}.{n}") for n in names}

    def class_stores(self, class_name: str) -> list[StoreSpec]:
        return [self.stores[s] for s in self.classes[class_name].stores]
