"""The MongoDB engine: :mod:`backup_dr.core.mongo` behind the engine protocol.

Backups are mongodump-compatible archives (``full``, or ``schema`` for a metadata-only
job); a drill restores into a SCRATCH server (``ops.drill_scratch.mongodb_conn_id``),
never production: the scratch must be another server than every MongoDB source.
"""

from __future__ import annotations

import time
from typing import Any, Callable

from backup_dr.core.engines.base import BackupRequest, Connector, SourceEngine
from backup_dr.core.policy_model import Job


class MongoEngine(SourceEngine):
    type = "mongodb"
    dr_role = "database"
    pitr = True
    partial_jobs = True
    label = "MongoDB"
    restore_commands = ("mongo",)
    backup_operator = "backup_dr.operators.backup:MongoDumpOperator"
    scratch_field = "mongodb_conn_id"
    scratch_separate_server = True
    journal_engines = ("mongodb",)
    journal_takeover = ("mongodb",)

    def artifact_kind(self, source, *, metadata_only: bool = False) -> str:
        return "schema" if metadata_only else "full"


    def job_options(self, job: Job) -> dict[str, Any]:
        return {"collections": list(job.collections) or None, "metadata_only": job.metadata_only}

    def backup(self, source, writer, connector: Connector, request: BackupRequest):
        from backup_dr.core.mongo.backup import backup_mongodb

        conn_id = request.conn_id or source.conn_id
        secrets = connector.conn_info(conn_id).secrets
        job = request.job or Job(source=source.name)
        with connector.mongo_client(conn_id, readPreference=source.read_preference) as client:
            return backup_mongodb(client, source, job, writer, secrets=secrets)

    def open_scratch(self, connector: Connector, conn_id: str | None) -> Callable[[], Any] | None:
        return (lambda: connector.mongo_client(conn_id)) if conn_id else None

    def drill(self, manifest, store, workdir, scratch):
        from backup_dr.core.errors import RestoreRefused
        from backup_dr.core.mongo.backup import verify_restore

        if scratch is None:
            raise RestoreRefused("a MongoDB drill needs a scratch instance (ops.drill_scratch.mongodb_conn_id)")
        t0 = time.monotonic()
        with scratch() as client:  # a client connects lazily: the first I/O is the fetch
            res = verify_restore(client, store, manifest, workdir=workdir)
        total = time.monotonic() - t0
        return {"ok": res.ok, "restore_seconds": round(total, 3), "fetch_seconds": round(max(total - res.seconds, 0.0), 3),
                "problems": res.problems, "details": res.as_dict()}

    def roll_back_interrupted(self, journal, entry, connector, conn_id, secrets=None):
        from backup_dr.core.mongo.interrupted import rollback_interrupted

        with connector.mongo_client(conn_id) as client:
            return rollback_interrupted(client, journal, entry, secrets=secrets)
