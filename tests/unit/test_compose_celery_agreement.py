"""docker-compose.yaml and the Celery system test run the same deployment.

The system test (tests/system/test_celery_executor.py) builds its processes' environment from
the compose file through tests/system/compose_env.py and checks the running processes against
it; this fast test checks the mapping itself, so a variable added to the compose file without a
rule, a broker or executor switched on one side only, or a worker layout change is caught
without starting anything.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.system import compose_env

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def compose():
    return compose_env.load_compose()


def _local(tmp_path: Path, conn_ids) -> compose_env.Local:
    return compose_env.Local(
        home=tmp_path, api_port=18080, pg_database="db_x", amqp_vhost="vh_x", policy=tmp_path / "p.yaml",
        local_store=tmp_path / "backups", s3_bucket="b3", gcs_bucket="bg", gcs_endpoint="http://127.0.0.1:1",
        app_dir=tmp_path / "app", app_health_url="http://127.0.0.1:2/health",
        connections={c: {"conn_type": t} for c, t in conn_ids.items()})


def _conn_types(env):
    import json

    return {k[len("AIRFLOW_CONN_"):].lower(): json.loads(v)["conn_type"] for k, v in env.items() if k.startswith("AIRFLOW_CONN_")}


def test_every_compose_variable_is_mapped_and_agrees(compose, tmp_path):
    c_env = compose_env.compose_airflow_env(compose)
    ran = compose_env.local_env(c_env, _local(tmp_path, _conn_types(c_env)))
    assert set(ran) == set(c_env)
    assert compose_env.agreement(c_env, ran) == []
    assert ran["AIRFLOW__CORE__EXECUTOR"] == "CeleryExecutor"
    assert ran["AIRFLOW__CELERY__BROKER_URL"] == "amqp://guest:guest@127.0.0.1:5672/vh_x"
    assert ran["AIRFLOW__CELERY__RESULT_BACKEND"] == "db+postgresql://postgres@127.0.0.1:5432/db_x"
    assert ran["AIRFLOW__CORE__EXECUTION_API_SERVER_URL"] == "http://127.0.0.1:18080/execution/"
    assert ran["BACKUP_DR_LOCAL_PATH"] == str(tmp_path / "backups")


def test_a_compose_variable_without_a_rule_is_refused(compose, tmp_path):
    c_env = {**compose_env.compose_airflow_env(compose), "AIRFLOW__CELERY__WORKER_CONCURRENCY": "8"}
    with pytest.raises(KeyError, match="AIRFLOW__CELERY__WORKER_CONCURRENCY"):
        compose_env.local_env(c_env, _local(tmp_path, _conn_types(c_env)))


def test_agreement_catches_a_different_broker_executor_or_stray_setting(compose, tmp_path):
    c_env = compose_env.compose_airflow_env(compose)
    ran = compose_env.local_env(c_env, _local(tmp_path, _conn_types(c_env)))
    for key, value, words in (
        ("AIRFLOW__CELERY__BROKER_URL", "redis://127.0.0.1:6390/0", "compose uses amqp://"),
        ("AIRFLOW__CORE__EXECUTOR", "LocalExecutor", "CeleryExecutor"),
        ("AIRFLOW__CELERY__WORKER_PREFETCH_MULTIPLIER", "4", "neither in docker-compose.yaml nor in TEST_ONLY"),
        ("AIRFLOW_CONN_BACKUP_S3", '{"conn_type": "http"}', "conn_type 'aws'"),
    ):
        problems = compose_env.agreement(c_env, {**ran, key: value})
        assert any(words in p for p in problems), (key, problems)


def test_workers_and_shared_store_volume(compose):
    assert compose_env.compose_workers(compose) == {"airflow-worker": ["default"], "airflow-worker-near-db": ["default", "near_db"]}
    local_path = compose_env.compose_airflow_env(compose)["BACKUP_DR_LOCAL_PATH"]
    for name in ("airflow-worker", "airflow-worker-near-db", "airflow-scheduler", "airflow-triggerer"):
        mounts = dict(v.split(":")[:2] for v in compose["services"][name]["volumes"])
        assert mounts.get("backups") == local_path, name  # every worker sees the same local store
