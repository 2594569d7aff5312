"""Interrupting ``restore mongo --drop`` for real: signals roll back, a SIGKILL is found and undone.

The backup holds the sample database plus ~40 MB of incompressible blobs (the restore
takes seconds), the target a DIFFERENT production database marked document by document.
The signal is sent once a marked collection is gone from the target: the restore is
really half-way (the SIGKILL tests assert the target is half-written). Each CLI run gets its
own TMPDIR, so what a killed process leaves in the temp dir is visible.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from bson import Binary

from backup_dr.devstack import sample_data
from backup_dr.devstack.servers import MongoServer

from cli_support import mongo_conn_json, snapshot_db

MARK = "edited_in_production"
CRITICAL = ["announcements", "businesses", "contents"]  # the collections of a critical_data backup


@pytest.fixture(scope="module")
def bulky(tmp_path_factory, policy, s3_server, gcs_server):
    """(History with one bulky full backup, the source client, a target server) for the module."""
    from cli_support import History

    root = tmp_path_factory.mktemp("interrupt")
    with MongoServer(root / "source") as source, MongoServer(root / "target") as target:
        client = source.client()
        sample_data.seed_mongo(client)
        for batch in range(8):
            client[sample_data.DATABASE].contents.insert_many(
                [{"slug": f"blob-{batch}-{i}", "blob": Binary(os.urandom(100_000))} for i in range(50)])
        h = History.create(policy, root / "history", s3_server, gcs_server)
        h.mongo(client)
        yield h, client, target
        client.close()


@pytest.fixture
def prod(bulky, fresh_db_name):
    """A production database on the target (other data than the backup, every document marked)."""
    h, source, target = bulky
    client = target.client()
    sample_data.seed_mongo(client, {"announcements": 900, "businesses": 500, "contents": 80, "statistics": 70},
                           database=fresh_db_name, seed=99)
    for name in sample_data.COLLECTIONS:
        client[fresh_db_name][name].update_many({}, {"$set": {MARK: True}})
    client[fresh_db_name].create_collection("audit", capped=True, size=1 << 20)
    client[fresh_db_name].audit.insert_many([{"_id": i, "event": f"login {i}"} for i in range(40)])
    yield fresh_db_name, client, snapshot_db(client, fresh_db_name)
    client.close()


def _cli(bulky, tmp_path):
    h, _, target = bulky
    return h.cli(mongo_target=mongo_conn_json(target)), tmp_path / "tmpdir"


def _journal(h) -> list[dict]:
    d = h.root / "backups" / "backup-dr-v1" / "_journal"
    return [json.loads(p.read_text()) for p in sorted(d.glob("*.json"))] if d.is_dir() else []


def _start_restore(cli, tmpdir: Path, backup_id: str, db: str) -> subprocess.Popen:
    tmpdir.mkdir(exist_ok=True)
    return subprocess.Popen([sys.executable, "-m", "backup_dr", "restore", "mongo", backup_id, "--to", "mongo_target",
                             "--db", db, "--drop"], env=cli.full_env({"TMPDIR": str(tmpdir)}), cwd=cli.tmp,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _kill_mid_restore(proc: subprocess.Popen, client, db: str, signum: int, timeout: float = 120) -> None:
    """Send ``signum`` once the restore has dropped a marked collection: it is writing the target."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert proc.poll() is None, f"the restore ended before it could be interrupted:\n{proc.communicate()}"
        if client[db].announcements.count_documents({MARK: True}) < 900:
            os.kill(proc.pid, signum)
            return
        time.sleep(0.01)
    proc.kill()
    raise AssertionError(f"the restore never reached its writing phase:\n{proc.communicate()}")


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT, signal.SIGHUP], ids=["SIGTERM", "SIGINT", "SIGHUP"])
def test_a_signal_mid_restore_rolls_the_target_back_before_exiting(bulky, prod, tmp_path, signum):
    h, _, _ = bulky
    db, client, before = prod
    cli, tmpdir = _cli(bulky, tmp_path)
    proc = _start_restore(cli, tmpdir, h.ids["mongo"], db)
    _kill_mid_restore(proc, client, db, signum)
    out, err = proc.communicate(timeout=180)

    name = signal.Signals(signum).name
    assert proc.returncode == 128 + signum, err
    assert f"restore into {db!r} was interrupted by {name}; the target was rolled back to its state before the restore" in err
    assert re.search(r"rolled back: \w+", err), err  # it was mid-way: collections were put back
    assert f"{name} received: stopping" in err
    assert snapshot_db(client, db) == before  # every document, index, the capped collection untouched
    assert _journal(h) == []  # rolled back: no interrupted restore left to report
    assert list(tmpdir.iterdir()) == []  # the download directory went with the exception


