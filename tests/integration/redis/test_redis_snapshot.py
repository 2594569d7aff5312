"""Redis snapshots through every mode, restored to scratch servers and compared with the source.

"Equal" means: DEBUG DIGEST (all dbs, every value), per-db DBSIZE, PEXPIRETIME of a sample
of keys with a TTL (the digest ignores TTLs) and the stream consumer groups and pending
entries.
"""

from __future__ import annotations

import hashlib
import os
import threading
import time

import pytest

from backup_dr.core.errors import ConnectionConfigError
from backup_dr.core.policy_model import RedisSource
from backup_dr.core.redis import RDB_FILE, AOF_FILE, backup_redis, restore_to_scratch, verify_rdb_restore
from backup_dr.devstack.servers import RedisServer

from redis_testdata import DBS, PASSWORD, conn_for, fingerprint, seed

EXPECTED_COUNTS = {f"db{db}": n + 6 for db, n in DBS.items()}  # + 4 big collections + 2 streams


def _sha256(path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _round_trip(store, manifest, source_fingerprint) -> dict:
    report = verify_rdb_restore(store, manifest)
    assert report["ok"], report
    assert report["restored"] == manifest.counts
    with restore_to_scratch(store, manifest) as scratch, scratch.client() as r:
        assert fingerprint(r) == source_fingerprint
    return report


def test_replication_snapshot_round_trip(seeded_redis, new_writer, store):
    with seeded_redis.client() as r:
        saves_before = r.info("persistence")["rdb_saves"]
    source = RedisSource("redis_cache", "redis_cache")  # mode replication
    manifest = backup_redis(conn_for(seeded_redis), source, new_writer("rdb"))

    assert manifest.counts == EXPECTED_COUNTS
    assert manifest.details["counts_source"] == "rdb"
    assert manifest.details["expires"]["db0"] == DBS[0] // 10 + 1  # 10% of the keys + the big list
    assert manifest.details["transfer"] == "diskless" and manifest.details["command"] == "PSYNC"
    with seeded_redis.client() as r:  # (the first replica makes the master pick a new replication id)
        repl = r.info("replication")
    assert manifest.consistent_point["master_replid"] == repl["master_replid"]
    assert manifest.consistent_point["master_repl_offset"] <= repl["master_repl_offset"]
    assert manifest.details["server_info"]["keyspace"]["db0"]["keys"] == EXPECTED_COUNTS["db0"]
    assert PASSWORD not in manifest.to_json().decode()
    entry = manifest.file(RDB_FILE)
    assert entry.format == "rdb" and entry.sha256 == _sha256(store.path(manifest.id.key(RDB_FILE)))
    with seeded_redis.client() as r:  # diskless: the server wrote nothing to its own disk
        assert r.info("persistence")["rdb_saves"] == saves_before
    _round_trip(store, manifest, seeded_redis.fingerprint)


def test_bgsave_snapshot_round_trip(seeded_redis, new_writer, store):
    with seeded_redis.client() as r:
        saves_before = r.info("persistence")["rdb_saves"]
    source = RedisSource("redis_cache", "redis_cache", mode="bgsave", data_dir=str(seeded_redis.data_dir))
    manifest = backup_redis(conn_for(seeded_redis), source, new_writer("rdb"))

    with seeded_redis.client() as r:
        assert r.info("persistence")["rdb_saves"] == saves_before + 1
    assert manifest.counts == EXPECTED_COUNTS and manifest.details["mode"] == "bgsave"
    # the artifact is the very file the BGSAVE wrote
    assert manifest.file(RDB_FILE).sha256 == _sha256(seeded_redis.data_dir / "dump.rdb")
    _round_trip(store, manifest, seeded_redis.fingerprint)


def test_bgsave_with_wrong_data_dir_refuses_stale_file(seeded_redis, new_writer, store, tmp_path):
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (elsewhere / "dump.rdb").write_bytes(b"REDIS0010\xff" + bytes(8))  # an old, unrelated dump
    os.utime(elsewhere / "dump.rdb", (1_000_000_000, 1_000_000_000))
    source = RedisSource("redis_cache", "redis_cache", mode="bgsave", data_dir=str(elsewhere))
    writer = new_writer("rdb")
    with pytest.raises(ConnectionConfigError) as e:
        backup_redis(conn_for(seeded_redis), source, writer)
    assert "before the BGSAVE that just finished" in str(e.value)
    assert "data_dir is not the directory this server saves into" in str(e.value)
    assert list(store.list(writer.bid.prefix)) == [] and writer.existing() is None


def test_aof_directory_round_trip_while_writes_continue(tmp_path, new_writer, store):
    with RedisServer(tmp_path / "aof-src", password=PASSWORD, appendonly=True) as server, server.client() as r:
        seed(r, 0, DBS[0])
        r.bgrewriteaof()  # db0 goes into the base file, the rest into the incr file
        while r.info("persistence")["aof_rewrite_in_progress"] or r.info("persistence")["aof_rewrite_scheduled"]:
            time.sleep(0.05)
        seed(r, 1, DBS[1])
        seed(r, 5, DBS[5])
        frozen = fingerprint(r)

        # a client keeps writing to another db during the backup: the copy must still be one
        # consistent point whose key counts the manifest records exactly
        stop = threading.Event()

        def churn():
            with server.client(db=9) as w:
                i = 0
                while not stop.is_set():
                    w.set(f"churn:{i}", i)
                    i += 1

        t = threading.Thread(target=churn)
        t.start()
        try:
            source = RedisSource("redis_cache", "redis_cache", mode="aof", data_dir=str(server.data_dir))
            manifest = backup_redis(conn_for(server), source, new_writer("aof"))
        finally:
            stop.set()
            t.join()
        assert manifest.kind == "aof" and manifest.file(AOF_FILE).format == "aof-dir-tar"
        assert manifest.details["paused_writes"] is True and manifest.details["counts_source"] == "info-paused"
        assert len(manifest.details["files"]) == 2  # one base, one incr
        assert manifest.counts["db0"] == EXPECTED_COUNTS["db0"] and manifest.counts["db9"] > 0

        report = verify_rdb_restore(store, manifest)  # exact per-db counts, db9 included
        assert report["ok"] and report["restored"] == manifest.counts
        with restore_to_scratch(store, manifest) as scratch, scratch.client(db=9) as rr:
            n = rr.dbsize()
            assert n == manifest.counts["db9"]
            assert rr.get(f"churn:{n - 1}") == str(n - 1).encode()  # a prefix of the churn, no gaps
            assert rr.get(f"churn:{n}") is None
            rr.flushdb()  # the churn is not part of the frozen fingerprint; everything else must match
            assert fingerprint(rr) == frozen


def test_verification_fails_when_counts_do_not_match(seeded_redis, new_writer, store):
    from dataclasses import replace

    from backup_dr.core.errors import VerificationError

    manifest = backup_redis(conn_for(seeded_redis), RedisSource("redis_cache", "redis_cache"), new_writer("rdb"))
    wrong = replace(manifest, counts={**manifest.counts, "db1": manifest.counts["db1"] + 5})
    with pytest.raises(VerificationError) as e:
        verify_rdb_restore(store, wrong)
    assert f"db1: {EXPECTED_COUNTS['db1']} keys restored, the manifest recorded {EXPECTED_COUNTS['db1'] + 5}" in str(e.value)
