"""MongoRestoreOperator and RedisRestoreOperator, for users' own DAGs, on real backups."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest

from backup_dr.devstack.servers import MongoServer, RedisServer
from tests.conftest import set_connection
from tests.dags.conftest import run_dag


@pytest.fixture
def backups(stack):
    now = datetime.now(timezone.utc).replace(microsecond=0)
    for dag_id in ("backup_critical_data", "backup_operational_data"):
        dr, states = run_dag(dag_id, logical_date=now - timedelta(minutes=30))
        assert str(dr.state) == "success", states
    return stack


def test_mongo_restore_operator_restores_latest_safely(backups, tmp_path, mongo_client):
    from airflow.sdk.exceptions import AirflowFailException

    from backup_dr.operators.restore import MongoRestoreOperator

    with MongoServer(tmp_path / "target") as target:
        set_connection("mongo_restore_target", conn_type="mongo", host="127.0.0.1", port=target.port, extra={"directConnection": True})
        op = MongoRestoreOperator(task_id="restore", backup_id="latest", backup_class="critical_data",
                                  target_conn_id="mongo_restore_target")
        result = op.execute({})
        assert result["backup_id"].startswith("critical_data.mongodb.full.") and result["store"] == "local"
        src, dst = mongo_client["korea_public_data"], target.client()["korea_public_data"]
        for coll in ("announcements", "businesses", "contents"):
            assert dst[coll].count_documents({}) == src[coll].count_documents({})
            assert set(dst[coll].index_information()) == set(src[coll].index_information())
        # the target now has data: a second restore without drop is refused, target untouched
        with pytest.raises(AirflowFailException, match="drop"):
            op.execute({})
        assert dst.announcements.count_documents({}) == src.announcements.count_documents({})


def test_redis_restore_operator_scratch_and_load(backups, tmp_path):
    from backup_dr.operators.restore import RedisRestoreOperator

    expected = backups["redis"].client().dbsize()
    scratch = RedisRestoreOperator(task_id="verify_cache", backup_id="latest", backup_class="operational_data", mode="scratch")
    report = scratch.execute({})
    assert report["ok"] is True and sum(report["restored"].values()) == expected
    with RedisServer(tmp_path / "new", password="new-secret") as new:
        set_connection("redis_restore_target", conn_type="redis", host="127.0.0.1", port=new.port, password=new.password)
        load = RedisRestoreOperator(task_id="load_cache", backup_id="latest", backup_class="operational_data", mode="load",
                                    target_conn_id="redis_restore_target")
        result = load.execute({})
        assert new.client().dbsize() == expected and result["problems"] == []
