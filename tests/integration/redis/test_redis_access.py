"""Who may take a snapshot, and what happens when the link breaks: ACLs, passwords, drops, old servers."""

from __future__ import annotations

import hashlib
import logging
import socket
import threading
import tracemalloc

import pytest

from backup_dr.core.errors import ConnectionConfigError, SourceError
from backup_dr.core.policy_model import RedisSource
from backup_dr.core.redis import RDB_FILE, backup_redis, verify_rdb_restore
from backup_dr.devstack.servers import RedisServer

from redis_testdata import BACKUP_PW, BACKUP_USER, NOREPL_PW, NOREPL_USER, PASSWORD, conn_for

SOURCE = RedisSource("redis_cache", "redis_cache")


def _dump_state(server) -> str | None:
    path = server.data_dir / "dump.rdb"
    return hashlib.sha256(path.read_bytes()).hexdigest() if path.exists() else None


def _nothing_written(store, writer) -> None:
    assert writer.existing() is None
    assert list(store.list(writer.bid.prefix)) == []
    assert not store.path(writer.bid.prefix).exists() or not any(store.path(writer.bid.prefix).iterdir())


def test_minimal_acl_user_takes_a_snapshot(seeded_redis, new_writer, store):
    with seeded_redis.client() as r:
        saves = r.info("persistence")["rdb_saves"]
    conn = conn_for(seeded_redis, BACKUP_USER, BACKUP_PW)
    manifest = backup_redis(conn, SOURCE, new_writer("rdb"))

    assert {f"db{db}": n for db, n in seeded_redis.fingerprint["dbsize"].items()} == manifest.counts
    assert manifest.details["server_info"] is None  # +info not granted: said so, not failed
    assert "grant +info" in manifest.details["server_info_note"]
    assert manifest.details["transfer"] == "diskless"
    with seeded_redis.client() as r:
        assert r.info("persistence")["rdb_saves"] == saves
    assert verify_rdb_restore(store, manifest)["ok"]


def test_user_without_replconf_is_refused_and_dump_rdb_untouched(seeded_redis, new_writer, store):
    with seeded_redis.client() as r:
        saves = r.info("persistence")["rdb_saves"]
    dump_before = _dump_state(seeded_redis)
    writer = new_writer("rdb")
    with pytest.raises(ConnectionConfigError) as e:
        backup_redis(conn_for(seeded_redis, NOREPL_USER, NOREPL_PW), SOURCE, writer)
    text = str(e.value)
    assert f"user {NOREPL_USER!r} may not run REPLCONF, so the snapshot was refused" in text
    assert "BGSAVEs over the server's own dump.rdb" in text
    assert f"ACL SETUSER {NOREPL_USER} +replconf" in text
    assert NOREPL_PW not in text and not e.value.retryable
    with seeded_redis.client() as r:
        assert r.info("persistence")["rdb_saves"] == saves  # no disk BGSAVE happened
        assert r.info("replication")["connected_slaves"] == 0
    assert _dump_state(seeded_redis) == dump_before
    _nothing_written(store, writer)


@pytest.mark.parametrize("user,password", [(None, "not-the-password"), (BACKUP_USER, "wrong-secret-value"), (None, None)])
def test_wrong_or_missing_password_is_a_clear_error_without_the_secret(seeded_redis, new_writer, store, user, password):
    writer = new_writer("rdb")
    conn = conn_for(seeded_redis, user, password, conn_id="redis_cache_ro")
    with pytest.raises(ConnectionConfigError) as e:
        backup_redis(conn, SOURCE, writer)
    text = str(e.value)
    assert f"redis connection 'redis_cache_ro' (127.0.0.1:{seeded_redis.port})" in text
    if password:
        assert f"authentication failed for user {user or 'default'!r}" in text
        assert password not in text and password not in repr(e.value.__dict__)
    else:
        assert "requires a password and the connection has none" in text
    assert PASSWORD not in text
    _nothing_written(store, writer)


def test_connection_drop_mid_transfer_leaves_nothing_then_retry_succeeds(tmp_path, new_writer, store):
    # rdbcompression off: a ~45 MB snapshot, far more than the socket buffers hold, so the
    # kill lands while most of it is still unsent
    with RedisServer(tmp_path / "big", password=PASSWORD, extra={"rdbcompression": "no"}) as server, server.client() as r:
        r.execute_command("DEBUG", "POPULATE", 400_000, "key", 100)
        killed = []

        def kill_replica_link(received: int) -> None:
            if not killed:
                killed.append(received)
                with server.client() as admin:
                    assert admin.client_kill_filter(_type="replica") == 1

        writer = new_writer("rdb")
        with pytest.raises(SourceError) as e:
            backup_redis(conn_for(server), SOURCE, writer, on_chunk=kill_replica_link)
        assert killed and "before its end; nothing was kept" in str(e.value) and e.value.retryable
        _nothing_written(store, writer)
        assert not list(store.root.rglob("*.rdb")) and not list(store.root.rglob(".tmp-*"))

        tracemalloc.start()  # numpy registers its buffers with tracemalloc too
        try:
            manifest = backup_redis(conn_for(server), SOURCE, writer)  # the task's retry: same backup id
            peak = tracemalloc.get_traced_memory()[1]
        finally:
            tracemalloc.stop()
        assert manifest.counts == {"db0": 400_000} and manifest.total_size > 40_000_000
        assert peak < 16 * 1024 * 1024, f"memory grew with the snapshot: peak {peak / 1e6:.1f} MB"
        assert store.stat(writer.bid.key(RDB_FILE)).size == manifest.file(RDB_FILE).size
        assert backup_redis(conn_for(server), SOURCE, writer) == manifest  # a retry after success: no-op


