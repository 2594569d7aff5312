"""One DAG per backup class: ``backup_<class>``.

Shape (critical_data shown; the other classes add one branch per source)::

    backup_mongodb ──> replicate_mongodb[s3, gcs] ──┐
          │  (critical: the rest stops if it fails)  ├──> prune
          └──> backup_redis_cache ──> replicate_…  ──┘

* Each source is dumped into the class's first store (local staging), with the seed
  orchestrator's priority (``priority_weight``) and timeout (``execution_timeout``).
* ``replicate_<source>`` is mapped over the class's other stores (dynamic task mapping):
  each store uploads, verifies every byte client-side, then writes its manifest LAST. The
  UI labels each mapped instance by its store (``map_index_template``), not by 0, 1.
* A job marked ``critical`` gates every other job: if the critical MongoDB backup fails,
  the remaining jobs end ``upstream_failed`` and the failure alert goes out (the seed's
  "stop on critical failure" rule, as trigger rules instead of a hand-written loop).
* ``prune`` applies the class retention only when the whole run succeeded.
* On a distributed deployment (:mod:`backup_dr.core.routing`): every backup task of a source
  takes that source's one-slot pool (two DAGs never dump the same MongoDB at once), runs on
  the source's queue (else the class's), and carries an absolute weight that ranks the
  tighter class first, then the seed's job priority.
"""

from __future__ import annotations

from backup_dr.core.durations import format_duration
from backup_dr.core.engines import engine_for
from backup_dr.core.policy_model import BackupClass, Job, Policy
from backup_dr.core.routing import class_queue, dump_queue, pool_for, priority_weight
from backup_dr.dag_factory.common import (
    START_DATE,
    TAG,
    deadlines,
    default_args,
    objective_md,
    timetable,
)

def _operator_class(engine):
    """The engine's backup operator (named as ``module:Class``: core does not import Airflow)."""
    import importlib

    module, name = engine.backup_operator.split(":")
    return getattr(importlib.import_module(module), name)


def job_task_id(job: Job) -> str:
    return f"backup_{job.source}" + ("_schema" if job.metadata_only else "")


def _doc(policy: Policy, cls: BackupClass) -> str:
    rows = []
    for job in cls.jobs:
        src = policy.sources[job.source]
        what = engine_for(src).target(src)
        extra = " (schema only)" if job.metadata_only else (f" collections: {', '.join(job.collections)}" if job.collections else "")
        rows.append(
            f"| `{job_task_id(job)}` | {src.type} `{job.source}` {what}{extra} | {job.priority} | "
            f"{format_duration(job.timeout)} | {'yes' if job.critical else ''} |"
        )
    when = cls.schedule.cron or ("on each deploy: Asset `" + str(cls.schedule.asset_uri) + "`" if cls.schedule.kind == "on_deploy" else "manual")
    return (
        f"# Backup class `{cls.name}`\n\n{cls.description}\n\n"
        f"- **Schedule**: `{when}` ({policy.defaults.timezone})\n"
        f"- {objective_md(cls.objective.rpo, cls.objective.rto)} ({cls.objective.name})\n"
        f"- **Retention**: {cls.retention.text}; the newest verified backup of each source is always kept\n"
        f"- **Stores**: {', '.join(cls.stores)} (staged in `{cls.stores[0]}`, then replicated and verified byte for byte)\n"
        f"- **Deadline**: an alert fires if a run has not finished {format_duration(cls.objective.rpo)} after it was queued\n\n"
        "| task | protects | priority | timeout | critical |\n|---|---|---|---|---|\n" + "\n".join(rows) + "\n\n"
        "Restore without Airflow: `python -m backup_dr list --class " + cls.name + "` then "
        "`python -m backup_dr restore ...` (see the README's runbook)."
    )


def build_backup_dag(policy: Policy, cls: BackupClass):
    from airflow.sdk import DAG, Param
    from airflow.sdk.definitions.xcom_arg import XComArg

    from backup_dr.operators.stores import PruneOperator, ReplicateOperator

    dag_id = f"backup_{cls.name}"
    params = {}
    if cls.schedule.kind == "on_deploy":
        params = {
            "ref": Param("HEAD", type="string", description="git ref that was deployed (the Asset event's extra.ref wins)"),
            "image": Param("", type="string", description="container image reference, e.g. registry/api:1.2.3"),
            "image_digest": Param("", type="string", description="image digest, sha256:..."),
        }
    with DAG(
        dag_id=dag_id,
        schedule=timetable(policy, cls.schedule),
        start_date=START_DATE,
        catchup=False,
        max_active_runs=1,
        tags=[TAG, "backup", cls.name, cls.objective.name],
        default_args=default_args(policy, f"backup class {cls.name}"),
        doc_md=_doc(policy, cls),
        params=params,
        deadline=deadlines(policy, what=f"backup class {cls.name}", deadline="RPO", interval=cls.objective.rpo),
        dagrun_timeout=None,
    ) as dag:
        remote = [s for s in cls.stores[1:]]
        critical_tasks, other_tails, tails = [], [], []
        on_class_queue = {"queue": class_queue(cls)} if class_queue(cls) else {}
        for job in cls.jobs:
            src = policy.sources[job.source]
            weight = priority_weight(policy, cls, job)
            queue = dump_queue(policy, cls, job)
            kwargs = dict(
                task_id=job_task_id(job),
                backup_class=cls.name,
                source=job.source,
                priority_weight=weight,
                weight_rule="absolute",
                pool=pool_for(job.source),
                execution_timeout=job.timeout,
                doc_md=f"Back up `{job.source}` ({src.type}) into `{cls.stores[0]}`; manifest written last. "
                       f"Pool `{pool_for(job.source)}` (one backup of this source at a time)"
                       + (f", queue `{queue}`." if queue else "."),
                **({"queue": queue} if queue else {}),
            )
            engine = engine_for(src)
            kwargs.update(engine.job_options(job))
            backup = _operator_class(engine)(**kwargs)
            tail = backup
            if remote:
                tail = ReplicateOperator.partial(
                    task_id=f"replicate_{job_task_id(job)[len('backup_'):]}",
                    backup=XComArg(backup),
                    priority_weight=weight,
                    weight_rule="absolute",
                    execution_timeout=job.timeout,
                    **on_class_queue,
                    map_index_template=ReplicateOperator.STORE_LABEL,
                ).expand(store=remote)
                backup >> tail
            tails.append(tail)
            (critical_tasks if job.critical else other_tails).append(backup)
        for crit in critical_tasks:
            for other in other_tails:
                crit >> other
        prune = PruneOperator(task_id="prune", backup_class=cls.name, doc_md="Apply the class retention (plan logged first).",
                              **on_class_queue)
        tails >> prune
    return dag
