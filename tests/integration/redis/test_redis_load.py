"""Loading a backup into a running server over the network (the DR path without host access).

"Replace" means the WHOLE target equals the backup afterwards, every database, and the load
proves it itself (``verified``): with ``DEBUG DIGEST`` + expiry times where the servers
allow debug commands, key by key where they do not. Each test checks the target again
independently (every key's type, DUMP payload and PEXPIRETIME, every database).
"""

from __future__ import annotations

from datetime import datetime, timezone

import pytest

from backup_dr.core.artifacts.layout import BackupId
from backup_dr.core.artifacts.writer import ArtifactWriter
from backup_dr.core.connections import ConnInfo
from backup_dr.core.errors import RestoreRefused, RestoreRolledBack
from backup_dr.core.policy_model import RedisSource
from backup_dr.core.redis.backup import backup_redis
from backup_dr.core.redis.load import load_into_server
from backup_dr.core.restores.journal import JournalDir
from backup_dr.core.stores.local import LocalStore
from backup_dr.devstack.servers import RedisServer

from tests.faults.conftest import FaultThread
from redis_testdata import everything


def _conn(server, conn_id):
    return ConnInfo(conn_id, "redis", "127.0.0.1", server.port, None, server.password)


def _fill(r, dbs=(0, 3), n=3000, prefix="k"):
    for db in dbs:
        r.execute_command("SELECT", db)
        pipe = r.pipeline(transaction=False)
        for i in range(n):
            pipe.set(f"{prefix}{db}:{i}", f"값{i}")
            if i % 10 == 0:
                pipe.pexpire(f"{prefix}{db}:{i}", 3_600_000)
        pipe.hset(f"h{db}", mapping={"a": 1, "b": "두"})
        pipe.zadd(f"z{db}", {"x": 1.5, "y": 2})
        pipe.xadd(f"s{db}", {"f": "v"})
        pipe.execute()
    r.execute_command("SELECT", 0)


@pytest.fixture
def backup(tmp_path):
    """(source server, store, manifest): dbs 0 and 3, every type, 10% with a TTL."""
    with RedisServer(tmp_path / "src", password="src-secret") as src:
        _fill(src.client())
        store = LocalStore(tmp_path / "store")
        bid = BackupId.new("operational_data", "redis_cache", "rdb", datetime(2026, 11, 26, 2, tzinfo=timezone.utc))
        manifest = backup_redis(_conn(src, "redis_cache"), RedisSource("redis_cache", "redis_cache"),
                                ArtifactWriter(store, bid, source_type="redis"))
        yield src, store, manifest


def _stale(dst):
    """What a replacement server may hold already: other values, other keys, other databases."""
    r = dst.client()
    r.set("k0:1", "stale value of a key the backup has")
    r.set("stale", "x")
    r.execute_command("SELECT", 7)
    r.set("only-in-db7", "stale")
    r.pexpire("only-in-db7", 9_000_000)
    r.execute_command("SELECT", 0)


def test_load_into_a_fresh_server_equals_the_source(backup, tmp_path):
    src, store, manifest = backup
    with RedisServer(tmp_path / "dst", password="dst-secret") as dst:
        result = load_into_server(_conn(dst, "redis_target"), store, manifest, safety_store=LocalStore(tmp_path / "safety"))
        assert result["copied"] == {"db0": 3003, "db3": 3003} and result["safety_backup"] is None  # it was empty
        assert result["verified"]["equal"] and result["verified"]["method"] == "debug-digest+ttl"
        assert everything(dst) == everything(src)
        assert src.client().execute_command("DEBUG", "DIGEST") == dst.client().execute_command("DEBUG", "DIGEST")
        # a non-empty target is refused unless replace=True, and the hint names a command that exists
        with pytest.raises(RestoreRefused, match="is not empty") as e:
            load_into_server(_conn(dst, "redis_target"), store, manifest, safety_store=LocalStore(tmp_path / "safety"))
        assert f"restore redis {manifest.backup_id} --to redis_target --replace" in e.value.hint


def test_replace_makes_the_whole_target_equal_the_backup(backup, tmp_path):
    src, store, manifest = backup
    safety = LocalStore(tmp_path / "safety")
    with RedisServer(tmp_path / "dst", password="dst-secret") as dst:
        _stale(dst)
        before = everything(dst)
        with pytest.raises(RestoreRefused, match="needs a safety store"):
            load_into_server(_conn(dst, "redis_target"), store, manifest, replace=True)

        result = load_into_server(_conn(dst, "redis_target"), store, manifest, replace=True, safety_store=safety)

        assert everything(dst) == everything(src)  # db7 and the stale keys are gone, values and TTLs exact
        assert result["verified"] == {"method": "debug-digest+ttl", "equal": True, "keys": 6006,
                                      "digest": src.client().execute_command("DEBUG", "DIGEST").decode(), "problems": []}
        assert result["keys_after"] == {"db0": 3003, "db3": 3003}
        # the replaced data is kept as a safety copy: a normal (safety) backup of the target
        sid = BackupId.parse(result["safety_backup"])
        assert sid.kind == "safety" and safety.stat(sid.manifest_key) is not None
        assert JournalDir(safety.root).entries() == []
        with RedisServer(tmp_path / "back", password="back-secret") as back:  # it restores like any backup
            from backup_dr.core.artifacts.reader import load_manifest

            load_into_server(_conn(back, "redis_back"), safety, load_manifest(safety, sid), safety_store=safety)
            assert everything(back) == before


def test_replace_without_debug_commands_is_compared_key_by_key(backup, tmp_path):
    src, store, manifest = backup
    with RedisServer(tmp_path / "dst", password="dst-secret", extra={"enable-debug-command": "no"}) as dst:
        _stale(dst)
        result = load_into_server(_conn(dst, "redis_target"), store, manifest, replace=True,
                                  safety_store=LocalStore(tmp_path / "safety"))
        assert result["verified"]["method"] == "full-compare" and result["verified"]["equal"]
        assert result["verified"]["keys"] == 6006
        assert everything(dst) == everything(src)


def test_a_write_during_the_load_fails_it_and_rolls_the_target_back(backup, tmp_path):
    src, store, manifest = backup
    safety = LocalStore(tmp_path / "safety")
    with RedisServer(tmp_path / "dst", password="dst-secret") as dst:
        _stale(dst)
        before = everything(dst)
        watcher = dst.client(db=3)
        intruder = dst.client(db=9)
        with FaultThread(lambda: watcher.exists("k3:5"), lambda: intruder.set("written-by-an-app", "1"), every=0.001) as fault:
            with pytest.raises(RestoreRolledBack) as e:
                load_into_server(_conn(dst, "redis_target"), store, manifest, replace=True, safety_store=safety)
        assert fault.fired == 1
        assert "failed; the target was rolled back to its data before the restore" in str(e.value)
        assert "is not equal to the backup" in str(e.value) and "db9" in str(e.value)
        assert everything(dst) == before
        assert JournalDir(safety.root).entries() == []
