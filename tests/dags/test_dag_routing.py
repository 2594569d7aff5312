"""The DAG factory wires pools, queues and priorities exactly as backup_dr.core.routing decides.

(The shipped policy pins no queue: see test_dag_structure. Here a policy with queues.)"""

from __future__ import annotations

from pathlib import Path

from backup_dr.core.policy import parse_policy, read_policy_document
from backup_dr.core.routing import pool_for, priority_weight

ROOT = Path(__file__).resolve().parents[2]


def _policy_with_queues():
    doc = read_policy_document(ROOT / "include" / "policy.yaml")
    doc["sources"]["mongodb"]["queue"] = "near_db"
    doc["classes"]["critical_data"]["queue"] = "offsite"
    doc["classes"]["operational_data"]["queue"] = "ops"
    return parse_policy(doc)


def test_dumps_follow_the_source_queue_replication_and_prune_the_class_queue():
    from backup_dr.dag_factory.backup_classes import build_backup_dag

    policy = _policy_with_queues()
    crit = build_backup_dag(policy, policy.classes["critical_data"])
    assert crit.get_task("backup_mongodb").queue == "near_db"
    assert crit.get_task("replicate_mongodb").queue == "offsite" and crit.get_task("prune").queue == "offsite"

    ops = build_backup_dag(policy, policy.classes["operational_data"])
    queues = {t.task_id: t.queue for t in ops.tasks}
    assert queues["backup_mongodb"] == "near_db"  # the source pins its dumps in every class
    assert queues["backup_redis_cache"] == queues["backup_app_logs"] == queues["replicate_redis_cache"] == "ops"
    conf = build_backup_dag(policy, policy.classes["configuration"])
    assert {t.task_id: t.queue for t in conf.tasks} == {
        "backup_app_config": "default", "backup_mongodb_schema": "near_db", "replicate_app_config": "default",
        "replicate_mongodb_schema": "default", "backup_airflow_db": "default", "replicate_airflow_db": "default",
        "prune": "default"}


def test_every_dump_of_a_source_shares_one_pool_across_dags_with_ranked_weights():
    from backup_dr.dag_factory.backup_classes import build_backup_dag

    policy = _policy_with_queues()
    dumps = {}
    for cls in policy.classes.values():
        dag = build_backup_dag(policy, cls)
        for job in cls.jobs:
            task = dag.get_task("backup_" + job.source + ("_schema" if job.metadata_only else ""))
            assert task.pool == pool_for(job.source) and task.pool_slots == 1
            assert task.priority_weight == priority_weight(policy, cls, job) and task.weight_rule == "absolute"
            rep = dag.get_task(task.task_id.replace("backup_", "replicate_", 1))
            assert rep.pool == "default_pool" and rep.partial_kwargs["priority_weight"] == task.priority_weight
            dumps.setdefault(task.pool, []).append((cls.name, task.priority_weight))
        assert dag.get_task("prune").pool == "default_pool"
    mongo = dict(dumps["backup_dr_mongodb"])
    assert set(mongo) == {"critical_data", "operational_data", "configuration"}
    assert mongo["critical_data"] > mongo["operational_data"] > mongo["configuration"]


def test_pitr_slices_run_near_the_database_but_not_in_the_backup_pool():
    from backup_dr.dag_factory.pitr import build_pitr_dag

    dag = build_pitr_dag(_policy_with_queues())
    archive = dag.get_task("archive_oplog_mongodb")
    assert archive.queue == "near_db" and archive.pool == "default_pool"
