"""Writes during the dump: the restore equals the source AT THE DUMP'S END POINT, not after it.

A writer thread inserts, updates (every update shape), deletes, runs transactions and DDL
while the dump reads, and keeps writing after the dump has taken its end position and while
it reads the oplog window. The sink is slowed so the writes really interleave with the reads.
The source's state at ``end`` is captured by pausing the writer between the last collection
and the oplog window (the only moment the end position is taken) and snapshotting the
source; the writer resumes as soon as the window is read, so later writes exist in the
oplog right next to the window and must NOT reach the restore.
"""

from __future__ import annotations

import io
import random
import threading
import time
from contextlib import contextmanager

import pytest
from pymongo import ReturnDocument

from backup_dr.core.mongo.archive import OPLOG_COLLECTION, OPLOG_DB
from backup_dr.core.mongo.codecs import decompressed_reader
from backup_dr.core.mongo.dump import dump_database
from backup_dr.core.mongo.end_counts import archive_documents, resolve
from backup_dr.core.mongo.safe_restore import safe_restore
from backup_dr.core.mongo.sinks import ArchiveSink
from backup_dr.core.stores.local import LocalStore

from mongo_support import snapshot, uniq

COLLS = ("c0", "c1", "c2")


class SlowSink(ArchiveSink):
    """Slows the dump; after the last collection (before ``end`` is taken) pauses the writer and
    snapshots the source; resumes the writer when the oplog window starts (``end`` is taken)."""

    def __init__(self, *a, at_end, at_window, last: str, **kw):
        super().__init__(*a, **kw)
        self.at_end, self.at_window, self.last = at_end, at_window, last

    def begin(self, db, coll):
        if (db, coll) == (OPLOG_DB, OPLOG_COLLECTION):
            self.at_window()
        else:
            time.sleep(0.3)
        super().begin(db, coll)

    def write(self, data):
        time.sleep(0.2)
        super().write(data)

    def end(self):
        super().end()
        if self._ns.endswith("." + self.last):
            self.at_end()


class Writer(threading.Thread):
    def __init__(self, db):
        super().__init__(daemon=True)
        self.db, self.stop = db, threading.Event()
        self.running, self.idle = threading.Event(), threading.Event()
        self.running.set()
        self.rng = random.Random(42)
        self.ops = 0
        self.next_id = 10_000
        self.next_k = 1_000_000
        self.free_k: dict[str, list[int]] = {c: [] for c in COLLS}
        self.error: BaseException | None = None

    def pause(self):
        """Return once the writer sits between two operations and will not start another."""
        self.idle.clear()
        self.running.clear()
        self.idle.wait(30)

    def run(self):
        try:
            while not self.stop.is_set():
                if not self.running.is_set():
                    self.idle.set()
                    self.running.wait()
                    continue
                self.one()
                self.ops += 1
        except BaseException as e:  # noqa: BLE001 - surfaced by the test
            self.error = e

    def one(self):
        rng, db = self.rng, self.db
        coll = db[rng.choice(COLLS)]
        r = rng.random()
        pick = {"_id": rng.randrange(0, 1500)}
        if r < 0.2:
            free = self.free_k[coll.name]
            k = free.pop() if free and rng.random() < 0.5 else self.next_k
            self.next_k += 1
            coll.insert_one({"_id": self.next_id, "k": k, "n": 0, "tags": ["new"], "sub": {"x": 1}})
            self.next_id += 1
        elif r < 0.3:
            coll.update_one(pick, {"$set": {"sub.y": rng.random(), "flag": True}, "$inc": {"n": 1}})
        elif r < 0.4:
            coll.update_one(pick, {"$push": {"tags": f"t{self.ops}"}})
        elif r < 0.45:
            coll.update_one(pick, {"$pop": {"tags": 1}})
        elif r < 0.5:
            coll.update_one(pick, {"$unset": {"sub.x": ""}, "$set": {"tags.0": "first"}})
        elif r < 0.6:
            old = coll.find_one_and_update(pick, {"$set": {"k": self.next_k}}, return_document=ReturnDocument.BEFORE)
            self.next_k += 1
            if old is not None:
                self.free_k[coll.name].append(old["k"])  # a later insert may reuse it: fuzzy data has duplicates
        elif r < 0.65:
            coll.replace_one(pick, {"k": self.next_k, "replaced": True})
            self.next_k += 1
        elif r < 0.8:
            coll.delete_one(pick)
        elif r < 0.83:
            with db.client.start_session() as s, s.start_transaction():
                db.c0.insert_one({"_id": self.next_id, "k": self.next_k, "txn": True}, session=s)
                db.c1.update_one(pick, {"$set": {"txn": self.ops}}, session=s)
            self.next_id += 1
            self.next_k += 1
        elif r < 0.84 and "late" not in db.list_collection_names():
            db.create_collection("late")
            db.late.create_index("when")
        else:
            db.late.insert_one({"when": self.ops}) if "late" in db.list_collection_names() else None


@pytest.fixture
def live_db(mongo_client):
    name = uniq("live")
    db = mongo_client[name]
    for c in COLLS:
        db[c].insert_many([{"_id": i, "k": i, "n": 0, "tags": ["a", "b"], "sub": {"x": 1}, "pad": "가" * 300}
                           for i in range(1500)])
        db[c].create_index("k", unique=True)
    yield db
    mongo_client.drop_database(name)


def test_restore_equals_source_at_the_end_point(mongo_client, live_db, tmp_path, drop_after):
    writer = Writer(live_db)
    at_end: dict = {}

    def pause_and_snapshot():
        writer.pause()
        at_end["ops"] = writer.ops
        at_end["state"] = snapshot(live_db)

    out = io.BytesIO()
    sink = SlowSink(out, "zstd", server_version="8.2.11", tool_version="t", at_end=pause_and_snapshot,
                    at_window=writer.running.set, last=COLLS[-1])
    writer.start()
    time.sleep(0.2)
    result = dump_database(mongo_client, live_db.name, sink, progress_every=0.5)
    time.sleep(0.5)  # writes after the end point, next to the window in the oplog
    writer.stop.set()
    writer.join(30)
    assert writer.error is None, writer.error
    assert at_end["ops"] > 50, "the writer did not overlap with the dump"
    assert writer.ops > at_end["ops"], "no write after the end point: the test would not see one leak in"
    expected = at_end["state"]
    assert snapshot(live_db) != expected  # the source moved on after the end point

    path = tmp_path / "live.archive.zst"
    path.write_bytes(out.getvalue())
    # the counts at the end point, as the backup records them: those of the source at that moment
    counts = resolve(result.window, result.counts, archive_documents(lambda: _stream(path), live_db.name))
    assert counts == {name: len(e["docs"]) for name, e in expected.items()}
    assert counts != result.counts  # what the scans read is not the state at the end point

    target = uniq("live_restored")
    drop_after.append(target)
    restored = safe_restore(mongo_client, path, target_db=target, safety_store=LocalStore(tmp_path / "safety"))
    assert restored.validation["ok"]
    got = snapshot(mongo_client[target])
    assert set(got) == set(expected)
    for name in expected:
        assert got[name]["options"] == expected[name]["options"], name
        assert got[name]["indexes"] == expected[name]["indexes"], name
        diff = {k for k in set(got[name]["docs"]) | set(expected[name]["docs"])
                if got[name]["docs"].get(k) != expected[name]["docs"].get(k)}
        assert not diff, f"{name}: {len(diff)} documents differ from the source at the end point"


@contextmanager
def _stream(path):
    with open(path, "rb") as raw, decompressed_reader(raw) as stream:
        yield stream
