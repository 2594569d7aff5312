"""Retention over a 200-backup, 400-day synthetic history (see conftest): exactly what is kept, and why."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

from synthetic_history import DAY, FULLS, HOUR, NOW, RULES, write

from backup_dr.core.artifacts.layout import ROOT
from backup_dr.core.catalog import Catalog
from backup_dr.core.retention import execute_prune, plan_prune
from backup_dr.core.stores.local import LocalStore


def tree(root: Path) -> dict[str, str]:
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest() for p in root.rglob("*") if p.is_file()}


def expected_full_keep() -> set[int]:
    """Indexes of the fulls the rules keep, derived from the rules' text, not from the code."""
    within = {i for i, t in enumerate(FULLS) if t >= NOW - 90 * DAY}
    newest_per_month: dict[str, int] = {}
    for i, t in enumerate(FULLS):  # ascending: the last one written per month wins
        newest_per_month[t.strftime("%Y-%m")] = i
    monthly = {newest_per_month[m] for m in sorted(newest_per_month)[-6:]}
    pitr_base = {61}  # newest full ending (id + 1 h) at or before the start of slice 9 (NOW-91d+1h)
    return within | monthly | pitr_base


def test_history_is_what_the_rules_say():
    # the fixture's arithmetic, checked once, so the expectations below mean what they claim
    assert len(FULLS) == 80 and FULLS[61] == NOW - 95 * DAY and FULLS[62] == NOW - 90 * DAY
    assert FULLS[61].strftime("%Y-%m-%d") == "2026-03-17" and FULLS[62].strftime("%Y-%m") == "2026-03"
    keep = expected_full_keep()
    assert len(keep) == 21 and 61 in keep and 60 not in keep


def test_plan_keeps_exactly_what_each_rule_names(history):
    store, ids = history
    before = tree(store.root)
    plan = plan_prune([store], RULES, now=NOW)
    assert tree(store.root) == before  # the plan is the dry run: nothing deleted, nothing written

    action = {d.backup_id: d.action for d in plan.decisions}
    reasons = {d.backup_id: d.reasons for d in plan.decisions}
    assert len(action) == 200
    fulls, slices, rdbs = ids["full"], ids["oplog"], ids["rdb"]
    assert {i for i, b in enumerate(fulls) if action[str(b)] == "keep"} == expected_full_keep()
    assert {j for j, b in enumerate(slices) if action[str(b)] == "keep"} == set(range(5, 100))
    assert {k for k, b in enumerate(rdbs) if action[str(b)] == "keep"} == {17, 19}
    assert len(plan.deletions()) == 59 + 5 + 18

    assert reasons[str(fulls[61])] == (f"base of the PITR chain {slices[0]}… (oldest kept slice {slices[9]})",)
    assert all(r[0].startswith("PITR chain: replays from base") for r in (reasons[str(slices[j])] for j in range(5, 9)))
    assert reasons[str(slices[9])] == ("within 3 months",)
    assert reasons[str(rdbs[19])] == ("newest rdb backup of operational_data/redis_cache in this store",)
    assert reasons[str(rdbs[17])] == ("newest verified rdb backup of operational_data/redis_cache (verified in local)",)
    assert reasons[str(rdbs[15])] == ("older than 1 month and kept by no rule",)
    assert any(r.startswith("gfs monthly 2026-01") for r in reasons[str(fulls[max(i for i in expected_full_keep() if FULLS[i].month == 1)])])

    text = plan.render()
    assert f"DELETE {fulls[0]}" in text and f"keep   {fulls[61]}" in text
    assert "store local: delete 82" in text


def test_execute_deletes_exactly_the_plan_and_the_newest_good_backup_survives(history):
    store, ids = history
    plan = plan_prune([store], RULES, now=NOW)
    result = execute_prune(plan, [store])
    assert len(result["deleted"]) == 82 and result["locked"] == result["failed"] == []

    kept = {d.backup_id for d in plan.kept()}
    assert {e.backup_id for e in Catalog([store]).list(include_incomplete=True)} == kept
    assert str(ids["rdb"][17]) in kept and str(ids["rdb"][19]) in kept  # old, but the newest verified / newest
    for d in plan.deletions():  # nothing left behind, not even empty directories
        assert not (store.root / d.backup_id.replace(".", "/")).exists()
    day_dirs = [p for p in (store.root / ROOT).glob("*/*/*/*/*") if p.is_dir()]
    assert all(any(p.iterdir()) for p in day_dirs)
    assert plan_prune([store], RULES, now=NOW).deletions() == []  # stable: a second run deletes nothing


def test_incomplete_backups_are_garbage_only_after_the_grace_period(history):
    store, _ = history
    old = write(store, "critical_data", "mongodb", "full", NOW - 10 * DAY + HOUR, commit=False)
    fresh = write(store, "critical_data", "mongodb", "full", NOW - 2 * HOUR, commit=False)
    for bid, age in ((old, 3 * DAY), (fresh, HOUR)):
        for p in store.path(bid.prefix).iterdir():
            os.utime(p, ((NOW - age).timestamp(),) * 2)
    crashed = store.path("backup-dr-v1/critical_data/mongodb/2026/06/01/critical_data.mongodb.full.20260601T000000Z")
    crashed.mkdir(parents=True)
    (crashed / ".tmp-lock").write_bytes(b"")
    (crashed / ".tmp-0123456789ab-dump.archive.gz").write_bytes(b"partial")  # crashed before any file completed
    for p in crashed.iterdir():
        os.utime(p, ((NOW - 5 * DAY).timestamp(),) * 2)

    plan = plan_prune([store], RULES, now=NOW)
    action = {d.backup_id: (d.action, d.reasons[0]) for d in plan.decisions}
    assert action[str(old)] == ("delete_incomplete", "incomplete (no manifest), last written 3d ago (grace 1d)")
    assert action[str(fresh)][0] == "keep_incomplete"
    assert action[crashed.name][0] == "delete_incomplete"
    execute_prune(plan, [store])
    assert not store.path(old.prefix).exists() and not crashed.exists()
    assert (store.path(fresh.prefix) / "data.bin").exists()


def test_unknown_class_is_never_pruned_and_each_store_keeps_its_own_newest(history, tmp_path):
    store, ids = history
    adhoc = write(store, "adhoc_export", "mongodb", "full", NOW - 300 * DAY)
    other = LocalStore(tmp_path / "nfs", name="nfs")
    rdbs = [write(other, "operational_data", "redis_cache", "rdb", t) for t in (NOW - 240 * DAY + 2 * k * DAY for k in range(5))]

    plan = plan_prune([store, other], RULES, now=NOW)
    by = {(d.store, d.backup_id): d for d in plan.decisions}
    assert by[("local", str(adhoc))].reasons == ("class 'adhoc_export' is not in the policy: never pruned automatically",)
    assert {b for (s, b), d in by.items() if s == "nfs" and d.action == "keep"} == {str(rdbs[-1])}
    assert len(plan.deletions("nfs")) == 4 and len(plan.deletions("local")) == 82
