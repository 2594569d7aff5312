"""Row 7: two runs of the same DAG at once, and a retry of a task that had partly uploaded.

* Two ``backup_critical_data`` runs with different ``run_after`` execute AT THE SAME TIME in
  two worker processes (their dump tasks overlap in time, checked from the task instances):
  each makes its own backup under its own id, in every store, and neither clobbers the other.
* A worker is SIGKILLed while it uploads the archive to S3 (a multipart upload with parts
  already on the server, nothing completed): the task's retry, with the same backup id,
  aborts the leftover multipart upload, uploads again and completes exactly ONE backup per
  id; every copy verifies.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from datetime import datetime, timedelta, timezone

import pytest

from backup_dr.core.catalog import Catalog
from backup_dr.core.verify import verify_copy
from tests.dags.conftest import run_dag
from tests.faults.conftest import ROOT, backup_dirs, tmp_leftovers, xcom


def _child(when: datetime) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "tests.faults.dag_runner", "backup_critical_data", when.isoformat()],
                            cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True)


def _result(proc: subprocess.Popen, timeout: float = 240) -> dict:
    out, _ = proc.communicate(timeout=timeout)
    lines = [x for x in out.splitlines() if x.startswith("RESULT ")]
    assert lines, out[-4000:]
    return json.loads(lines[-1][len("RESULT "):])


def _register_dags() -> None:
    """What the first ``dag.test()`` of a fresh metadata DB does (register the DAG bundle and
    serialize its DAGs), done once here, as a dag-processor would have: two workers starting
    at the same moment on a brand-new SQLite DB would otherwise both insert the bundle row."""
    from airflow.dag_processing.bundles.manager import DagBundlesManager
    from airflow.dag_processing.dagbag import BundleDagBag, sync_bag_to_db
    from airflow.utils.session import create_session

    manager = DagBundlesManager()
    with create_session() as session:
        manager.sync_bundles_to_db(session=session)
    for bundle in manager.get_all_dag_bundles():
        bundle.initialize()
        sync_bag_to_db(BundleDagBag(dag_folder=bundle.path, bundle_path=bundle.path, bundle_name=bundle.name),
                       bundle.name, bundle.version)


def _task_window(dag_id: str, run_id: str, task_id: str):
    from airflow.models.taskinstance import TaskInstance as TI
    from airflow.utils.session import create_session

    with create_session() as session:
        ti = session.query(TI).filter_by(dag_id=dag_id, run_id=run_id, task_id=task_id, map_index=-1).one()
        return ti.start_date, ti.end_date


def test_two_runs_at_once_each_make_their_own_backup(backup_stack, bulky_mongo, policy_stores):
    base = datetime.now(timezone.utc).replace(microsecond=0) - timedelta(hours=2)
    first, second = base, base + timedelta(minutes=7)
    _register_dags()
    procs = [_child(first), _child(second)]
    results = [_result(p) for p in procs]
    assert [r["state"] for r in results] == ["success", "success"], results

    # they really ran at once: the two dump tasks overlap in time
    (s1, e1), (s2, e2) = (_task_window("backup_critical_data", r["run_id"], "backup_mongodb") for r in results)
    assert s1 < e2 and s2 < e1, f"the runs did not overlap: {s1}..{e1} vs {s2}..{e2}"

    # two backups, one per run_after, each complete and intact in every store
    entries = Catalog(policy_stores).list(include_incomplete=True)
    stamps = sorted(e.bid.stamp for e in entries)
    assert stamps == [first, second], [e.backup_id for e in entries]
    for entry in entries:
        assert sorted(entry.complete_in) == ["gcs", "local", "s3"], entry
        manifest = entry.manifest()
        assert manifest.run_after.startswith(entry.bid.stamp.strftime("%Y-%m-%dT%H:%M:%S"))
        for name, store in policy_stores.items():
            assert verify_copy(store, manifest)["ok"], (entry.backup_id, name)
    a, b = (e.manifest() for e in entries)
    assert a.counts == b.counts and a.files[0].name == b.files[0].name
    assert tmp_leftovers(backup_stack["local"]) == [] and all(backup_dirs(backup_stack["local"]).values())


@pytest.mark.slow  # ~35 s: a child worker starts Airflow, is killed, then the retry run
def test_worker_killed_mid_upload_then_the_retry_makes_exactly_one_backup(backup_stack, bulky_mongo, policy_stores, s3_server):
    s3, bucket = s3_server.client(), backup_stack["s3"]
    when = datetime.now(timezone.utc).replace(microsecond=0) - timedelta(hours=3)
    _register_dags()
    proc = _child(when)

    def parts_uploaded() -> int:
        for up in s3.list_multipart_uploads(Bucket=bucket).get("Uploads", []):
            return len(s3.list_parts(Bucket=bucket, Key=up["Key"], UploadId=up["UploadId"]).get("Parts", []))
        return 0

    deadline = time.monotonic() + 120
    while parts_uploaded() < 2:
        assert proc.poll() is None and time.monotonic() < deadline, "the upload never got going"
        time.sleep(0.02)
    os.killpg(proc.pid, signal.SIGKILL)  # the worker dies mid-upload (OOM killer, node lost, ...)
    proc.wait(30)

    # left behind by the dead worker: a complete local backup, an unfinished multipart upload, no manifest in S3
    stores = policy_stores
    [entry] = Catalog(stores).list(include_incomplete=True)
    # S3 was cut mid-upload; GCS may or may not have finished before the kill (under load it can)
    assert "local" in entry.complete_in and "s3" not in entry.complete_in, entry.copies
    leftover = s3.list_multipart_uploads(Bucket=bucket).get("Uploads", [])
    assert len(leftover) == 1 and entry.backup_id in leftover[0]["Key"]

    # the retry (same run, same backup id): one backup, every copy verified, no upload left dangling
    dr, states = run_dag("backup_critical_data", logical_date=when, run_after=when)
    assert str(dr.state) == "success", states
    assert xcom(dr, "backup_mongodb")["backup_id"] == entry.backup_id
    assert xcom(dr, "replicate_mongodb", 0)["status"] == "replicated"
    entries = Catalog(stores).list(include_incomplete=True)
    assert [e.backup_id for e in entries] == [entry.backup_id]
    assert sorted(entries[0].complete_in) == ["gcs", "local", "s3"]
    manifest = entries[0].manifest()
    for name, store in stores.items():
        assert verify_copy(store, manifest)["ok"], name
        assert sorted(i.key.rsplit("/", 1)[1] for i in store.list(manifest.id.prefix) if "verify-" not in i.key) == \
            sorted([f.name for f in manifest.files] + ["manifest.json"]), name
    assert s3.list_multipart_uploads(Bucket=bucket).get("Uploads", []) == []
    assert tmp_leftovers(backup_stack["local"]) == []


_ZOMBIE = """
import sys
from datetime import datetime
sys.path.insert(0, sys.argv[2])
from backup_dr.core.artifacts.layout import BackupId
from backup_dr.core.artifacts.writer import ArtifactWriter
from backup_dr.core.connections import conn_from_env, mongo_uri
from backup_dr.core.mongo.backup import backup_mongodb
from backup_dr.core.policy import default_policy_path, load_policy
from backup_dr.core.stores.factory import open_store
import pymongo

