"""Backup operators: thin over the source engines, all writing through the same ArtifactWriter path.

Each one resolves the class and source from the policy, derives the deterministic backup id
from the run's ``run_after`` (a retry reuses and overwrites its own partial work), calls the
source's engine (:mod:`backup_dr.core.engines`), and returns a small summary to XCom. A
type-specific operator exists only where a task has options of its own (MongoDB collections,
git deploy refs); any other engine runs under :class:`SourceBackupOperator`. Example::

    MongoDumpOperator(task_id="backup_mongodb", backup_class="critical_data", source="mongodb")
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any, Sequence

from airflow.sdk import BaseOperator, Context

from backup_dr.core.artifacts.layout import BackupId, kind_for
from backup_dr.core.artifacts.writer import ArtifactWriter
from backup_dr.core.crypto.keys import encryption_for_class
from backup_dr.core.engines import BackupRequest, engine_for
from backup_dr.core.policy_model import BackupClass, Job, Policy
from backup_dr.operators._common import CONNECTOR, conn_info, get_policy, local_store, manifest_summary, run_after, translate_errors


class _BackupOperator(BaseOperator):
    """Shared ``execute``: the engine does the work; subclasses add their options in :meth:`request`."""

    template_fields: Sequence[str] = ("backup_class", "source")
    ui_color = "#e8f4ea"

    def __init__(self, *, backup_class: str, source: str, policy_path: str | None = None, **kwargs) -> None:
        super().__init__(**kwargs)
        self.backup_class = backup_class
        self.source = source
        self.policy_path = policy_path

    def kind(self, src) -> str:
        return kind_for(src)

    def request(self, src, context: Context) -> BackupRequest:
        """What this task asks of the engine besides the source (subclasses add their options)."""
        timeout = self.execution_timeout.total_seconds() if self.execution_timeout else 3600.0
        return BackupRequest(timeout=timeout, now=run_after(context))

    def run(self, policy: Policy, cls: BackupClass, src, writer: ArtifactWriter, context: Context):
        request = self.request(src, context)
        conn_id = request.conn_id or getattr(src, "conn_id", None)
        secrets = conn_info(conn_id).secrets if conn_id else []  # scrubbed from any error the engine raises
        with translate_errors(*secrets, conn_id=conn_id):
            return engine_for(src).backup(src, writer, CONNECTOR, request)

    def execute(self, context: Context) -> dict[str, Any]:
        policy = get_policy(self.policy_path)
        cls = policy.classes[self.backup_class]
        src = policy.sources[self.source]
        store = local_store(policy, cls.name)
        bid = BackupId.new(cls.name, src.name, self.kind(src), run_after(context))
        with translate_errors():  # a missing or malformed key fails the task before any data is read
            encryption = encryption_for_class(cls)
        writer = ArtifactWriter(store, bid, source_type=src.type, retention=cls.retention, run_after=run_after(context),
                                encryption=encryption)
        self.log.info("backup %s of %s (%s) into %s%s", bid, src.name, src.type, store.describe(),
                      f", encrypted with key {encryption.key.key_id!r}" if encryption else "")
        manifest = self.run(policy, cls, src, writer, context)
        return manifest_summary(manifest, store=store.name, **({"encryption_key_id": encryption.key.key_id} if encryption else {}))


class MongoDumpOperator(_BackupOperator):
    """Dump a MongoDB database (or chosen collections) into a stock-compatible mongodump archive,
    consistent at the recorded end point (the oplog window is stored in the archive).

    :param backup_class: policy class (templated)
    :param source: policy source of type mongodb (templated)
    :param collections: override the source's collection list (templated)
    :param metadata_only: options, validators and indexes only (the "schema" backup)
    :param mongo_conn_id: override the source's connection id (templated)
    """

    template_fields: Sequence[str] = ("backup_class", "source", "collections", "mongo_conn_id")

    def __init__(self, *, collections: list[str] | None = None, metadata_only: bool = False, mongo_conn_id: str | None = None, **kwargs):
        super().__init__(**kwargs)
        self.collections = collections
        self.metadata_only = metadata_only
        self.mongo_conn_id = mongo_conn_id

    def kind(self, src) -> str:
        return kind_for(src, metadata_only=self.metadata_only)

    def request(self, src, context):
        job = Job(source=src.name, collections=tuple(self.collections or ()), metadata_only=self.metadata_only)
        return replace(super().request(src, context), job=job, conn_id=self.mongo_conn_id or src.conn_id)


class RDBSnapshotOperator(_BackupOperator):
    """Snapshot Redis: by default fetch the RDB over the replication protocol (no shell on the
    Redis host, constant memory); ``bgsave`` / ``aof`` modes copy from a co-located data dir.

    :param redis_conn_id: override the source's connection id (templated)
    """

    template_fields: Sequence[str] = ("backup_class", "source", "redis_conn_id")

    def __init__(self, *, redis_conn_id: str | None = None, **kwargs):
        super().__init__(**kwargs)
        self.redis_conn_id = redis_conn_id

    def request(self, src, context):
        return replace(super().request(src, context), conn_id=self.redis_conn_id or src.conn_id)


class FileArchiveOperator(_BackupOperator):
    """Archive a directory (config, recent logs, uploads) into one tar (zstd or gzip) that stock
    ``tar`` extracts; include/exclude globs and ``modified_within`` come from the policy."""


class GitBundleOperator(_BackupOperator):
    """``git bundle`` of the application repository at the deployed ref, recording the container
    image and digest of the deploy. The ref/image come from the triggering Asset event's
    ``extra`` (``{"ref": ..., "image": ..., "image_digest": ...}``), else from the run's params."""

    @staticmethod
    def deploy_info(context: Context) -> dict[str, str]:
        info: dict[str, str] = {}
        params = context.get("params") or {}
        for key in ("ref", "image", "image_digest"):
            if params.get(key):
                info[key] = str(params[key])
        events = context.get("triggering_asset_events") or {}
        latest = None
        for evs in events.values():
            for ev in evs:
                if latest is None or getattr(ev, "timestamp", None) and ev.timestamp > latest.timestamp:
                    latest = ev
        for key, value in ((getattr(latest, "extra", None) or {}) if latest else {}).items():
            if key in ("ref", "image", "image_digest") and value:
                info[key] = str(value)
        return info

    def request(self, src, context):
        info = self.deploy_info(context)
        self.log.info("deploy: ref=%s image=%s digest=%s", info.get("ref", "HEAD"), info.get("image"), info.get("image_digest"))
        return replace(super().request(src, context), deploy=info)


class SourceBackupOperator(_BackupOperator):
    """Back up a source of any type through its engine (:mod:`backup_dr.core.engines`), e.g. a
    PostgreSQL database with stock ``pg_dump --format=custom``: the operator of every engine
    that needs no task options of its own.

    :param conn_id: override the source's connection id (templated)
    """

    template_fields: Sequence[str] = ("backup_class", "source", "conn_id")

    def __init__(self, *, conn_id: str | None = None, **kwargs):
        super().__init__(**kwargs)
        self.conn_id = conn_id

    def request(self, src, context):
        return replace(super().request(src, context), conn_id=self.conn_id or getattr(src, "conn_id", None))
