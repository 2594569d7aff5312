"""Fault rows "signals" and "journal recovery", through the DR DAG (Airflow is part of both).

* The DR ``restore`` task hits its ``execution_timeout`` half-way (Airflow raises
  AirflowTaskTimeout from SIGALRM in the task): rolled back, the task fails saying so.
* SIGTERM reaches the task's process half-way (what Airflow's supervisor sends on "mark
  failed", and what ``docker stop`` sends a worker): rolled back, the task fails saying so.
* A restore into the target was SIGKILLed half-way (a CLI restore here, as a killed worker
  would be): the next DR run stops at ``safety_backup`` with a CRITICAL error naming it —
  before a safety backup of the half-written data could be taken — and, triggered again with
  ``interrupted_restore=rollback`` or ``resume``, recovers.

The target is the faults conftest's production-like database (other data than the backup).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from datetime import timedelta

import pytest

from backup_dr.devstack import sample_data
from tests.dags.conftest import Approver, load_dag
from tests.faults.conftest import APP, ROOT, FaultThread, raw_snapshot, xcom

CRITICAL = ["announcements", "businesses", "contents"]
APPROVE = {"provision_mongodb": ("Approve", {})}


def _journal(local) -> list[dict]:
    d = local / "backup-dr-v1" / "_journal"
    return [json.loads(p.read_text()) for p in sorted(d.glob("*.json"))] if d.is_dir() else []


def _run_dr(conf: dict, *, restore_timeout: timedelta | None = None):
    dag = load_dag("dr_database_server_failure")
    dag.deadline = None  # a known 3.3.2 dag.test() crash
    if restore_timeout is not None:
        dag.get_task("restore").execution_timeout = restore_timeout
    with Approver(APPROVE):
        dr = dag.test(run_conf={"dry_run": False, "drop": True, **conf})
    return dr, {ti.task_id: str(ti.state) for ti in dr.get_task_instances()}


def _half_way(client) -> bool:
    """The restore has replaced the edited announcements: it is writing the target."""
    return client[sample_data.DATABASE].announcements.count_documents({"edited_in_production": True}) < 700


def test_dr_restore_hitting_its_execution_timeout_is_rolled_back(backup_id, target, backup_stack, output):
    server, client = target
    before = raw_snapshot(client[sample_data.DATABASE])
    # the first index build of the restore (after every document is in) takes 8 s on the server:
    # the 5 s execution_timeout fires while the target holds the backup's documents
    client.admin.command("configureFailPoint", "failCommand", mode={"times": 1},
                         data={"failCommands": ["createIndexes"], "blockConnection": True, "blockTimeMS": 8000, "appName": APP})
    armed = time.monotonic()
    dr, states = _run_dr({}, restore_timeout=timedelta(seconds=5))

    assert states["safety_backup"] == "success" and states["restore"] == "failed", states
    assert states["validate"] == "upstream_failed", states
    text = output.text()
    assert "AirflowTaskTimeout" in text
    assert "restore into 'korea_public_data' failed; the target was rolled back to its state before the restore" in text
    time.sleep(max(0.0, armed + 9 - time.monotonic()))  # the blocked index build has landed on the server by now
    assert raw_snapshot(client[sample_data.DATABASE]) == before
    assert _journal(backup_stack["local"]) == []


def test_dr_restore_sigterm_mark_failed_is_rolled_back(backup_id, target, backup_stack, output):
    server, client = target
    before = raw_snapshot(client[sample_data.DATABASE])
    with FaultThread(lambda: _half_way(client), lambda: os.kill(os.getpid(), signal.SIGTERM), every=0.005) as fault:
        dr, states = _run_dr({})
    assert fault.fired == 1 and fault.error is None

    assert states["restore"] == "failed" and states["validate"] == "upstream_failed", states
    text = output.text()
    assert "SIGTERM received: stopping the restore into 'korea_public_data' and rolling the target back" in text
    assert "restore into 'korea_public_data' was interrupted by SIGTERM; the target was rolled back" in text
    assert raw_snapshot(client[sample_data.DATABASE]) == before
    assert _journal(backup_stack["local"]) == []


def _kill_a_cli_restore_half_way(backup_id, client, local) -> dict:
    """``restore mongo --drop`` into the DR target, SIGKILLed once it is writing; its journal record."""
    env = {**os.environ, "PYTHONPATH": str(ROOT / "plugins")}
    proc = subprocess.Popen([sys.executable, "-m", "backup_dr", "restore", "mongo", backup_id, "--to", "mongo_dr_target", "--drop"],
                            env=env, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 120
    while not _half_way(client):
        assert proc.poll() is None and time.monotonic() < deadline, proc.communicate()
        time.sleep(0.005)
    proc.kill()
    proc.communicate(timeout=30)
    time.sleep(0.5)  # a write already sent lands on the server
    [record] = _journal(local)
    assert record["phase"] == "writing"
    return record


@pytest.mark.slow
def test_dr_run_after_a_killed_restore_stops_then_rolls_back_or_resumes_on_request(backup_id, target, backup_stack, output,
                                                                                 webhook_sink, mongo_client, seeded_mongo):
    server, client = target
    local = backup_stack["local"]
    db = client[sample_data.DATABASE]
    before = raw_snapshot(db)
    others = [n for n in before if n not in CRITICAL]  # not in the backup: always as they were
    expected = raw_snapshot(mongo_client[sample_data.DATABASE], CRITICAL)
    record = _kill_a_cli_restore_half_way(backup_id, client, local)
    half_written = raw_snapshot(db)
    assert half_written != before

    # a plain DR run stops before a safety backup of the half-written data could be taken
    dr, states = _run_dr({})
    assert states["safety_backup"] == "failed" and states["restore"] == "upstream_failed", states
    text = output.text()
    assert "CRITICAL: an interrupted restore into MongoDB" in text and record["id"] in text
    assert "interrupted_restore=rollback" in text and f"python -m backup_dr restore rollback {record['id']}" in text
    assert raw_snapshot(db) == half_written  # nothing was done to it
    assert len(list(local.rglob("*.safety.*"))) == 1  # the killed restore's own

    # rollback: the target goes back to its state before the killed restore, then the run recovers
    dr, states = _run_dr({"interrupted_restore": "rollback"})
    assert str(dr.state) == "success", states
    safety = xcom(dr, "safety_backup")
    assert "resumes" not in safety and safety["counts"] == record["safety"]["counts"]  # a fresh one, of the rolled-back data
    assert raw_snapshot(db, CRITICAL) == expected and raw_snapshot(db, others) == {n: before[n] for n in others}
    assert _journal(local) == []

    # resume: the run takes the killed restore over, with that restore's original safety backup
    db.announcements.update_many({}, {"$set": {"edited_in_production": True}})  # production edits again
    record = _kill_a_cli_restore_half_way(backup_id, client, local)
    safeties = sorted(p.name for p in local.rglob("*.safety.*"))
    dr, states = _run_dr({"interrupted_restore": "resume"})
    assert str(dr.state) == "success", states
    safety = xcom(dr, "safety_backup")
    assert safety["resumes"] == record["id"] and safety["safety_backup"] == record["safety"]["backup_id"]
    assert sorted(p.name for p in local.rglob("*.safety.*")) == safeties  # no safety backup of the half-written data
    assert raw_snapshot(db, CRITICAL) == expected and raw_snapshot(db, others) == {n: before[n] for n in others}
    assert _journal(local) == []
