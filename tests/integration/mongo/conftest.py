"""Fixtures for the MongoDB integration tests (helpers live in mongo_support.py)."""

from __future__ import annotations

import datetime as dt

import pytest

from backup_dr.core.artifacts.layout import BackupId
from backup_dr.core.artifacts.writer import ArtifactWriter
from backup_dr.core.stores.local import LocalStore




@pytest.fixture
def local_store(tmp_path):
    return LocalStore(tmp_path / "store")


@pytest.fixture
def make_writer(local_store):
    counter = iter(range(1000))

    def make(kind: str = "full", source: str = "mongodb", backup_class: str = "critical_data"):
        stamp = dt.datetime(2026, 11, 26, 8, 0, next(counter), tzinfo=dt.timezone.utc)
        return ArtifactWriter(local_store, BackupId.new(backup_class, source, kind, stamp), source_type="mongodb")

    return make


@pytest.fixture
def drop_after(mongo_client):
    names: list[str] = []
    yield names
    for n in names:
        mongo_client.drop_database(n)


class FaultInjectableMongoServer:
    """SecantusDB with mongod's test commands on (``configureFailPoint``), for fault injection."""

    @staticmethod
    def make(workdir):
        from backup_dr.devstack.servers import MongoServer

        class _Server(MongoServer):
            def command(self):
                return super().command() + ["--enable-test-commands"]

        return _Server(workdir)


@pytest.fixture(scope="module")
def faulty_mongo_server(tmp_path_factory):
    with FaultInjectableMongoServer.make(tmp_path_factory.mktemp("faulty-mongo")) as server:
        yield server
