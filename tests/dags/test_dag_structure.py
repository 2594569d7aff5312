"""The generated DAGs have exactly the shape the policy describes: tasks, order, trigger rules,
mapping, priorities, timeouts, schedules and deadlines."""

from __future__ import annotations

from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def bag(airflow_db):
    from airflow.dag_processing.dagbag import DagBag

    b = DagBag(dag_folder=str(ROOT / "dags"))
    assert not b.import_errors
    return b


@pytest.fixture(scope="module")
def pol():
    from backup_dr.core.policy import load_policy

    return load_policy(ROOT / "include" / "policy.yaml")


def _job_id(job):
    return f"backup_{job.source}" + ("_schema" if job.metadata_only else "")


def test_backup_class_dags_follow_the_policy(bag, pol):
    from airflow.sdk import CronTriggerTimetable

    from backup_dr.core.routing import pool_for, priority_weight

    for name, cls in pol.classes.items():
        dag = bag.get_dag(f"backup_{name}")
        assert dag.deadline[0].interval == cls.objective.rpo
        if cls.schedule.kind == "cron":
            assert isinstance(dag.timetable, CronTriggerTimetable)
            assert dag.timetable.expression == cls.schedule.cron and str(dag.timetable.timezone) == pol.defaults.timezone
        else:
            assert type(dag.timetable).__name__ == "AssetTriggeredTimetable"
            assert cls.schedule.asset_uri.rstrip("/") in str(dag.timetable.asset_condition)
        expected = {_job_id(j) for j in cls.jobs} | {"prune"} | {"replicate_" + _job_id(j)[len("backup_"):] for j in cls.jobs}
        assert set(dag.task_ids) == expected, name
        critical = [_job_id(j) for j in cls.jobs if j.critical]
        for job in cls.jobs:
            task = dag.get_task(_job_id(job))
            assert task.execution_timeout == job.timeout and task.priority_weight == priority_weight(pol, cls, job)
            assert task.weight_rule == "absolute" and task.pool == pool_for(job.source) == f"backup_dr_{job.source}"
            assert task.queue == "default"  # the shipped policy pins no queue
            assert task.trigger_rule == "all_success"
            rep = dag.get_task("replicate_" + _job_id(job)[len("backup_"):])
            assert rep.upstream_task_ids == {_job_id(job)}
            assert type(rep).__name__ == "MappedOperator" and rep.expand_input.value["store"] == list(cls.stores[1:])
            assert rep.map_index_template == "{{ task.store }}"  # labelled by store in the UI
            if not job.critical:
                assert set(critical) <= task.upstream_task_ids, f"{name}: {job.source} must wait for the critical job"
        prune = dag.get_task("prune")
        assert prune.upstream_task_ids == {t for t in expected if t.startswith("replicate_")}
        assert prune.trigger_rule == "all_success"


def test_dr_dags_run_the_scenario_steps_in_order(bag, pol):
    from airflow.providers.standard.operators.hitl import ApprovalOperator

    for name, sc in pol.scenarios.items():
        dag = bag.get_dag(f"dr_{name}")
        assert type(dag.timetable).__name__ == "NullTimetable"  # manual only
        assert dag.deadline[0].interval == sc.rto
        assert dag.params["dry_run"] is True and dag.params["target_conn_id"] == (sc.target_conn_id or "mongo_korea_public_data")
        order = [s.name for s in sc.steps] + ["summary"]
        for before, after in zip(order, order[1:]):
            assert dag.get_task(after).upstream_task_ids == {before}, (name, after)
        for step in sc.steps:
            task = dag.get_task(step.name)
            assert isinstance(task, ApprovalOperator) == (step.kind == "approval"), (name, step.name)
            if step.kind == "approval":
                assert step.instructions in task.body and task.retries == 0
        assert dag.get_task("summary").trigger_rule == "all_done"


def test_each_backup_task_is_its_engines_operator_and_airflow_backs_itself_up(bag, pol):
    from backup_dr.core.engines import engine_for

    for name, cls in pol.classes.items():
        dag = bag.get_dag(f"backup_{name}")
        for job in cls.jobs:
            expected = engine_for(pol.sources[job.source]).backup_operator.split(":")[1]
            assert type(dag.get_task(_job_id(job))).__name__ == expected, (name, job.source)
    # Airflow's own metadata DB, through the PostgreSQL engine, in the configuration class, and drilled
    assert pol.sources["airflow_db"].type == "postgresql" and pol.ops.scratch_postgresql_conn_id == "pg_scratch"
    task = bag.get_dag("backup_configuration").get_task("backup_airflow_db")
    assert type(task).__name__ == "SourceBackupOperator" and task.source == "airflow_db"
    assert "postgresql `airflow_db`" in bag.get_dag("backup_configuration").doc_md
    drill = bag.get_dag("ops_restore_drill").get_task("drill_configuration_airflow_db")
    assert (drill.backup_class, drill.source, drill.kind) == ("configuration", "airflow_db", "full")


def test_ops_and_pitr_dags(bag, pol):
    health, drill = bag.get_dag("ops_backup_health"), bag.get_dag("ops_restore_drill")
    assert health.timetable.expression == pol.ops.health_schedule
    assert drill.timetable.expression == pol.ops.drill_schedule
    drills = {(t.backup_class, t.source, t.kind) for t in drill.tasks}
    assert len(drills) == sum(len(c.jobs) for c in pol.classes.values())
    assert drill.deadline[0].interval == max(c.objective.rto for c in pol.classes.values())
    pitr = bag.get_dag("pitr_oplog_archive")
    assert pitr.deadline[0].interval == pol.pitr["mongodb"].interval
    assert {"archive_oplog_mongodb", "replicate_slice_mongodb", "alert_gap_mongodb", "trigger_full_backup_mongodb"} <= set(pitr.task_ids)
    assert pitr.get_task("replicate_slice_mongodb").map_index_template == "{{ task.store }}"
