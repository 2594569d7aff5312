"""Writes during the dump: the restore equals the source at the dump's recorded end point.

A writer thread inserts, updates (every update shape), deletes, runs transactions and DDL
while the dump reads. The sink is slowed so the writes really interleave with the reads,
and the writer is stopped (and joined) *before* the dump takes its end position, so the
source as it stands after the dump IS the state at ``end``: no later write exists.
"""

from __future__ import annotations

import io
import random
import threading
import time

import pytest
from pymongo import ReturnDocument

from backup_dr.core.mongo.dump import dump_database
from backup_dr.core.mongo.oplog import newest_ts
from backup_dr.core.mongo.safe_restore import safe_restore
from backup_dr.core.mongo.sinks import ArchiveSink
from backup_dr.core.stores.local import LocalStore

from mongo_support import snapshot, uniq

COLLS = ("c0", "c1", "c2")


class SlowSink(ArchiveSink):
    """Slows the dump and stops the writer after the last collection, before ``end`` is read."""

    def __init__(self, *a, stop_writer, last: str, **kw):
        super().__init__(*a, **kw)
        self.stop_writer, self.last = stop_writer, last

    def begin(self, db, coll):
        time.sleep(0.3)
        super().begin(db, coll)

    def write(self, data):
        time.sleep(0.2)
        super().write(data)

    def end(self):
        super().end()
        if self._ns.endswith("." + self.last):
            self.stop_writer()


class Writer(threading.Thread):
    def __init__(self, db):
        super().__init__(daemon=True)
        self.db, self.stop = db, threading.Event()
        self.rng = random.Random(42)
        self.ops = 0
        self.next_id = 10_000
        self.next_k = 1_000_000
        self.free_k: dict[str, list[int]] = {c: [] for c in COLLS}
        self.error: BaseException | None = None

    def run(self):
        try:
            while not self.stop.is_set():
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

    def stop_writer():
        writer.stop.set()
        writer.join(30)

    out = io.BytesIO()
    sink = SlowSink(out, "zstd", server_version="8.2.11", tool_version="t", stop_writer=stop_writer, last=COLLS[-1])
    writer.start()
    time.sleep(0.2)
    result = dump_database(mongo_client, live_db.name, sink, progress_every=0.5)
    assert writer.error is None, writer.error
    assert not writer.is_alive()
    assert writer.ops > 50, "the writer did not overlap with the dump"
    assert result.oplog_entries >= writer.ops * 0.9
    assert newest_ts(mongo_client) >= result.end  # nothing was written after end (the writer is stopped)
    expected = snapshot(live_db)

    path = tmp_path / "live.archive.zst"
    path.write_bytes(out.getvalue())
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
