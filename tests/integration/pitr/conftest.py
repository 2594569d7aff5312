"""Fixtures for the PITR tests: own SecantusDB instances (big oplog for chains, tiny for rollover)."""

from __future__ import annotations

import uuid

import pytest

from backup_dr.devstack.servers import MongoServer


class _TestCommandsServer(MongoServer):
    """With mongod's test commands on (``configureFailPoint``), to make a replay fail on purpose."""

    def command(self):
        return super().command() + ["--enable-test-commands"]


@pytest.fixture(scope="module")
def pitr_server(tmp_path_factory):
    """A SecantusDB whose oplog never rolls over during these tests."""
    with _TestCommandsServer(tmp_path_factory.mktemp("pitr-mongo"), oplog_max_entries=500_000) as server:
        yield server


@pytest.fixture(scope="module")
def pitr_client(pitr_server):
    client = pitr_server.client()
    yield client
    client.close()


@pytest.fixture
def tiny_oplog_server(tmp_path):
    """SecantusDB keeping only 300 oplog entries (it trims every 1000 writes)."""
    with MongoServer(tmp_path / "tiny-oplog-mongo", oplog_max_entries=300) as server:
        yield server


@pytest.fixture
def dbname():
    return f"pitr_{uuid.uuid4().hex[:8]}"
