"""Redis restores through the CLI, interrupted for real, and onto a replacement server.

The backup holds ~150,000 keys (a load takes seconds), the target other "production" data
in two databases. Each CLI run gets its own TMPDIR, so leftovers (download and scratch
server directories, scratch ``redis-server`` processes) are visible.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from backup_dr.core.connections import ConnInfo
from backup_dr.devstack import sample_data
from backup_dr.devstack.servers import RedisServer

from tests.integration.redis.redis_testdata import RestartableRedis, everything

PASSWORD = "interrupt-redis-secret"


@pytest.fixture(scope="module")
def redis_history(tmp_path_factory, policy, s3_server, gcs_server):
    from cli_support import History

    root = tmp_path_factory.mktemp("redis-interrupt")
    with RedisServer(root / "source", password=PASSWORD) as source:
        with source.client() as r:
            sample_data.seed_redis(r, 3000)
            r.execute_command("DEBUG", "POPULATE", 150_000, "key", 40)
        h = History.create(policy, root / "history", s3_server, gcs_server)
        h.redis(ConnInfo("redis_cache", "redis", "127.0.0.1", source.port, None, PASSWORD))
        yield h, source


@pytest.fixture
def prod(tmp_path):
    """The Redis to restore into, holding other data in db0 and db5."""
    with RedisServer(tmp_path / "prod", password=PASSWORD) as server:
        with server.client() as r:
            r.execute_command("DEBUG", "POPULATE", 20_000, "prod", 20)
            r.execute_command("SELECT", 5)
            r.set("session:only-in-db5", "x", px=9_000_000)
        yield server, everything(server)


def _conn_json(server) -> str:
    return json.dumps({"conn_type": "redis", "host": "127.0.0.1", "port": server.port, "password": PASSWORD})


def _journal(h) -> list[dict]:
    d = h.root / "backups" / "backup-dr-v1" / "_journal"
    return [json.loads(p.read_text()) for p in sorted(d.glob("*.json"))] if d.is_dir() else []


def _our_redis_servers(tmpdir: Path) -> list[int]:
    """PIDs of redis-server processes whose config lives under ``tmpdir`` (the CLI's scratch servers)."""
    pids = []
    for proc in Path("/proc").iterdir():
        if proc.name.isdigit():
            try:
                cmd = (proc / "cmdline").read_bytes().decode(errors="replace")
            except OSError:
                continue
            if "redis-server" in cmd and str(tmpdir) in cmd:
                pids.append(int(proc.name))
    return pids


def _load_then(cli, tmpdir, backup_id, server, signum):
    """``restore redis ID --to redis_target --replace``, sent ``signum`` once the target was flushed
    and the backup's keys are arriving."""
    tmpdir.mkdir(exist_ok=True)
    proc = subprocess.Popen([sys.executable, "-m", "backup_dr", "restore", "redis", backup_id, "--to", "redis_target", "--replace"],
                            env=cli.full_env({"TMPDIR": str(tmpdir)}), cwd=cli.tmp, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True)
    watch = server.client()
    deadline = time.monotonic() + 180
    while watch.exists("prod:1") or not watch.dbsize():
        assert proc.poll() is None and time.monotonic() < deadline, proc.communicate()
        time.sleep(0.005)
    os.kill(proc.pid, signum)
    out, err = proc.communicate(timeout=180)
    return proc.returncode, err


def test_sigterm_mid_load_rolls_the_whole_redis_target_back(redis_history, prod, tmp_path):
    h, source = redis_history
    server, before = prod
    cli, tmpdir = h.cli(redis_target=_conn_json(server)), tmp_path / "tmpdir"
    code, err = _load_then(cli, tmpdir, h.ids["redis"], server, signal.SIGTERM)

    assert code == 128 + signal.SIGTERM, err
    assert "was interrupted by SIGTERM; the target was rolled back to its data before the restore" in err
    assert everything(server) == before  # every key of both databases, values and expiry times
    assert _journal(h) == []
    assert _our_redis_servers(tmpdir) == [] and list(tmpdir.iterdir()) == []


def test_sigkill_mid_load_is_found_and_rolled_back(redis_history, prod, tmp_path):
    h, source = redis_history
    server, before = prod
    cli, tmpdir = h.cli(redis_target=_conn_json(server)), tmp_path / "tmpdir"
    code, err = _load_then(cli, tmpdir, h.ids["redis"], server, signal.SIGKILL)
    assert code == -signal.SIGKILL
    assert everything(server) != before
    time.sleep(0.5)
    assert _our_redis_servers(tmpdir) == []  # the scratch servers died with their parent
    assert list(tmpdir.iterdir())  # ...but its directories are still there
    [record] = _journal(h)
    assert record["engine"] == "redis_load" and record["phase"] == "writing"

    status = cli.json("restore", "status", expect=1, extra_env={"TMPDIR": str(tmpdir)})
    assert list(tmpdir.iterdir()) == []  # swept: their owner is dead
    [found] = status["restores"]
    assert found["state"] == "INTERRUPTED" and f"restore rollback {record['id']}" in found["commands"][0]
    command = found["commands"][0].split()[3:]  # after "python -m backup_dr"
    done = cli.json(*command)
    assert done["verified"]["equal"] and done["safety"].startswith("safety copy operational_data.redis_cache.safety.")
    assert everything(server) == before
    assert _journal(h) == []


def test_data_dir_restore_onto_a_replacement_server_keeps_two_safety_copies(redis_history, tmp_path):
    """The backup's policy source has no data_dir: the replacement server is named by flags alone."""
    h, source = redis_history
    replacement = RestartableRedis(tmp_path / "replacement", password=PASSWORD, appendonly=True).start()
    try:
        with replacement.client() as r:
            r.set("before", "the restore")
        cli = h.cli(redis_new=_conn_json(replacement))
        restart = " ".join(replacement.restart_command())
        for _ in range(3):
            done = cli.json("restore", "redis", h.ids["redis"], "--to", "redis_new", "--data-dir", str(replacement.data_dir),
                            "--restart-command", restart)
        assert done["target"] == {"conn_id": "redis_new", "data_dir": str(replacement.data_dir)}
        digest = [s.client().execute_command("DEBUG", "DIGEST") for s in (replacement, source)]
        assert digest[0] == digest[1] and replacement.client().dbsize() == source.client().dbsize()
        copies = sorted(p.name for p in replacement.data_dir.glob(".backup-dr-safety-*"))
        assert len(copies) == 2 and len(done["restore"]["safety_copies_removed"]) == 1
        assert Path(done["restore"]["safety_copy"]).name == copies[-1]
        assert _journal(h) == []
    finally:
        replacement.cleanup()
