"""Fixtures for the break-glass CLI tests.

* ``history`` (session): one set of stores (local dir + S3 bucket + GCS bucket) holding a
  MongoDB full backup (critical_data), a Redis RDB (operational_data), a files backup
  (configuration/app_config) and a git bundle (application_code), each made by the core job
  function and replicated with ``replicate_all``, as the DAGs do. Read-only for tests.
* ``fresh_history``: a factory for a test's OWN stores (for tests that corrupt or delete).
* ``cli``: ``python -m backup_dr`` against ``history`` with a minimal environment.
"""

from __future__ import annotations

from datetime import timedelta

import pytest

from backup_dr.core.connections import ConnInfo
from backup_dr.devstack import sample_data
from backup_dr.devstack.app_files import make_app_dir
from backup_dr.devstack.servers import RedisServer

from cli_support import History, mongo_conn_json

REDIS_PASSWORD = "cli-redis-secret"


@pytest.fixture(scope="session")
def cli_redis(tmp_path_factory):
    """A password-protected Redis with cache-like data (read-only for tests)."""
    with RedisServer(tmp_path_factory.mktemp("cli-redis"), password=REDIS_PASSWORD) as server:
        with server.client() as r:
            sample_data.seed_redis(r, 2000)
        yield server


@pytest.fixture(scope="session")
def cli_app(tmp_path_factory):
    return make_app_dir(tmp_path_factory.mktemp("cli-app") / "app")


@pytest.fixture(scope="session")
def history(tmp_path_factory, policy, s3_server, gcs_server, mongo_client, seeded_mongo, cli_redis, cli_app):
    h = History.create(policy, tmp_path_factory.mktemp("cli-history"), s3_server, gcs_server)
    h.mongo(mongo_client)
    h.redis(ConnInfo("redis_cache", "redis", "127.0.0.1", cli_redis.port, None, REDIS_PASSWORD))
    h.files(cli_app)
    h.git(cli_app)
    return h


@pytest.fixture
def fresh_history(tmp_path, policy, s3_server, gcs_server):
    """``fresh_history()`` -> an empty History of this test's own (fill it with .mongo(), .files(), ...)."""
    made = []

    def make() -> History:
        h = History.create(policy, tmp_path / f"h{len(made)}", s3_server, gcs_server)
        made.append(h)
        return h

    yield make
    for h in made:  # no CLI run of this test tried to import Airflow
        assert not (h.root / "airflow-imports.txt").exists(), (h.root / "airflow-imports.txt").read_text()


@pytest.fixture
def cli(history, mongo_scratch_server):
    """The CLI against ``history``, with the policy's scratch MongoDB connection defined."""
    cli = history.cli(mongo_scratch=mongo_conn_json(mongo_scratch_server))
    yield cli
    assert not cli.airflow_mark.exists(), f"a CLI run imported airflow: {cli.airflow_mark.read_text()}"


DAY = timedelta(days=1)