policy = load_policy(default_policy_path())
cls, src = policy.classes["critical_data"], policy.sources["mongodb"]
when = datetime.fromisoformat(sys.argv[1])
writer = ArtifactWriter(open_store(policy.stores["local"]), BackupId.new(cls.name, src.name, "full", when),
                        source_type="mongodb", retention=cls.retention, run_after=when)
client = pymongo.MongoClient(mongo_uri(conn_from_env(src.conn_id)))
print("ZOMBIE", backup_mongodb(client, src, cls.jobs[0], writer).started_at, flush=True)
"""


def _retrying(task_id: str):
    def check() -> bool:
        from airflow.models.taskinstance import TaskInstance as TI
        from airflow.utils.session import create_session

        with create_session() as session:
            return session.query(TI).filter_by(dag_id="backup_critical_data", task_id=task_id, state="up_for_retry").count() > 0

    return check


def test_a_zombie_attempt_holding_the_backup_makes_the_retry_wait_not_duplicate(backup_stack, bulky_mongo, policy_stores, output):
    """The same backup id written by two attempts at once (a stuck worker the scheduler gave up
    on, and the retry): the retry fails fast on the writer's lock instead of interleaving its
    files, retries, and finds the zombie's finished backup: one backup, dumped once."""
    from tests.faults.conftest import FaultThread, GrowingTmpFile

    local = backup_stack["local"]
    when = datetime.now(timezone.utc).replace(microsecond=0) - timedelta(hours=4)
    zombie = subprocess.Popen([sys.executable, "-c", _ZOMBIE, when.isoformat(), str(ROOT / "plugins")],
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    writing = GrowingTmpFile(local, 1_000_000)
    deadline = time.monotonic() + 60
    while not writing():
        assert zombie.poll() is None and time.monotonic() < deadline, zombie.stdout.read() if zombie.stdout else ""
        time.sleep(0.01)
    os.kill(zombie.pid, signal.SIGSTOP)  # stuck mid-write, holding the backup's lock
    try:
        with FaultThread(_retrying("backup_mongodb"), lambda: os.kill(zombie.pid, signal.SIGCONT), every=0.1) as fault:
            dr, states = run_dag("backup_critical_data", logical_date=when, run_after=when)
    finally:
        os.kill(zombie.pid, signal.SIGCONT)
    out, _ = zombie.communicate(timeout=60)
    assert fault.fired == 1 and zombie.returncode == 0, out[-3000:]
    assert str(dr.state) == "success", states
    assert f"backup {xcom(dr, 'backup_mongodb')['backup_id']} is being written by another attempt right now" in output.text()
    [entry] = Catalog(policy_stores).list(include_incomplete=True)
    assert sorted(entry.complete_in) == ["gcs", "local", "s3"]
    assert entry.manifest().started_at in out  # the zombie's dump is THE backup: the retry did not dump again
    for name, store in policy_stores.items():
        assert verify_copy(store, entry.manifest())["ok"], name
    assert tmp_leftovers(local) == []
