"""Fixtures for the Redis backup/restore tests: real ``redis-server`` instances, real data.

* ``seeded_redis`` (module scope): 115k keys of every type (strings raw and int-encoded,
  hashes, lists, sets as intset and hashtable, zsets, streams with consumer groups and
  pending entries) in db0/db1/db5, 10% with a TTL, a password, and two ACL users: the
  minimal backup user (``+sync +psync +replconf``) and one without ``+replconf``.
* ``store`` / ``new_writer``: a local store and writers with fresh backup ids.
* ``RestartableRedis``: a server that ``restart_redis.py`` (a data_dir restore's restart
  command) can stop and start again.

Seeding and comparing live in ``redis_testdata.py``.
"""

from __future__ import annotations

import itertools
import os
import signal
import sys
import time
from datetime import datetime, timedelta
from pathlib import Path

import pytest

from backup_dr.core.artifacts.layout import BackupId
from backup_dr.core.artifacts.writer import ArtifactWriter
from backup_dr.core.stores.local import LocalStore
from backup_dr.devstack.servers import RedisServer

from redis_testdata import ACL_USERS, PASSWORD, RESTART_SCRIPT, STAMP0, fingerprint, seed_all

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


class RestartableRedis(RedisServer):
    """A devstack RedisServer that the restart script can stop and start again daemonized.

    The config gets a ``pidfile``; the restart script (an argv list, no secrets: the password
    stays in the 0600 config file) SIGTERMs that PID and runs ``redis-server <config>
    --daemonize yes``. Cleanup stops whichever PID the pidfile names, and only that.
    """

    def __init__(self, workdir, **kw):
        super().__init__(workdir, **kw)
        self.pidfile = self.workdir / "redis.pid"
        self.extra = {**self.extra, "pidfile": str(self.pidfile)}

    def restart_command(self, *flags: str) -> tuple[str, ...]:
        return (sys.executable, str(RESTART_SCRIPT), "--config", str(self.config_path), "--pidfile", str(self.pidfile),
                "--port", str(self.port), *flags)

    def cleanup(self) -> None:
        super().stop()
        try:
            pid = int(self.pidfile.read_text().strip())
        except (OSError, ValueError):
            pid = None
        if pid and _is_redis_server(pid):
            try:
                os.kill(pid, signal.SIGTERM)
                deadline = time.monotonic() + 10
                while self.pidfile.exists() and time.monotonic() < deadline:
                    time.sleep(0.05)
            except ProcessLookupError:
                pass
        super().cleanup()


def _is_redis_server(pid: int) -> bool:
    """Guard against a stale pidfile naming a reused PID: only ever signal a redis-server."""
    try:
        return b"redis-server" in Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return False
