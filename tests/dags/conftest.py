"""Fixtures for DAG tests: the whole stack wired to the policy's connection ids, and a DagBag."""

from __future__ import annotations

from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def stack(airflow_db, seeded_mongo, mongo_scratch_server, s3_bucket, gcs_bucket, local_store_root, app_dir, redis_server, sinks,
          metadata_pg):
    """Every service the policy names, up and reachable through AIRFLOW_CONN_* variables."""
    from backup_dr.devstack import sample_data

    sample_data.seed_redis(redis_server.client(), 3000)
    return {"local": local_store_root, "s3": s3_bucket, "gcs": gcs_bucket, "app": app_dir, "redis": redis_server,
            "smtp": sinks[0], "slack": sinks[1]}


def load_dag(dag_id: str):
    """Parse the real DAG files (as the dag-processor does) and return one DAG."""
    from airflow.dag_processing.dagbag import DagBag

    bag = DagBag(dag_folder=str(ROOT / "dags"))
    assert not bag.import_errors, bag.import_errors
    dag = bag.get_dag(dag_id)
    assert dag is not None, f"{dag_id} not in {sorted(bag.dags)}"
    return dag


def run_dag(dag_id: str, **kwargs):
    """``dag.test()`` in-process; deadlines are dropped first (a known 3.3.2 dag.test() crash)."""
    dag = load_dag(dag_id)
    dag.deadline = None
    dr = dag.test(**kwargs)
    states = {ti.task_id + (f"[{ti.map_index}]" if ti.map_index >= 0 else ""): str(ti.state) for ti in dr.get_task_instances()}
    return dr, states


class Approver:
    """Answers Airflow human-in-the-loop requests of a dag.test() run, as a person would in the UI
    (the same code path as the REST API's PATCH .../hitlDetails: record the response, resume the task)."""

    def __init__(self, answers: dict[str, tuple[str, dict]]):
        self.answers = answers  # task_id -> (option, params_input)
        self.answered: list[str] = []
        self.errors: list[str] = []  # passes that failed (and were retried)
        self._stop = False

    def _loop(self):
        import time

        while not self._stop:
            time.sleep(0.3)
            try:
                self._answer_pending()
            except Exception as e:  # noqa: BLE001 - e.g. SQLite "database is locked" under load: the next pass retries
                self.errors.append(repr(e))

    def _answer_pending(self):
        from airflow.models.hitl import HITLDetail
        from airflow.models.taskinstance import TaskInstance as TI
        from airflow.models.trigger import handle_event_submit
        from airflow.triggers.base import TriggerEvent
        from airflow.utils import timezone
        from airflow.utils.session import create_session

        with create_session() as s:
            for d in s.query(HITLDetail).filter(HITLDetail.responded_at.is_(None)).all():
                ti = s.get(TI, d.ti_id)
                if ti is None or ti.task_id not in self.answers or str(ti.state) != "awaiting_input":
                    continue
                option, params = self.answers[ti.task_id]
                d.responded_by = {"id": "oncall", "name": "on-call DBA"}
                d.responded_at = timezone.utcnow()
                d.chosen_options = [option]
                d.params_input = params
                s.add(d)
                handle_event_submit(TriggerEvent(d.as_resume_event_payload()), task_instance=ti, session=s)
                self.answered.append(ti.task_id)

    def __enter__(self):
        import threading

        self._thread = threading.Thread(target=self._loop, daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop = True
        self._thread.join(5)
