"""DR after a backup taken while the application wrote: the validate step must not false-fail.

Production writes during every backup. The DR ``validate`` step compared the restored counts
with ``manifest.counts`` (what the dump READ), so a good restore of a backup with writes
during its dump failed validation and never repointed the application. It now compares with
the backup's counts at its consistent point (``end_counts.expected_counts``); the replacement
server must hold exactly those.
"""

from __future__ import annotations

import json
import threading
from datetime import datetime, timedelta, timezone

import pytest

from backup_dr.devstack.servers import MongoServer
from tests.dags.conftest import Approver, run_dag

COLLS = ("announcements", "businesses", "contents")


class AppWrites(threading.Thread):
    """The API at work: new announcements/businesses/contents, and some removed again."""

    def __init__(self, db):
        super().__init__(daemon=True)
        self.db, self.stop, self.n, self.error = db, threading.Event(), 0, None

    def run(self):
        try:
            while not self.stop.is_set():
                n = self.n
                self.db.announcements.insert_one({"announcement_id": f"LIVE-{n}", "title": "신규 공고", "status": "모집중"})
                self.db.businesses.insert_one({"business_number": f"LIVE-{n}", "name": f"(주)라이브{n}"})
                self.db.contents.insert_one({"title": f"live {n}", "slug": f"live-{n}"})
                if n % 3 == 2:
                    self.db.announcements.delete_one({"announcement_id": f"LIVE-{n - 1}"})
                self.n += 1
        except BaseException as e:  # noqa: BLE001 - surfaced by the test
            self.error = e


@pytest.mark.slow
def test_dr_validates_a_backup_taken_during_writes(stack, webhook_sink, tmp_path, monkeypatch):
    from backup_dr.devstack import sample_data

    with MongoServer(tmp_path / "prod", oplog_max_entries=500_000) as prod, \
            MongoServer(tmp_path / "replacement") as replacement:
        monkeypatch.setenv("AIRFLOW_CONN_MONGO_KOREA_PUBLIC_DATA", json.dumps(
            {"conn_type": "mongo", "host": "127.0.0.1", "port": prod.port, "extra": {"directConnection": True}}))
        monkeypatch.setenv("AIRFLOW_CONN_MONGO_DR_TARGET", json.dumps(
            {"conn_type": "mongo", "host": "127.0.0.1", "port": replacement.port, "extra": {"directConnection": True}}))
        client = prod.client()
        sample_data.seed_mongo(client, {"announcements": 3000, "businesses": 2000, "contents": 500, "statistics": 10})
        writes = AppWrites(client["korea_public_data"])
        writes.start()
        try:
            dr, states = run_dag("backup_critical_data",
                                 logical_date=datetime.now(timezone.utc).replace(microsecond=0) - timedelta(hours=1))
        finally:
            writes.stop.set()
            writes.join(30)
        assert writes.error is None and writes.n > 10, (writes.error, writes.n)
        assert str(dr.state) == "success", states
        from backup_dr.core.catalog import Catalog
        from backup_dr.core.stores.local import LocalStore

        entry = Catalog({"local": LocalStore(stack["local"], name="local")}).newest("critical_data", "mongodb", "full")
        manifest = entry.manifest()
        at_end = manifest.consistent_point["counts"]
        assert {c: at_end[c] for c in COLLS} != {c: manifest.counts[c] for c in COLLS}, \
            "the writes did not change the counts during the dump: the scenario is not exercised"

        with Approver({"provision_mongodb": ("Approve", {})}):
            dr, states = run_dag("dr_database_server_failure", run_conf={"dry_run": False})
        assert str(dr.state) == "success", states
        assert states["validate"] == "success" and states["repoint"] == "success", states
        dst = replacement.client()["korea_public_data"]
        assert {c: dst[c].count_documents({}) for c in COLLS} == {c: at_end[c] for c in COLLS}
