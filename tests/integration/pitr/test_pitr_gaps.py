"""Gaps in the PITR chain on a real SecantusDB: a slice missing from the store, an oplog that
rolled over past the chain's end, no full backup to start from. Each is detected, reported
once (marker + ``new_gap``), asks for a full backup, and shows in the health report."""

from __future__ import annotations

from datetime import datetime, timezone

import pytest

from backup_dr.core.catalog import Catalog
from backup_dr.core.errors import RestoreRefused
from backup_dr.core.health import check_health
from backup_dr.core.pitr import known_breaks, load_chain, pitr_health_check, restore_to_time
from backup_dr.core.pitr.points import second_iso
from backup_dr.core.stores.local import LocalStore

from pitr_support import Clock, full_backup, newest_ts, policy_for, seed, take_slice, wait_next_second


def _health_row(policy, store):
    report = check_health(policy, {"local": store}, extra_checks=[pitr_health_check])
    return report, report.classes["critical_data"]["sources"]["mongodb"]["pitr"]


def _write_and_slice(client, db, policy, store, clock, tag):
    db.contents.insert_one({"_id": tag, "body": tag})
    wait_next_second(client)
    return take_slice(client, policy, store, clock.next())


def test_missing_slice_is_detected_once_breaks_the_window_and_a_new_full_backup_heals_it(pitr_client, dbname, tmp_path):
    client, db, policy = pitr_client, pitr_client[dbname], policy_for(dbname)
    store, clock = LocalStore(tmp_path / "backups", name="local"), Clock()
    seed(db, 60)
    f1 = full_backup(client, policy, store, clock.next())
    s1, s2, s3 = (_write_and_slice(client, db, policy, store, clock, t) for t in ("a", "b", "c"))
    hole_second = s2.manifest.details["last_ts"]["t"]  # the write only the lost slice holds
    store.delete_tree(s2.manifest.id.prefix)

    r4 = _write_and_slice(client, db, policy, store, clock, "d")
    assert r4.gap and r4.new_gap and r4.needs_full_backup, r4.as_dict()
    assert r4.status == "archived_with_gap" and r4.backup_id is not None  # the chain still goes on
    assert r4.manifest.previous_id == s3.backup_id
    [gap] = [g for g in r4.gaps if g["new"]]
    assert gap["kind"] == "missing_slice" and s2.backup_id in gap["reason"]
    assert r4.trigger_run_id == f"pitr_gap__missing_slice_{s1.manifest.consistent_point['end']['t']}_{s1.manifest.consistent_point['end']['i']}"
    assert list(known_breaks({"local": store}, "critical_data", "mongodb")) == [gap["marker"]]

    r5 = _write_and_slice(client, db, policy, store, clock, "e")  # reported once, not on every run
    assert not r5.gap and not r5.new_gap and not r5.needs_full_backup and r5.status == "archived"

    report, row = _health_row(policy, store)
    assert row["state"] == "broken" and row["status"] == "critical", row
    assert row["broken_at"] == second_iso(s1.manifest.consistent_point["end"]["t"])
    assert row["to"] == second_iso(s1.manifest.consistent_point["end"]["t"] - 1)  # replay from f1 stops at the hole
    assert row["base_backup"] == f1.backup_id
    assert any("critical_data/mongodb: PITR chain BROKEN since the newest full backup" in r for r in report.reasons)
    with pytest.raises(RestoreRefused, match="falls in or after a gap of the oplog chain"):
        restore_to_time(client, {"local": store}, policy, "mongodb", datetime.fromtimestamp(hole_second, timezone.utc),
                        target_db=f"{dbname}_hole", workdir=tmp_path / "w", safety_dir=tmp_path / "s")
    assert f"{dbname}_hole" not in client.list_database_names()

    f2 = full_backup(client, policy, store, clock.next())  # what the DAG triggers
    r6 = _write_and_slice(client, db, policy, store, clock, "f")
    assert r6.status == "archived" and not r6.gap
    report, row = _health_row(policy, store)
    assert row["status"] == "healthy" and row["state"] == "ok", (row, report.reasons)
    assert row["from"] == second_iso(f2.consistent_point["end"]["t"]) and row["base_backup"] == f2.backup_id
    assert row["to"] == second_iso(r6.manifest.consistent_point["end"]["t"] - 1)
    assert row["chain_slices"] >= 1 and row["holes"]  # the old hole stays on record


