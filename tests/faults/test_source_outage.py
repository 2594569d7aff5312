"""Rows 2 and 3: the protected system fails while it is being read.

* MongoDB stops mid-dump: a private SecantusDB is SIGKILLed while the archive is written.
* Redis drops the replication link mid-RDB transfer: the server itself kills our replica
  client (``CLIENT KILL TYPE replica``) while the snapshot streams, on every attempt;
  ``rdb-key-save-delay`` slows the stream so the kill lands in the middle of it.

Both run through the real class DAG with ``dag.test()``: the task retries (the source may
come back), then fails, the failure alert goes out by email and Slack, no store shows a
backup, and no temp file or manifest-less directory is left in the staging store.
"""

from __future__ import annotations

import re
import time
from datetime import datetime, timedelta, timezone

import pytest

from backup_dr.core.catalog import Catalog
from backup_dr.core.verify import verify_copy
from backup_dr.devstack import sample_data
from tests.dags.conftest import run_dag
from tests.faults.conftest import FaultThread, GrowingTmpFile, all_ids, backup_dirs, task_tries, tmp_leftovers


def _now() -> datetime:
    return datetime.now(timezone.utc).replace(microsecond=0)


def test_mongodb_killed_mid_dump_fails_cleanly_alerts_and_leaves_nothing(backup_stack, bulky_mongo, policy_stores, output):
    local, smtp, slack = backup_stack["local"], backup_stack["smtp"], backup_stack["slack"]
    when = _now() - timedelta(minutes=5)
    mid_write = GrowingTmpFile(local, 2_000_000)
    with FaultThread(mid_write, bulky_mongo.kill) as fault:
        dr, states = run_dag("backup_critical_data", logical_date=when, run_after=when)
    assert fault.fired == 1 and fault.error is None, "the server was not killed mid-dump"
    assert mid_write.seen >= 2_000_000  # the archive was being written when the server died

    # what happens: every try fails (the server stays down); nothing downstream runs
    assert str(dr.state) == "failed"
    assert states["backup_mongodb"] == "failed", states
    assert task_tries(dr, "backup_mongodb") == 3  # retries: 2, as in production
    assert states["replicate_mongodb[0]"] == states["replicate_mongodb[1]"] == states["prune"] == "upstream_failed"
    log = output.text()
    assert log.count("dumping MongoDB database 'korea_public_data': cannot reach the MongoDB server") >= 3, \
        "every try must fail with the translated error, not a raw driver exception"

    # what the user sees: email + Slack naming the class, the task and the cause
    mails = smtp.wait_for(lambda m: "backup_mongodb" in m["Subject"])
    assert mails, [m["Subject"] for m in smtp.messages]
    text = smtp.text(mails[0])
    assert "backup class critical_data" in text and "(try 3)" in text
    assert "cannot reach the MongoDB server" in text and "hint: check the server is up" in text
    posts = slack.wait_for(lambda r: "backup_mongodb" in str(r["body"]))
    assert posts and "cannot reach the MongoDB server" in posts[0]["body"]["text"]

    # what is left behind: no backup anywhere, no temp file, no manifest-less directory
    assert backup_dirs(local) == {}
    assert tmp_leftovers(local) == []
    for name, store in policy_stores.items():
        assert all_ids(store) == [], name


class ReplicaLinkCutter:
    """Once our replica link has streamed for ``after`` seconds, make Redis kill it (every attempt)."""

    def __init__(self, redis_server, after: float = 0.4):
        self.r = redis_server.client()
        self.after = after
        self._since: float | None = None

    def due(self) -> bool:
        if not self.r.client_list(_type="replica"):
            self._since = None
            return False
        self._since = self._since or time.monotonic()
        return time.monotonic() - self._since >= self.after

    def cut(self) -> None:
        assert self.r.client_kill_filter(_type="replica") >= 1
        self._since = None


@pytest.fixture
def slow_redis(redis_server):
    """The per-test Redis of the policy's ``redis_cache`` connection, with cache data, streaming
    its snapshot slowly (1 ms per key: ~3 s for the whole RDB)."""
    r = redis_server.client()
    sample_data.seed_redis(r, 3000)
    r.config_set("rdb-key-save-delay", 1000)
    yield redis_server
    r.close()


def test_redis_link_dropped_mid_rdb_fails_cleanly_alerts_and_a_rerun_makes_one_backup(
        backup_stack, seeded_mongo, app_dir, slow_redis, policy_stores, output):
    local, smtp, slack = backup_stack["local"], backup_stack["smtp"], backup_stack["slack"]
    r = slow_redis.client()
    keys, saves = r.dbsize(), r.info("persistence")["rdb_saves"]
    when = _now() - timedelta(minutes=4)
    cutter = ReplicaLinkCutter(slow_redis)
    with FaultThread(cutter.due, cutter.cut, repeat=True) as fault:
        dr, states = run_dag("backup_operational_data", logical_date=when, run_after=when)
    assert fault.fired == 3 and fault.error is None, (fault.fired, fault.error)

    # what happens: each of the 3 tries lost the link mid-stream; the other jobs are unaffected
    assert str(dr.state) == "failed"
    assert states["backup_redis_cache"] == "failed" and task_tries(dr, "backup_redis_cache") == 3, states
    assert states["replicate_redis_cache[0]"] == "upstream_failed" and states["prune"] == "upstream_failed"
    assert states["backup_mongodb"] == states["backup_app_logs"] == states["backup_app_uploads"] == "success", states
    cuts = [int(n) for n in re.findall(r"the server closed the connection after (\d+) bytes of the snapshot", output.text())]
    assert len(cuts) >= 3 and all(0 < n for n in cuts), cuts  # mid-stream, not before it began

    # what the user sees
    mails = smtp.wait_for(lambda m: "backup_redis_cache" in m["Subject"])
    assert mails, [m["Subject"] for m in smtp.messages]
    text = smtp.text(mails[0])
    assert "backup class operational_data" in text and "redis connection 'redis_cache'" in text
    assert "the server closed the connection after" in text and "nothing was kept" in text
    assert slack.wait_for(lambda p: "backup_redis_cache" in str(p["body"]) and "closed the connection" in p["body"]["text"])

    # what is left behind: no Redis backup in any store, no temp file; the others are complete
    assert tmp_leftovers(local) == []
    dirs = backup_dirs(local)
    assert not [d for d in dirs if ".redis_cache." in d], dirs
    assert all(dirs.values()), f"a directory without a manifest: {dirs}"
    for name in ("local", "s3"):
        ids = all_ids(policy_stores[name])
        assert not [i for i in ids if ".redis_cache." in i], (name, ids)
    # ... and Redis itself is unharmed: same data, no replica left attached, no disk sync (dump.rdb untouched)
    info = r.info()
    assert r.dbsize() == keys and info["connected_slaves"] == 0 and info["rdb_saves"] == saves
    assert not (slow_redis.data_dir / "dump.rdb").exists()

    # the network heals: the same run, cleared and re-run, makes exactly ONE clean backup
    r.config_set("rdb-key-save-delay", 0)
    dr, states = run_dag("backup_operational_data", logical_date=when, run_after=when)
    assert str(dr.state) == "success", states
    catalog = Catalog({n: policy_stores[n] for n in ("local", "s3")})
    redis_ids = [e for e in catalog.list("operational_data", "redis_cache")]
    assert len(redis_ids) == 1 and sorted(redis_ids[0].complete_in) == ["local", "s3"]
    for name in ("local", "s3"):
        assert verify_copy(policy_stores[name], redis_ids[0].manifest())["ok"], name
    assert tmp_leftovers(local) == [] and all(backup_dirs(local).values())
