"""Point-in-time restore on a real SecantusDB.

A scripted workload (inserts, updates, replacements, $unset, array pushes, a transaction,
index creation and removal, deletes) runs in phases one second apart, with a full backup
before it and another in the middle, and an oplog slice archived after every phase. The
state of the protected collections is snapshotted at the end of each phase; restoring to
that phase's second must give exactly that state, byte for byte.
"""

from __future__ import annotations

import copy
import time
import uuid
from datetime import datetime, timedelta, timezone
from types import SimpleNamespace

import pytest
from bson import Timestamp, encode

from backup_dr.core.catalog import Catalog
from backup_dr.core.errors import RestoreError, RestoreRefused
from backup_dr.core.pitr import load_chain, restore_to_time
from backup_dr.core.stores.local import LocalStore

from pitr_support import Clock, assert_same, full_backup, newest_ts, policy_for, seed, snapshot, take_slice, wait_next_second


def _oplog_ts(client, ns: str, _id) -> Timestamp:
    return client.local["oplog.rs"].find_one({"ns": ns, "op": "i", "o._id": _id})["ts"]


@pytest.fixture(scope="module")
def workload(pitr_client, tmp_path_factory):
    client = pitr_client
    name = f"pitr_{uuid.uuid4().hex[:8]}"
    root = tmp_path_factory.mktemp("pitr-workload")
    w = SimpleNamespace(client=client, name=name, db=client[name], policy=policy_for(name), root=root,
                        store=LocalStore(root / "backups", name="local"), clock=Clock(), marks={}, snaps={}, fulls=[], slices=[])
    db = w.db
    seed(db)
    w.fulls.append(full_backup(client, w.policy, w.store, w.clock.next()))
    wait_next_second(client)

    # phase 1: plain CRUD (and a write to a collection critical_data does not protect)
    db.announcements.insert_many([{"_id": 1000 + i, "title": f"신규 {i}", "region": "서울", "views": 0} for i in range(50)])
    db.businesses.update_many({"employees": {"$lt": 10}}, {"$set": {"status": "closed"}, "$inc": {"employees": 1}})
    db.contents.delete_many({"_id": {"$lt": 10}})
    db.statistics.insert_one({"_id": 999, "hits": 1})
    w.marks["t1"] = newest_ts(client).time
    w.snaps["t1"] = snapshot(db)
    w.slices.append(take_slice(client, w.policy, w.store, w.clock.next()))
    wait_next_second(client)

    # phase 2: an index, a replacement, $unset, an array push, a transaction; a second full backup
    # in the middle (restores after it must start from it), then more writes
    db.businesses.create_index([("status", 1), ("employees", -1)], name="status_employees")
    db.announcements.replace_one({"_id": 5}, {"title": "replaced", "region": "제주"})
    db.announcements.update_many({"region": "부산"}, {"$unset": {"tags": ""}, "$inc": {"views": 3}})
    db.announcements.update_one({"_id": 7}, {"$push": {"tags": {"$each": ["b", "c"]}}})
    with client.start_session() as session, session.start_transaction():
        db.contents.insert_one({"_id": 5000, "body": "in a transaction"}, session=session)
        db.businesses.update_one({"_id": "b1"}, {"$set": {"name": "txn"}}, session=session)
    w.slices.append(take_slice(client, w.policy, w.store, w.clock.next()))
    w.fulls.append(full_backup(client, w.policy, w.store, w.clock.next()))
    db.contents.insert_many([{"_id": 6000 + i, "body": "after the second full backup", "rev": 2} for i in range(30)])
    db.contents.update_many({"rev": 1}, {"$set": {"rev": 3}})
    w.marks["t2"] = newest_ts(client).time
    w.snaps["t2"] = snapshot(db)
    w.slices.append(take_slice(client, w.policy, w.store, w.clock.next()))
    wait_next_second(client)

    # phase 3: two inserts within ONE second (the whole-second rule)
    while time.time() % 1 > 0.3:
        time.sleep(0.01)
    db.announcements.insert_one({"_id": "X", "title": "first of the second"})
    db.announcements.insert_one({"_id": "Y", "title": "second of the second"})
    ns = f"{name}.announcements"
    w.marks["x"], w.marks["y"] = _oplog_ts(client, ns, "X"), _oplog_ts(client, ns, "Y")
    assert w.marks["x"].time == w.marks["y"].time and w.marks["x"] < w.marks["y"], (w.marks["x"], w.marks["y"])
    w.snaps["xy"] = snapshot(db)
    w.snaps["x_only"] = copy.deepcopy(w.snaps["xy"])
    del w.snaps["x_only"]["announcements"]["docs"][encode({"k": "Y"})]
    wait_next_second(client)

    # phase 4: drop an index, delete and update many
    db.announcements.drop_index("region_1")
    db.announcements.delete_many({"views": {"$gt": 0}})
    db.businesses.update_many({}, {"$inc": {"employees": 100}})
    w.marks["t4"] = newest_ts(client).time
    w.snaps["t4"] = snapshot(db)
    w.slices.append(take_slice(client, w.policy, w.store, w.clock.next()))
    wait_next_second(client)

    # phase 5: later writes, so the last phase's second is followed by more history
    db.contents.delete_many({"rev": 3})
    db.announcements.insert_one({"_id": "late"})
    w.slices.append(take_slice(client, w.policy, w.store, w.clock.next()))
    return w


def _restore(w, at, target: str, **kw):
    return restore_to_time(w.client, {"local": w.store}, w.policy, "mongodb", at, target_db=target,
                           workdir=w.root / "work", safety_dir=w.root / "safety", **kw)


def _second(t: int) -> datetime:
    return datetime.fromtimestamp(t, timezone.utc)