def test_oplog_rollover_is_a_gap_until_a_new_full_backup_starts_a_new_chain(tiny_oplog_server, tmp_path):
    client = tiny_oplog_server.client()
    name = "pitr_rollover"
    db, policy = client[name], policy_for(name)
    store, clock = LocalStore(tmp_path / "backups", name="local"), Clock()
    seed(db, 50)
    full_backup(client, policy, store, clock.next())
    s1 = take_slice(client, policy, store, clock.next())
    assert s1.status == "archived"
    db.announcements.insert_many([{"_id": 10_000 + i, "title": "burst"} for i in range(1500)])  # the oplog keeps 300
    oldest = client.local["oplog.rs"].find_one({}, sort=[("$natural", 1)])["ts"]
    end1 = s1.manifest.consistent_point["end"]
    assert (oldest.time, oldest.inc) > (end1["t"], end1["i"]), "precondition: the oplog rolled past the slice"

    r2 = take_slice(client, policy, store, clock.next())
    assert (r2.status, r2.gap, r2.new_gap, r2.needs_full_backup, r2.backup_id) == ("gap", True, True, True, None), r2.as_dict()
    assert r2.gaps[0]["kind"] == "oplog_rollover" and "the oplog rolled over" in r2.gaps[0]["reason"]
    assert r2.trigger_run_id == f"pitr_gap__oplog_rollover_{end1['t']}_{end1['i']}"
    assert [e.bid.kind for e in Catalog({"local": store}).list()].count("oplog") == 1  # nothing half-written
    report, row = _health_row(policy, store)
    assert row["state"] == "broken" and row["broken_at"] == second_iso(end1["t"])

    r3 = take_slice(client, policy, store, clock.next())  # still broken: no new alert, same trigger
    assert (r3.gap, r3.new_gap, r3.needs_full_backup, r3.trigger_run_id) == (True, False, True, r2.trigger_run_id)

    wait_next_second(client)
    f2 = full_backup(client, policy, store, clock.next())
    # the new chain must hold a whole second before the window reports it (whole-second rule): until then
    # the only range restorable to whole seconds is the old one, which is what health would rightly show
    wait_next_second(client)
    db.contents.insert_one({"_id": "after"})
    r4 = take_slice(client, policy, store, clock.next())
    assert r4.status == "archived" and not r4.gap and not r4.needs_full_backup, r4.as_dict()
    assert r4.manifest.previous_id is None and r4.manifest.details["chain_id"] == f2.backup_id
    assert r4.manifest.consistent_point["start"] == f2.consistent_point["end"]
    report, row = _health_row(policy, store)
    assert row["state"] == "ok" and row["base_backup"] == f2.backup_id, (row, report.reasons)
    state = load_chain(Catalog({"local": store}), "critical_data", "mongodb")
    assert len(state.segments) == 2 and not state.holes  # two chains, the second started after the gap
    assert newest_ts(client) >= state.tip.start
    client.close()


def test_no_full_backup_yet_asks_for_one_and_invents_no_start(pitr_client, dbname, tmp_path):
    policy, store = policy_for(dbname), LocalStore(tmp_path / "backups", name="local")
    seed(pitr_client[dbname], 10)
    r = take_slice(pitr_client, policy, store, Clock().next())
    assert (r.status, r.gap, r.needs_full_backup, r.backup_id) == ("no_full_backup", False, True, None)
    assert "no full backup of critical_data/mongodb" in r.message and r.trigger_run_id.startswith("pitr_first_full__")
    assert not list(store.list())
    report, row = _health_row(policy, store)
    assert row["state"] == "no_full_backup" and row["status"] == "critical"
