"""Loading a backup into a running server over the network (the DR path without host access)."""

from __future__ import annotations

from datetime import datetime, timezone

import pytest

from backup_dr.core.artifacts.layout import BackupId
from backup_dr.core.artifacts.writer import ArtifactWriter
from backup_dr.core.connections import ConnInfo
from backup_dr.core.errors import RestoreRefused
from backup_dr.core.policy_model import RedisSource
from backup_dr.core.redis.backup import backup_redis
from backup_dr.core.redis.load import load_into_server
from backup_dr.core.stores.local import LocalStore
from backup_dr.devstack.servers import RedisServer


def _conn(server, conn_id):
    return ConnInfo(conn_id, "redis", "127.0.0.1", server.port, None, server.password)


def test_load_into_a_fresh_server_equals_the_source(tmp_path):
    with RedisServer(tmp_path / "src", password="src-secret") as src, RedisServer(tmp_path / "dst", password="dst-secret") as dst:
        r = src.client()
        for db in (0, 3):
            r.execute_command("SELECT", db)
            pipe = r.pipeline(transaction=False)
            for i in range(3000):
                pipe.set(f"k{db}:{i}", f"값{i}")
                if i % 10 == 0:
                    pipe.pexpire(f"k{db}:{i}", 3_600_000)
            pipe.hset(f"h{db}", mapping={"a": 1, "b": "두"})
            pipe.zadd(f"z{db}", {"x": 1.5, "y": 2})
            pipe.xadd(f"s{db}", {"f": "v"})
            pipe.execute()
        store = LocalStore(tmp_path / "store")
        bid = BackupId.new("operational_data", "redis_cache", "rdb", datetime(2026, 11, 26, 2, tzinfo=timezone.utc))
        manifest = backup_redis(_conn(src, "redis_cache"), RedisSource("redis_cache", "redis_cache"), ArtifactWriter(store, bid, source_type="redis"))
        result = load_into_server(_conn(dst, "redis_target"), store, manifest)
        assert result["problems"] == [] and result["copied"] == {"db0": 3003, "db3": 3003}
        for db in (0, 3):
            a, b = src.client(db=db), dst.client(db=db)
            assert a.execute_command("DEBUG", "DIGEST") == b.execute_command("DEBUG", "DIGEST")
            assert abs(a.execute_command("PEXPIRETIME", f"k{db}:0") - b.execute_command("PEXPIRETIME", f"k{db}:0")) == 0
        # a non-empty target is refused unless replace=True
        with pytest.raises(RestoreRefused, match="is not empty"):
            load_into_server(_conn(dst, "redis_target"), store, manifest)
        dst.client().set("stale", "x")
        load_into_server(_conn(dst, "redis_target"), store, manifest, replace=True)
        assert dst.client().get("stale") is None