def test_sigkill_mid_restore_is_found_reported_and_rolled_back_with_the_printed_command(bulky, prod, tmp_path):
    h, _, _ = bulky
    db, client, before = prod
    cli, tmpdir = _cli(bulky, tmp_path)
    proc = _start_restore(cli, tmpdir, h.ids["mongo"], db)
    _kill_mid_restore(proc, client, db, signal.SIGKILL)
    proc.communicate(timeout=60)
    assert proc.returncode == -signal.SIGKILL
    assert snapshot_db(client, db) != before  # really half-written
    [record] = _journal(h)
    assert record["phase"] == "writing" and record["target"]["database"] == db
    assert [p.name.split("-")[2] for p in tmpdir.iterdir()] == ["restore"]  # the killed process's download dir

    # restore status: exit 1, names it
    status = cli.run("restore", "status", "--json")
    assert status.returncode == 1, status.stderr
    [found] = json.loads(status.stdout)["restores"]
    assert found["state"] == "INTERRUPTED" and found["target_may_be_half_written"] and found["id"] == record["id"]

    # health: CRITICAL with the target, the time and the safety backup
    health = cli.run("health", "--json")
    assert health.returncode == 1
    reasons = [r for r in json.loads(health.stdout)["reasons"] if "INTERRUPTED RESTORE" in r]
    assert len(reasons) == 1 and reasons[0].startswith("critical: ")
    safety_id = record["safety"]["backup_id"]
    for part in (f"database {db!r}", record["started_at"], safety_id, f"restore rollback {record['id']}"):
        assert part in reasons[0], reasons[0]

    # the next restore refuses, and its hint names the commands; the temp dir of the dead one is swept
    again = cli.run("restore", "mongo", h.ids["mongo"], "--to", "mongo_target", "--db", db, "--drop",
                    extra_env={"TMPDIR": str(tmpdir)})
    assert again.returncode == 1
    assert "an interrupted restore into MongoDB" in again.stderr and "the target may be half-written" in again.stderr
    assert list(tmpdir.iterdir()) == []
    command = re.search(r"python -m backup_dr (restore rollback \S+)", again.stderr).group(1).split()

    # the printed command works
    done = cli.run(*command)
    assert done.returncode == 0, done.stderr
    assert "the target is as it was before it" in done.stdout
    assert snapshot_db(client, db) == before
    assert _journal(h) == [] and cli.run("restore", "status").returncode == 0


def test_sigkill_then_resume_finishes_with_the_original_safety_backup(bulky, prod, tmp_path):
    h, source, _ = bulky
    db, client, before = prod
    cli, tmpdir = _cli(bulky, tmp_path)
    proc = _start_restore(cli, tmpdir, h.ids["mongo"], db)
    _kill_mid_restore(proc, client, db, signal.SIGKILL)
    proc.communicate(timeout=60)
    [record] = _journal(h)
    safeties = sorted(p.name for p in (h.root / "backups").rglob("*.safety.*"))

    [found] = cli.json("restore", "status", expect=1)["restores"]
    command = found["commands"][1].split()[3:]  # "python -m backup_dr restore resume <id>", as printed
    assert command == ["restore", "resume", record["id"]]
    done = cli.json(*command)
    assert done["journal"] == record["id"] and record["safety"]["backup_id"] in done["summary"]
    assert snapshot_db(client, db, CRITICAL) == snapshot_db(source, sample_data.DATABASE, CRITICAL)
    assert snapshot_db(client, db)["statistics"] == before["statistics"]  # not in the backup: untouched
    assert sorted(p.name for p in (h.root / "backups").rglob("*.safety.*")) == safeties  # no new safety of the half-written db
    assert _journal(h) == []
