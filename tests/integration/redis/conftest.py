"""Fixtures for the Redis backup/restore tests: real ``redis-server`` instances, real data.

* ``seeded_redis`` (module scope): 115k keys of every type (strings raw and int-encoded,
  hashes, lists, sets as intset and hashtable, zsets, streams with consumer groups and
  pending entries) in db0/db1/db5, 10% with a TTL, a password, and two ACL users: the
  minimal backup user (``+sync +psync +replconf``) and one without ``+replconf``.
* ``store`` / ``new_writer``: a local store and writers with fresh backup ids.

Seeding, comparing and the restartable server live in ``redis_testdata.py``.
"""

from __future__ import annotations

import itertools
from datetime import datetime, timedelta

import pytest

from backup_dr.core.artifacts.layout import BackupId
from backup_dr.core.artifacts.writer import ArtifactWriter
from backup_dr.core.stores.local import LocalStore
from backup_dr.devstack.servers import RedisServer

from redis_testdata import ACL_USERS, PASSWORD, STAMP0, fingerprint, seed_all


@pytest.fixture(scope="module")
def seeded_redis(tmp_path_factory):
    """A password-protected server with the ACL users and the seeded data (read-only for tests)."""
    with RedisServer(tmp_path_factory.mktemp("redis-src"), password=PASSWORD, acl_users=ACL_USERS) as server:
        with server.client() as r:
            seed_all(r)
            server.fingerprint = fingerprint(r)
        yield server


@pytest.fixture
def store(tmp_path) -> LocalStore:
    return LocalStore(tmp_path / "backups")


@pytest.fixture
def new_writer(store):
    """``new_writer(kind="rdb")``: a writer for a fresh backup id of source ``redis_cache``."""
    counter = itertools.count()

    def make(kind: str = "rdb", stamp: datetime | None = None) -> ArtifactWriter:
        when = stamp or STAMP0 + timedelta(minutes=next(counter))
        return ArtifactWriter(store, BackupId.new("critical_data", "redis_cache", kind, when), source_type="redis")

    return make