def test_server_killed_mid_transfer_leaves_nothing(tmp_path, new_writer, store):
    with RedisServer(tmp_path / "dies", password=PASSWORD, extra={"rdbcompression": "no"}) as server, server.client() as r:
        r.execute_command("DEBUG", "POPULATE", 400_000, "key", 100)
        writer = new_writer("rdb")
        with pytest.raises(SourceError):
            backup_redis(conn_for(server), SOURCE, writer, on_chunk=lambda received: server.kill())  # SIGKILL
        _nothing_written(store, writer)


def test_stalled_master_times_out_and_leaves_nothing(tmp_path, new_writer, store):
    with RedisServer(tmp_path / "stalls", password=PASSWORD, extra={"rdbcompression": "no"}) as server, server.client() as r:
        r.execute_command("DEBUG", "POPULATE", 400_000, "key", 100)
        sleepers = []

        def stall_the_master(received: int) -> None:  # its event loop stops relaying the snapshot
            if not sleepers:
                sleeper = threading.Thread(target=lambda: server.client().execute_command("DEBUG", "SLEEP", 3))
                sleeper.start()
                sleepers.append(sleeper)

        writer = new_writer("rdb")
        try:
            with pytest.raises(SourceError) as e:
                backup_redis(conn_for(server), SOURCE, writer, idle_timeout=1, on_chunk=stall_the_master)
        finally:
            for t in sleepers:
                t.join()
        assert "no data for 1s after" in str(e.value) and e.value.retryable
        _nothing_written(store, writer)


def test_aof_mode_on_a_server_without_aof_says_so(seeded_redis, new_writer, store):
    writer = new_writer("aof")
    source = RedisSource("redis_cache", "redis_cache", mode="aof", data_dir=str(seeded_redis.data_dir))
    with pytest.raises(ConnectionConfigError, match="AOF is off on this server"):
        backup_redis(conn_for(seeded_redis), source, writer)
    _nothing_written(store, writer)


def test_disk_sync_master_is_refused_unless_allowed(tmp_path, new_writer, store, caplog):
    with RedisServer(tmp_path / "disk", password=PASSWORD, extra={"repl-diskless-sync": "no"}) as server, server.client() as r:
        r.execute_command("DEBUG", "POPULATE", 1000)
        writer = new_writer("rdb")
        with pytest.raises(ConnectionConfigError) as e:
            backup_redis(conn_for(server), SOURCE, writer)
        assert "repl-diskless-sync no" in str(e.value) and "overwrite its own dump.rdb" in str(e.value)
        assert r.info("persistence")["rdb_saves"] == 0
        _nothing_written(store, writer)

        with caplog.at_level(logging.WARNING):
            manifest = backup_redis(conn_for(server), SOURCE, writer, allow_disk_sync=True)
        assert manifest.details["transfer"] == "disk" and manifest.counts == {"db0": 1000}
        assert "used a disk-based transfer" in caplog.text
        assert verify_rdb_restore(store, manifest)["ok"]


class OldServerProxy:
    """A TCP relay to a real redis-server that answers ``REPLCONF rdb-only`` the way Redis < 7.0
    does; every other byte passes through unchanged, both ways."""

    def __init__(self, port: int):
        self.target = port
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            upstream = socket.create_connection(("127.0.0.1", self.target))
            threading.Thread(target=self._pipe, args=(upstream, client), daemon=True).start()
            threading.Thread(target=self._pipe, args=(client, upstream, True), daemon=True).start()

    @staticmethod
    def _pipe(src, dst, from_client: bool = False) -> None:
        try:
            while data := src.recv(65536):
                if from_client and b"rdb-only" in data:
                    src.sendall(b"-ERR Unrecognized REPLCONF option: rdb-only\r\n")
                    continue
                dst.sendall(data)
        except OSError:
            pass
        finally:
            for s in (src, dst):
                try:
                    s.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass

    def close(self) -> None:
        self.listener.close()


def test_server_without_rdb_only_falls_back_to_sync(seeded_redis, new_writer, store, caplog):
    proxy = OldServerProxy(seeded_redis.port)
    try:
        conn = conn_for(seeded_redis)
        conn = type(conn)(conn.conn_id, "redis", "127.0.0.1", proxy.port, None, PASSWORD)
        with caplog.at_level(logging.WARNING):
            manifest = backup_redis(conn, SOURCE, new_writer("rdb"))
    finally:
        proxy.close()
    assert "does not support REPLCONF rdb-only (Redis < 7.0): falling back to SYNC" in caplog.text
    assert manifest.details["command"] == "SYNC" and manifest.details["transfer"] == "diskless"
    assert manifest.consistent_point["master_replid"] is None  # SYNC has no +FULLRESYNC line
    assert {f"db{db}": n for db, n in seeded_redis.fingerprint["dbsize"].items()} == manifest.counts
    assert verify_rdb_restore(store, manifest)["ok"]
