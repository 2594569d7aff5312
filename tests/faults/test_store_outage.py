"""Row 1: a remote store stops mid-upload (the moto / GCS emulator process is SIGKILLed while
a ~40 MB archive streams into it), then comes back.

What must hold: the replicate task of that store fails (after its retries) with a clear,
retryable store error and the failure alert; the other stores are unaffected; the failed
store never shows the backup as complete (no manifest: it only goes up after every file
read back right). The stand-ins keep objects in memory, so the store comes back EMPTY on
the same port and its bucket is re-created. Clearing and re-running the same DAG run then
completes exactly ONE clean backup: the same id, in every store, every copy verified, the
local dump and the surviving store's copy reused, not redone.
"""

from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone

import pytest

from backup_dr.core.catalog import Catalog
from backup_dr.core.verify import verify_copy
from backup_dr.devstack.servers import GcsEmulator, MotoServer
from tests.dags.conftest import run_dag
from tests.faults.conftest import FaultThread, ProgressWatch, all_ids, task_tries, tmp_leftovers, xcom

MAP_INDEX = {"s3": 0, "gcs": 1}  # replicate_mongodb is mapped over the class's remote stores, policy order


class PrivateStore:
    """A private stand-in for one policy store, wired in place of the session one."""

    def __init__(self, kind: str, tmp_path, monkeypatch):
        self.kind = kind
        self.bucket = "outage-bucket"
        self.server = (MotoServer if kind == "s3" else GcsEmulator)(tmp_path / kind).start()
        if kind == "s3":
            monkeypatch.setenv("AIRFLOW_CONN_BACKUP_S3", json.dumps({
                "conn_type": "aws", "login": self.server.access_key, "password": self.server.secret_key,
                # a store that is down fails an attempt in seconds, then Airflow's retries take over
                "extra": {"endpoint_url": self.server.endpoint_url, "region_name": "us-east-1",
                          "config_kwargs": {"retries": {"max_attempts": 2, "mode": "standard"}, "connect_timeout": 2}}}))
            monkeypatch.setenv("BACKUP_DR_S3_BUCKET", self.bucket)
        else:
            monkeypatch.setenv("STORAGE_EMULATOR_HOST", self.server.endpoint_url)
            monkeypatch.setenv("BACKUP_DR_GCS_BUCKET", self.bucket)
            # without retry_deadline the google client retries every call for 120 s against a dead endpoint
            monkeypatch.setenv("AIRFLOW_CONN_BACKUP_GCS", json.dumps({
                "conn_type": "google_cloud_platform", "extra": {"is_anonymous": True, "project": "test", "retry_deadline": 3}}))
        self.create_bucket()

    def create_bucket(self) -> None:
        if self.kind == "s3":
            self.server.client().create_bucket(Bucket=self.bucket)
        else:
            self.server.client().create_bucket(self.bucket)


@pytest.fixture(params=["s3", "gcs"])
def outage(request, backup_stack, bulky_mongo, tmp_path, monkeypatch):
    store = PrivateStore(request.param, tmp_path, monkeypatch)
    yield store
    store.server.cleanup()


def _stores():
    from backup_dr.core.policy import default_policy_path, load_policy
    from backup_dr.core.stores.factory import open_stores

    return open_stores(load_policy(default_policy_path()).stores.values())


def test_store_killed_mid_upload_fails_then_a_rerun_completes_one_clean_backup(backup_stack, outage, output):
    kind, other = outage.kind, "gcs" if outage.kind == "s3" else "s3"
    smtp, slack = backup_stack["smtp"], backup_stack["slack"]
    when = datetime.now(timezone.utc).replace(microsecond=0) - timedelta(minutes=3)
    with ProgressWatch() as progress, FaultThread(progress.at_least(f" to {kind}", 12_000_000), outage.server.kill) as fault:
        dr, states = run_dag("backup_critical_data", logical_date=when, run_after=when)
    assert fault.fired == 1 and fault.error is None, "the store was not killed mid-upload"
    size = progress.bytes[next(k for k in progress.bytes if k.endswith(f" to {other}"))]
    assert 12_000_000 <= progress.seen < size, (progress.seen, size)  # killed part-way through the ~40 MB archive

    # what happens: the dump and the other store's copy succeed; this store's copy fails after its retries
    task = f"replicate_mongodb[{MAP_INDEX[kind]}]"
    assert str(dr.state) == "failed"
    assert states["backup_mongodb"] == "success" and states[f"replicate_mongodb[{MAP_INDEX[other]}]"] == "success", states
    assert states[task] == "failed" and task_tries(dr, "replicate_mongodb", MAP_INDEX[kind]) == 3, states
    assert states["prune"] == "upstream_failed"
    assert xcom(dr, "replicate_mongodb", MAP_INDEX[kind]) is None  # nothing claims a copy there
    backup_id = xcom(dr, "backup_mongodb")["backup_id"]
    log = output.text()
    store_name = "S3 store 's3'" if kind == "s3" else "GCS store 'gcs'"
    assert f"{store_name} (" in log and "error while" in log, "the failure must name the store"

    # what the user sees: the alert names the store task and the store
    mails = smtp.wait_for(lambda m: "replicate_mongodb" in m["Subject"])
    assert mails, [m["Subject"] for m in smtp.messages]
    text = smtp.text(mails[0])
    assert "backup class critical_data" in text and store_name in text
    assert slack.wait_for(lambda p: "replicate_mongodb" in str(p["body"]))

    # what is left behind: the backup is complete in local and the other store, NOT in this one
    # (the stand-in lost its memory with its process: it comes back empty, bucket re-created)
    outage.server.start()
    outage.create_bucket()
    stores = _stores()
    assert all_ids(stores[kind]) == []
    assert sorted(Catalog(stores).find(backup_id).complete_in) == sorted(["local", other])
    assert tmp_leftovers(backup_stack["local"]) == []

    # the store is back: clearing and re-running the same run completes ONE clean backup
    smtp.messages.clear()
    dr, states = run_dag("backup_critical_data", logical_date=when, run_after=when)
    assert str(dr.state) == "success", states
    assert xcom(dr, "backup_mongodb")["backup_id"] == backup_id  # the same id: the local dump was reused
    assert xcom(dr, "replicate_mongodb", MAP_INDEX[other])["status"] == "present"  # not uploaded twice
    assert xcom(dr, "replicate_mongodb", MAP_INDEX[kind])["status"] == "replicated"
    entries = Catalog(stores).list(include_incomplete=True)
    assert [e.backup_id for e in entries] == [backup_id]
    assert sorted(entries[0].complete_in) == ["gcs", "local", "s3"]
    manifest = entries[0].manifest()
    for name, store in stores.items():
        assert verify_copy(store, manifest)["ok"], name
        assert len([k for k in (i.key for i in store.list(manifest.id.prefix)) if k.endswith(".gz")]) == 1, name
    if kind == "s3":
        s3 = outage.server.client()
        assert s3.list_multipart_uploads(Bucket=outage.bucket).get("Uploads", []) == []
    assert not smtp.wait_for(lambda m: "FAILED" in m["Subject"], timeout=1)
