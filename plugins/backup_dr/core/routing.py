"""Where and in which order backup tasks run on a distributed Airflow: pools, queues, priorities.

Plain functions over the validated policy (no Airflow import), so the DAG factory, the CLI
(``python -m backup_dr pools``) and the tests agree on one answer.

* **Pools** — one Airflow pool per source, ``backup_dr_<source>``, one slot: every backup task
  of a source (in every class) takes it, so two DAGs never dump the same MongoDB (or snapshot
  the same Redis, or tar the same tree) at once: the production server carries one backup's
  load at a time. A task whose pool does not exist is never scheduled (Airflow only logs a
  warning), so the pools are created from the policy before the DAGs run:
  ``python -m backup_dr pools > pools.json && airflow pools import pools.json``. PITR oplog
  slices are NOT in the pool: they are small and must not wait behind an hour-long dump,
  or the chain would lag and the oplog could roll past it.
* **Queues** — ``sources.<name>.queue`` pins that source's dumps (and its PITR slices) to the
  Celery workers consuming that queue, e.g. workers next to the database; ``classes.<name>.queue``
  pins the class's replication and pruning, and the dumps of its sources without a queue of
  their own. Unset means Airflow's default queue. A queue no worker consumes leaves its tasks
  queued until ``[scheduler] task_queued_timeout`` fails them, so start a worker with it:
  ``airflow celery worker --queues default,<queue>``.
* **Priorities** — the seed orchestrator ran its jobs in priority order (MongoDB 1, Redis 2,
  files 3). Across classes, the class with the tighter recovery objective (RPO, then RTO)
  goes first, so when ``backup_critical_data`` and ``backup_operational_data`` wait for the same
  slot, the critical class's dump gets it. Weights are absolute (``weight_rule="absolute"``).
"""

from __future__ import annotations

from backup_dr.core.policy_model import BackupClass, Job, Policy

#: Every backup pool's name starts with this; the rest is the source name.
POOL_PREFIX = "backup_dr_"


def pool_for(source: str) -> str:
    """The Airflow pool every backup task of ``source`` runs in."""
    return POOL_PREFIX + source


def pools(policy: Policy) -> dict[str, dict]:
    """The pools the DAGs of ``policy`` use, in ``airflow pools import`` format (one slot each)."""
    out: dict[str, dict] = {}
    for cls in policy.classes.values():
        for job in cls.jobs:
            src = policy.sources[job.source]
            classes = sorted({c.name for c in policy.classes.values() if any(j.source == job.source for j in c.jobs)})
            out[pool_for(job.source)] = {
                "slots": 1,
                "description": f"backup-dr: one backup of {src.type} source {job.source!r} at a time "
                               f"(classes: {', '.join(classes)})",
                "include_deferred": False,
            }
    return dict(sorted(out.items()))


def dump_queue(policy: Policy, cls: BackupClass, job: Job) -> str | None:
    """The queue of a job's backup task: the source's, else the class's, else None (default)."""
    return policy.sources[job.source].queue or cls.queue


def class_queue(cls: BackupClass) -> str | None:
    """The queue of a class's replication and prune tasks (None: Airflow's default queue)."""
    return cls.queue


def source_queue(policy: Policy, source: str) -> str | None:
    """The queue of the tasks that read a source outside the backup classes (PITR slices)."""
    return policy.sources[source].queue


def _objective_key(cls: BackupClass) -> tuple:
    return (cls.objective.rpo, cls.objective.rto)


def priority_weight(policy: Policy, cls: BackupClass, job: Job) -> int:
    """Absolute priority weight of a job's tasks: class rank first, then the job's own priority.

    ``100 x (1 + number of classes with a looser objective)`` plus ``100 - 10 x priority`` (1..90),
    so any job of a tighter class outranks every job of a looser one, and priority 1 outranks 2
    inside a class."""
    looser = sum(1 for c in policy.classes.values() if _objective_key(c) > _objective_key(cls))
    return 100 * (1 + looser) + max(1, 100 - 10 * job.priority)
