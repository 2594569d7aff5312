"""A backup records its document counts AT ITS CONSISTENT POINT, exactly, with writes during the dump.

The counts a restore must hold are those of the source at the dump's ``end`` (its window
replayed), not what the scans read. Here a writer inserts, updates, deletes and runs
transactions while ``backup_mongodb`` dumps, and keeps writing after it; the source's counts at
``end`` are then computed independently of the product, from the source itself: today's
counts minus the inserts and deletes the oplog holds after ``end``. The manifest must record
exactly those, every validator must use them (the DR validate step false-failed on
``manifest.counts`` after a good restore), and a restore must hold them.
"""

from __future__ import annotations

import os
import threading
import time

import pytest
from bson import Timestamp

from backup_dr.core.crypto.keys import BackupEncryption, MasterKey
from backup_dr.core.mongo.backup import backup_mongodb, restore_mongodb
from backup_dr.core.mongo.end_counts import expected_counts
from backup_dr.core.policy_model import Job, MongoSource

from mongo_support import uniq
from test_consistency import COLLS, Writer, live_db  # noqa: F401 - live_db is a fixture


def _counts_at(client, db, end: Timestamp) -> dict[str, int]:
    """The source's counts at ``end``: now, minus what the oplog says was inserted/deleted after."""
    out = {}
    for name in db.list_collection_names():
        later = client.local["oplog.rs"].find({"ts": {"$gt": end}, "ns": f"{db.name}.{name}", "op": {"$in": ["i", "d"]}})
        net = sum(1 if e["op"] == "i" else -1 for e in later)
        out[name] = db[name].count_documents({}) - net
    return out


class Inserter(threading.Thread):
    """Inserts into the collection dumped FIRST: whatever lands after its scan changes its count."""

    def __init__(self, db):
        super().__init__(daemon=True)
        self.db, self.stop, self.n, self.error = db, threading.Event(), 0, None

    def run(self):
        try:
            while not self.stop.is_set():
                self.db[COLLS[0]].insert_one({"_id": f"ins-{self.n}", "k": -1 - self.n, "pad": "x" * 200})
                self.n += 1
        except BaseException as e:  # noqa: BLE001 - surfaced by the test
            self.error = e


def _writing(db):
    threads = [Writer(db), Inserter(db)]
    for t in threads:
        t.start()
    deadline = time.monotonic() + 30
    while threads[0].ops < 20 and time.monotonic() < deadline:  # writes are under way before the dump starts
        time.sleep(0.05)
    return threads


@pytest.mark.parametrize("fmt,codec,encrypted", [
    pytest.param("archive", "zstd", False, id="archive"),
    pytest.param("directory", "gzip", False, id="directory", marks=pytest.mark.slow),
    pytest.param("archive", "gzip", True, id="encrypted-archive", marks=pytest.mark.slow)])
def test_the_backup_records_the_counts_at_its_consistent_point(mongo_client, live_db, make_writer, local_store,  # noqa: F811
                                                               tmp_path, drop_after, fmt, codec, encrypted):
    live_db.create_collection("late")  # no DDL while writing: the independent count below reads only i/d entries
    source = MongoSource(name="mongodb", conn_id="unused", database=live_db.name, compression=codec, format=fmt,
                         read_preference="primary")
    writer = make_writer()
    if encrypted:
        writer.encryption = BackupEncryption("backup_encryption_key", MasterKey("k1", os.urandom(32)))
    threads = _writing(live_db)
    try:
        manifest = backup_mongodb(mongo_client, source, Job(source="mongodb"), writer)
        time.sleep(0.3)  # and after the end point
    finally:
        for t in threads:
            t.stop.set()
            t.join(30)
    assert [t.error for t in threads] == [None, None]
    end = Timestamp(manifest.consistent_point["end"]["t"], manifest.consistent_point["end"]["i"])
    at_end = _counts_at(mongo_client, live_db, end)
    assert manifest.details["oplog_entries"] > 0
    assert manifest.consistent_point["counts"] == at_end
    assert manifest.counts != at_end, "the writes did not change the counts during the dump: the test proves nothing"
    expected = expected_counts(manifest)
    assert expected.counts == at_end and "consistent point" in expected.source
    if encrypted or fmt == "directory":
        return  # the restore path below reads archives of the plain store
    target = uniq("counted")
    drop_after.append(target)
    result = restore_mongodb(mongo_client, local_store, manifest, workdir=tmp_path / "w", safety_dir=tmp_path / "s",
                             target_db=target)
    assert result.validation["ok"]
    assert {c: mongo_client[target][c].count_documents({}) for c in at_end} == at_end


def test_expected_counts_of_older_manifests():
    from backup_dr.core.artifacts.manifest import Manifest

    def manifest(point, entries):
        return Manifest(backup_id="critical_data.mongodb.full.20261126T080000Z", backup_class="critical_data",
                        source="mongodb", source_type="mongodb", kind="full", run_after="2026-11-26T08:00:00Z",
                        started_at="2026-11-26T08:00:00Z", finished_at="2026-11-26T08:01:00Z", files=(),
                        consistent_point=point, counts={"a": 5}, details={"oplog_entries": entries})

    quiet = expected_counts(manifest({"start": {"t": 1, "i": 1}, "end": {"t": 1, "i": 1}}, 0))
    assert quiet.counts == {"a": 5} and "no write" in quiet.source
    busy = expected_counts(manifest({"start": {"t": 1, "i": 1}, "end": {"t": 2, "i": 1}}, 7))
    assert busy.counts == {} and "predates" in busy.source and "7 oplog entries" in busy.source
    recorded = expected_counts(manifest({"end": {"t": 2, "i": 1}, "counts": {"a": 6, "b": None}}, 7))
    assert recorded.counts == {"a": 6, "b": None} and recorded.known == {"a": 6}
