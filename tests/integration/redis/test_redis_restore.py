"""data_dir restores into a live server: the AOF trap, safety copy, restart, rollback."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from backup_dr.core.errors import RestoreError, RestoreRefused
from backup_dr.core.policy_model import RedisSource
from backup_dr.core.redis import backup_redis, restore_data_dir
from backup_dr.core.redis.scratch import ScratchRedis

from redis_testdata import PASSWORD, RestartableRedis, conn_for, fingerprint, seed


@pytest.fixture
def restartable(tmp_path):
    """``restartable(name, appendonly=...)``: a started server that restart_redis.py can restart."""
    servers = []

    def make(name: str, *, appendonly: bool) -> RestartableRedis:
        server = RestartableRedis(tmp_path / name, password=PASSWORD, appendonly=appendonly)
        servers.append(server)
        return server.start()

    yield make
    for server in servers:
        server.cleanup()


def _data_a(r) -> dict:
    seed(r, 0, 20_000)
    seed(r, 3, 2_000)
    return fingerprint(r)


def _data_b(r) -> dict:
    """What the server holds by the time it is restored (the reason to restore)."""
    r.flushall()
    seed(r, 0, 5_000, prefix="other")
    r.set("written-after-the-backup", "1")
    return fingerprint(r, prefix="other")


def _source(server, **kw) -> RedisSource:
    return RedisSource("redis_cache", "redis_cache", data_dir=str(server.data_dir), **kw)


def test_data_dir_restore_with_aof_enabled_comes_back_with_data(restartable, new_writer, store):
    server = restartable("prod", appendonly=True)
    aof_dir = server.data_dir / "appendonlydir"
    aof_dir.chmod(0o700)  # the restored directory must keep mode and owner of the one it replaces
    owner = (1, 1) if os.geteuid() == 0 else (os.getuid(), os.getgid())
    os.chown(aof_dir, *owner)
    with server.client() as r:
        fp_a = _data_a(r)
    manifest = backup_redis(conn_for(server), _source(server), new_writer("rdb"))
    with server.client() as r:
        fp_b = _data_b(r)
        run_id = r.info("server")["run_id"]

    report = restore_data_dir(conn_for(server), _source(server, restart_command=server.restart_command()), store, manifest)

    with server.client() as r:
        assert r.info("server")["run_id"] != run_id  # really restarted
        assert r.info("persistence")["aof_enabled"] == 1  # the config file's AOF setting is untouched
        assert fingerprint(r) == fp_a  # NOT empty: the AOF trap is handled
    assert report["restored"] == manifest.counts and report["aof"] is True
    assert stat.S_IMODE(aof_dir.stat().st_mode) == 0o700
    assert (aof_dir.stat().st_uid, aof_dir.stat().st_gid) == owner
    assert not list(server.data_dir.glob(".backup-dr-restore-*"))

    # the regression proper: with dump.rdb gone, another restart must load the data from the AOF
    (server.data_dir / "dump.rdb").unlink()
    server.restart_now()
    with server.client() as r:
        assert fingerprint(r) == fp_a

    # the safety copy holds what the server had before the restore
    safety = server.data_dir / report["safety_copy"].rsplit("/", 1)[1]
    assert (safety / "appendonlydir").is_dir()
    with ScratchRedis(rdb=safety / "dump.rdb") as scratch, scratch.client() as r:
        assert fingerprint(r, prefix="other") == fp_b


@pytest.mark.parametrize("fault", ["--fail-once", "--no-start-once", "--empty-once"])
def test_failing_restart_rolls_back_to_the_safety_copy(restartable, new_writer, store, tmp_path, fault):
    server = restartable("prod", appendonly=True)
    with server.client() as r:
        _data_a(r)
    manifest = backup_redis(conn_for(server), _source(server), new_writer("rdb"))
    with server.client() as r:
        fp_b = _data_b(r)
        save_before = r.config_get("save")["save"]
    marker = tmp_path / "fault-marker"
    marker.touch()
    source = _source(server, restart_command=server.restart_command(fault, str(marker)))

    with pytest.raises(RestoreError) as e:
        restore_data_dir(conn_for(server), source, store, manifest, load_timeout=5)

    assert "failed; rolled back: the server serves its previous data" in str(e.value)
    cause = {"--fail-once": "exited with code 3", "--no-start-once": "did not come back within 5s",
             "--empty-once": "came back with other key counts than the backup"}[fault]
    assert cause in str(e.value) and PASSWORD not in str(e.value)
    assert not marker.exists()  # the fault fired
    with server.client() as r:
        assert fingerprint(r, prefix="other") == fp_b
        assert r.info("persistence")["aof_enabled"] == 1 and r.config_get("save")["save"] == save_before
    assert not list(server.data_dir.glob(".backup-dr-*"))  # no staging or emptied safety dirs left


def test_aof_backup_restores_into_a_server_without_aof(restartable, new_writer, store, tmp_path):
    source_server = restartable("aof-source", appendonly=True)
    with source_server.client() as r:
        fp_a = _data_a(r)
    aof_source = RedisSource("redis_cache", "redis_cache", mode="aof", data_dir=str(source_server.data_dir))
    manifest = backup_redis(conn_for(source_server), aof_source, new_writer("aof"))

    target = restartable("rdb-target", appendonly=False)
    with target.client() as r:
        _data_b(r)
    restore_data_dir(conn_for(target), _source(target, restart_command=target.restart_command()), store, manifest)
    with target.client() as r:
        assert fingerprint(r) == fp_a and r.info("persistence")["aof_enabled"] == 0


def test_data_dir_restore_needs_a_restart_command(restartable, new_writer, store):
    server = restartable("prod", appendonly=False)
    with server.client() as r:
        r.set("a", 1)
    manifest = backup_redis(conn_for(server), _source(server), new_writer("rdb"))
    with pytest.raises(RestoreRefused) as e:
        restore_data_dir(conn_for(server), _source(server), store, manifest)
    assert "needs data_dir and restart_command" in str(e.value)


def test_restore_into_an_unreachable_server_touches_nothing(restartable, new_writer, store):
    from backup_dr.core.errors import SourceError

    server = restartable("prod", appendonly=False)
    with server.client() as r:
        r.set("a", 1)
        r.save()
    manifest = backup_redis(conn_for(server), _source(server), new_writer("rdb"))
    before = sorted(p.name for p in server.data_dir.iterdir())
    dump = (server.data_dir / "dump.rdb").read_bytes()
    server.stop()
    with pytest.raises(SourceError) as e:
        restore_data_dir(conn_for(server), _source(server, restart_command=server.restart_command()), store, manifest)
    assert "run CONFIG GET dir failed" in str(e.value) and "Connection refused" in str(e.value) and e.value.retryable
    assert sorted(p.name for p in server.data_dir.iterdir()) == before
    assert (server.data_dir / "dump.rdb").read_bytes() == dump


def test_sigterm_during_a_data_dir_restore_rolls_back(restartable, new_writer, store, tmp_path):
    """SIGTERM while the restart command runs (files already swapped, server stopped): rolled back."""
    import signal

    from backup_dr.core.errors import RestoreRolledBack
    from backup_dr.core.restores.journal import JournalDir
    from tests.faults.conftest import FaultThread

    server = restartable("prod", appendonly=True)
    with server.client() as r:
        _data_a(r)
    manifest = backup_redis(conn_for(server), _source(server), new_writer("rdb"))
    with server.client() as r:
        fp_b = _data_b(r)
    marker = tmp_path / "pause-marker"
    marker.touch()
    source = _source(server, restart_command=server.restart_command("--pause-once", str(marker)))
    journal = JournalDir(tmp_path / "local")
    swapped = lambda: not marker.exists()  # noqa: E731 - the restart command took the marker: files are in place
    with FaultThread(swapped, lambda: os.kill(os.getpid(), signal.SIGTERM)) as fault, pytest.raises(RestoreRolledBack) as e:
        restore_data_dir(conn_for(server), source, store, manifest, journal=journal)
    assert fault.fired == 1
    assert "redis restore of 'redis_cache' was interrupted by SIGTERM; rolled back: the server serves its previous data" in str(e.value)
    assert e.value.signum == signal.SIGTERM
    with server.client() as r:
        assert fingerprint(r, prefix="other") == fp_b and r.info("persistence")["aof_enabled"] == 1
    assert journal.entries() == [] and not list(server.data_dir.glob(".backup-dr-*"))


def test_sigkill_during_a_data_dir_restore_is_undone_from_the_journal(restartable, new_writer, store, tmp_path):
    """The restore's whole process group SIGKILLed mid-restart (server down, files swapped): the
    journal record alone puts the previous files back and the server on them."""
    import json
    import signal
    import subprocess
    import sys
    import time

    from backup_dr.core.restores.journal import JournalDir
    from backup_dr.core.restores.recover import roll_back

    server = restartable("prod", appendonly=True)
    with server.client() as r:
        _data_a(r)
    manifest = backup_redis(conn_for(server), _source(server), new_writer("rdb"))
    with server.client() as r:
        fp_b = _data_b(r)
    marker = tmp_path / "pause-marker"
    marker.touch()
    journal = JournalDir(tmp_path / "local")
    args = {"store": str(store.root), "backup_id": manifest.backup_id, "port": server.port, "data_dir": str(server.data_dir),
            "restart_command": list(server.restart_command("--pause-once", str(marker))), "journal": str(journal.root)}
    child = subprocess.Popen([sys.executable, str(Path(__file__).with_name("data_dir_restore_child.py")), json.dumps(args)],
                             env={**os.environ, "TEST_REDIS_PASSWORD": PASSWORD,
                                  "PYTHONPATH": str(Path(__file__).resolve().parents[3] / "plugins")}, start_new_session=True)
    deadline = time.monotonic() + 120
    while marker.exists():
        assert child.poll() is None and time.monotonic() < deadline
        time.sleep(0.01)
    os.killpg(child.pid, signal.SIGKILL)  # the restore and its restart command: a container killed outright
    child.wait(10)
    [entry] = journal.interrupted()
    assert entry.engine == "redis_data_dir" and entry.phase == "writing"
    assert Path(entry.safety["safety_dir"]).is_dir()

    report = roll_back(journal, entry, mongo_client=None, redis_conn=lambda conn_id: conn_for(server))
    assert sum(report["keys"].values()) == sum(fp_b["dbsize"].values())
    with server.client() as r:
        assert fingerprint(r, prefix="other") == fp_b and r.info("persistence")["aof_enabled"] == 1
    assert journal.entries() == [] and not list(server.data_dir.glob(".backup-dr-*"))