def test_slices_chain_exactly(workload):
    slices = [s.manifest for s in workload.slices]
    assert all(s.status == "archived" for s in workload.slices), [s.message for s in workload.slices]
    assert slices[0].previous_id is None and slices[0].details["started_from"] == workload.fulls[0].backup_id
    assert slices[0].consistent_point["start"] == workload.fulls[0].consistent_point["end"]
    for prev, cur in zip(slices, slices[1:]):
        assert cur.previous_id == prev.backup_id
        assert cur.consistent_point["start"] == prev.consistent_point["end"]  # no gap, no overlap
        assert cur.details["chain_id"] == slices[0].details["chain_id"]
    assert sum(s.counts["entries"] for s in slices) > 100
    state = load_chain(Catalog({"local": workload.store}), "critical_data", "mongodb")
    assert not state.holes and len(state.segments) == 1


@pytest.mark.parametrize("mark, base", [("t1", 0), ("t2", 1), ("t4", 1)])
def test_restore_to_three_times_gives_the_state_at_each(workload, pitr_client, mark, base):
    target = f"{workload.name}_{mark}"
    result = _restore(workload, _second(workload.marks[mark]), target)
    assert result.base_backup == workload.fulls[base].backup_id  # the newest full backup at or before T
    assert result.mode == "whole_second" and result.replayed_entries > 0
    got = snapshot(pitr_client[target])
    assert_same(got, workload.snaps[mark], f"restore to {mark}")
    assert "statistics" not in pitr_client[target].list_collection_names()  # not protected by critical_data
    assert result.validation["ok"] is True


def test_whole_second_includes_every_write_of_that_second_exact_timestamp_stops_at_the_entry(workload, pitr_client):
    x = workload.marks["x"]  # X and Y were written in the same second (asserted by the fixture)
    # the user's "14:30:00" means every write made during 14:30:00 (a one-second-short replay loses X and Y)
    _restore(workload, _second(x.time), f"{workload.name}_sec")
    assert_same(snapshot(pitr_client[f"{workload.name}_sec"]), workload.snaps["xy"], "whole second")
    # a time within the second means the same whole second
    _restore(workload, _second(x.time) + timedelta(milliseconds=700), f"{workload.name}_ms")
    assert_same(snapshot(pitr_client[f"{workload.name}_ms"]), workload.snaps["xy"], "whole second (ms given)")
    # an exact Timestamp replays up to and including exactly that entry
    result = _restore(workload, x, f"{workload.name}_x")
    assert result.mode == "exact"
    assert_same(snapshot(pitr_client[f"{workload.name}_x"]), workload.snaps["x_only"], "exact Timestamp of X")
    # the second before holds neither
    _restore(workload, _second(x.time - 1), f"{workload.name}_before")
    assert_same(snapshot(pitr_client[f"{workload.name}_before"]), workload.snaps["t2"], "second before X and Y")
    assert workload.snaps["x_only"] != workload.snaps["xy"] != workload.snaps["t2"]


def _target_with_data(client, name):
    db = client[name]
    db.announcements.insert_many([{"_id": i, "mine": True} for i in range(5)])
    db.keepme.insert_one({"_id": 1})
    return snapshot(db, ("announcements", "businesses", "contents", "keepme"))


@pytest.mark.parametrize("when", ["before_first_full", "future"])
def test_time_outside_the_window_is_refused_with_the_window_and_target_untouched(workload, pitr_client, when):
    target = f"{workload.name}_refused_{when}"
    before = _target_with_data(pitr_client, target)
    first_end = workload.fulls[0].consistent_point["end"]["t"]
    at = _second(first_end - 30) if when == "before_first_full" else datetime.now(timezone.utc) + timedelta(hours=1)
    window = load_chain(Catalog({"local": workload.store}), "critical_data", "mongodb").current()
    with pytest.raises(RestoreRefused) as info:
        _restore(workload, at, target, drop=True)
    text = str(info.value)
    assert "outside the restorable window; can restore to any second between" in text
    assert f"between {window.as_dict()['from']} and {window.as_dict()['to']}" in text
    assert window.as_dict()["from"] == _second(first_end).strftime("%Y-%m-%dT%H:%M:%SZ")
    assert ("before the consistent point of the oldest full backup" if when != "future" else "after the newest archived") in text
    assert snapshot(pitr_client[target], ("announcements", "businesses", "contents", "keepme")) == before
    assert not (workload.root / "safety").exists() or not any((workload.root / "safety").rglob(f"*{target}*"))


def test_a_failed_replay_rolls_the_target_back(workload, pitr_server):
    """The base restore succeeds, the slice replay fails (the server refuses an update): the
    target must be exactly as it was before, restored from the safety backup."""
    import pymongo

    target = f"{workload.name}_rollback"
    admin = pitr_server.client()
    before = _target_with_data(admin, target)
    client = pymongo.MongoClient(pitr_server.uri, appname="pitr-rollback-test")
    admin.admin.command("configureFailPoint", "failCommand", mode={"times": 1},
                        data={"failCommands": ["update"], "errorCode": 2, "appName": "pitr-rollback-test"})
    try:
        with pytest.raises(RestoreError) as info:
            restore_to_time(client, {"local": workload.store}, workload.policy, "mongodb", _second(workload.marks["t4"]),
                            target_db=target, drop=True, workdir=workload.root / "work", safety_dir=workload.root / "safety")
    finally:
        admin.admin.command("configureFailPoint", "failCommand", mode="off")
        client.close()
    assert "point-in-time replay" in str(info.value) and "rolled back" in str(info.value)
    assert snapshot(admin[target], ("announcements", "businesses", "contents", "keepme")) == before
    admin.close()
