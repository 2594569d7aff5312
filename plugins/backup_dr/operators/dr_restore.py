"""The DR restore steps: MongoDB (full or point in time), Redis and app files, as operators.

Thin over :mod:`backup_dr.core.dr` (:func:`~backup_dr.core.dr.database.restore`,
:func:`~backup_dr.core.dr.services.restore_redis`, :func:`~backup_dr.core.dr.services.restore_files`):
the backup and the copy are chosen by the one good-copy picker (newest capture at or before
the incident, fallback to the next store, the copy fetched and verified ONCE, by the restore
itself). Each step returns ``first_byte_at`` / ``finished_at``: the summary measures the
recovery time achieved from the first byte fetched to the validated target.
"""

from __future__ import annotations

from typing import Any, Sequence

from airflow.sdk import Context

from backup_dr.core.dr import database, services
from backup_dr.core.policy_model import Step
from backup_dr.operators.dr import _DrStep


class MongoRecoverOperator(_DrStep):
    """Restore the picked backup into the target (safe restore: validate, roll back on failure),
    or replay to the picked point in time. The safety backup step's dump is the rollback point:
    no second dump of the target."""

    template_fields: Sequence[str] = ("scenario", "target_conn_id", "dry_run", "drop")
    core_step = database.restore

    def __init__(self, *, drop: Any = "{{ params.drop }}", **kwargs):
        super().__init__(**kwargs)
        self.drop = drop

    def execute(self, context: Context) -> dict[str, Any]:
        return self.run_step(context, conn_id=self.target_conn_id, drop=self.drop)


class _LatestRecover(_DrStep):
    """A restore of the newest backup of a source captured at or before the incident (default:
    this run's start), through the good-copy picker (fallback to the next store)."""

    template_fields: Sequence[str] = ("scenario", "target_conn_id", "dry_run", "incident_time")

    def __init__(self, *, incident_time: str = "{{ params.incident_time }}", **kwargs):
        super().__init__(**kwargs)
        self.incident_time = incident_time


class RedisRecoverOperator(_LatestRecover):
    """Load the newest Redis backup captured at or before the incident into the scenario's Redis
    target over the network, from the first good copy."""

    template_fields: Sequence[str] = ("scenario", "target_conn_id", "redis_target_conn_id", "dry_run", "incident_time")
    core_step = services.restore_redis

    def __init__(self, *, redis_target_conn_id: str = "{{ params.redis_target_conn_id }}", **kwargs):
        super().__init__(**kwargs)
        self.redis_target_conn_id = redis_target_conn_id

    def execute(self, context: Context) -> dict[str, Any]:
        return self.run_step(context, incident_time=self.incident_time, redis_target_conn_id=self.redis_target_conn_id)


class FilesRecoverOperator(_LatestRecover):
    """Restore the newest archive (captured at or before the incident) of each listed files source
    to its policy path (the old content, if any, is kept aside as a safety copy by the core)."""

    core_step = services.restore_files

    def __init__(self, *, sources: list[str], **kwargs):
        super().__init__(**kwargs)
        self.sources = sources

    def execute(self, context: Context) -> dict[str, Any]:
        step = Step("restore_files", self.task_id, self.task_id, sources=tuple(self.sources))
        return self.run_step(context, step, incident_time=self.incident_time)
