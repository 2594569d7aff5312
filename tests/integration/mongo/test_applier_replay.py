"""Real SecantusDB oplog entries from a workload replay to the same state (client-side applier)."""

from __future__ import annotations

import time

from backup_dr.core.mongo.applier import NamespaceMap, OplogApplier
from backup_dr.core.mongo.oplog import newest_ts, read_window

from mongo_support import snapshot, uniq
from test_consistency import COLLS, Writer


def test_workload_oplog_replays_into_an_empty_database_to_the_same_state(mongo_client, drop_after):
    src, dst = uniq("workload"), uniq("replayed")
    drop_after += [src, dst]
    start = newest_ts(mongo_client)
    db = mongo_client[src]
    for c in COLLS:  # DDL and the initial data are part of the replayed window too
        db.create_collection(c, collation={"locale": "ko"}) if c == "c1" else db.create_collection(c)
        db[c].insert_many([{"_id": i, "k": i, "n": 0, "tags": ["a", "b"], "sub": {"x": 1}} for i in range(1500)])
        db[c].create_index("k", unique=True)
    writer = Writer(db)
    writer.start()
    deadline = time.monotonic() + 60  # enough operations, however loaded the machine is
    while writer.ops <= 150 and writer.is_alive() and time.monotonic() < deadline:
        time.sleep(0.1)
    writer.stop.set()
    writer.join(30)
    assert writer.error is None and writer.ops > 100
    db.c2.drop_index("k_1")
    db.c0.rename("c0_renamed")
    end = newest_ts(mongo_client)
    applier = OplogApplier(mongo_client, NamespaceMap(src, dst))
    stats = applier.apply_all(read_window(mongo_client, src, start, end))
    assert stats.applied["i"] >= 4500 and "c:renameCollection" in stats.applied
    expected, got = snapshot(db), snapshot(mongo_client[dst])
    assert set(got) == set(expected)
    for name in expected:
        assert got[name]["options"] == expected[name]["options"], name
        assert got[name]["indexes"] == expected[name]["indexes"], name
        assert got[name]["docs"] == expected[name]["docs"], name
