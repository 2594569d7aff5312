"""Every age and every "keep/choose" decision uses when the data was CAPTURED, never the slot.

A run for the 19:00 slot that dumped at 22:15 holds 22:15 data: health, the UI and
retention must all say so (issue 14 item 8). Real ArtifactWriter backups in a LocalStore,
the shipped policy; times relative to the wall clock because the writer stamps the manifest.
"""

from __future__ import annotations

import os
from datetime import datetime, timedelta, timezone

import pytest

from backup_dr.core.artifacts.layout import BackupId
from backup_dr.core.artifacts.writer import ArtifactWriter
from backup_dr.core.health import check_health
from backup_dr.core.retention import plan_prune
from backup_dr.core.stores.local import LocalStore
from backup_dr.ui.data import CatalogInputs, build_catalog

NOW = datetime.now(timezone.utc).replace(microsecond=0)


def _full(store, policy, slot, captured):
    """A critical_data MongoDB backup of ``slot`` whose dump's consistent point is ``captured``."""
    bid = BackupId.new("critical_data", "mongodb", "full", slot)
    writer = ArtifactWriter(store, bid, source_type="mongodb", retention=policy.classes["critical_data"].retention)
    writer.begin()
    with writer.open_file("korea_public_data.archive.gz") as out:
        out.write(str(bid).encode() * 10)
    m = writer.commit(consistent_point={"end": {"t": int(captured.timestamp()), "i": 3}})
    os.utime(store.path(bid.manifest_key), (captured.timestamp() + 30,) * 2)
    return m


@pytest.fixture
def late_run(tmp_path, policy):
    """Slot 5 h ago (past the 4 h RPO) that ran late: its data was captured 10 minutes ago."""
    store = LocalStore(tmp_path / "backups", name="local")
    m = _full(store, policy, NOW - timedelta(hours=5), NOW - timedelta(minutes=10))
    return store, m


def test_the_manifest_says_when_the_data_was_captured_and_expires_from_then(late_run):
    _, m = late_run
    assert m.captured_at == NOW - timedelta(minutes=10) and m.id.stamp == NOW - timedelta(hours=5)
    assert m.expires_at == m.captured_at + timedelta(days=90)  # 3 months from the data, not the slot


def test_health_ages_a_late_run_by_its_data(late_run, policy):
    store, m = late_run
    report = check_health(policy, {"local": store}, now=NOW)
    row = report.classes["critical_data"]["sources"]["mongodb"]
    assert row["freshest_age_seconds"] == 600 and row["stores"]["local"]["age_seconds"] == 600
    assert row["recovery_point"] == m.captured_at.isoformat().replace("+00:00", "Z")
    assert not [r for r in report.reasons if "critical_data/mongodb" in r and "RPO" in r], report.reasons


def test_the_catalog_page_ages_a_late_run_by_its_data(late_run, policy):
    store, m = late_run
    data = build_catalog(CatalogInputs(policy, {"local": store}), now=NOW)
    src = next(s for c in data["classes"] if c["name"] == "critical_data" for s in c["sources"] if s["key"] == "mongodb")
    assert src["age"]["seconds"] == 600 and src["age"]["color"] == "green"
    assert src["newest"]["taken_at"] == m.captured_at.isoformat().replace("+00:00", "Z")
    assert src["newest"]["slot"] == m.id.stamp.isoformat().replace("+00:00", "Z")
    assert next(s for s in src["stores"] if s["store"] == "local")["age_seconds"] == 600


def test_retention_keeps_an_old_slot_rerun_holding_recent_data(tmp_path, policy):
    """An operator cleared and re-ran a 4-month-old slot yesterday: that backup holds yesterday's
    data and is within 3 months; an on-time backup of last week is newer by slot only."""
    store = LocalStore(tmp_path / "backups", name="local")
    rerun = _full(store, policy, NOW - timedelta(days=120), NOW - timedelta(days=1))
    week = _full(store, policy, NOW - timedelta(days=7), NOW - timedelta(days=7))
    plan = plan_prune({"local": store}, policy, now=NOW)
    decisions = {d.backup_id: d for d in plan.decisions}
    assert decisions[rerun.backup_id].action == "keep", decisions[rerun.backup_id]
    assert "within 3 months" in decisions[rerun.backup_id].reasons
    assert any(r.startswith("newest full backup") for r in decisions[rerun.backup_id].reasons)
    assert decisions[week.backup_id].action == "keep"


def test_a_late_full_backup_is_never_the_pitr_base_for_a_time_it_postdates(tmp_path, policy):
    """Full A (slot 10:00) captured at 10:01; full B ran late (slot 09:00) and captured at 12:00;
    slices chain 10:01 -> 13:00. Restoring to 11:30 must start from A (B's data is from after
    11:30); to 12:30 from B, the newest base at or before it."""
    from synthetic_history import write

    from backup_dr.core.pitr import plan_point_in_time

    store = LocalStore(tmp_path / "backups", name="local")
    day = NOW.replace(hour=0, minute=0, second=0) - timedelta(days=2)
    at = lambda h, m=0: day + timedelta(hours=h, minutes=m)  # noqa: E731
    a = write(store, "critical_data", "mongodb", "full", at(10), end=at(10, 1))
    b = write(store, "critical_data", "mongodb", "full", at(9), end=at(12))
    s1 = write(store, "critical_data", "mongodb", "oplog", at(11), start=at(10, 1), end=at(11))
    write(store, "critical_data", "mongodb", "oplog", at(13), start=at(11), end=at(13), previous_id=str(s1))
    plan = plan_point_in_time({"local": store}, policy, "mongodb", at(11, 30))
    assert plan.window.base.backup_id == str(a)
    assert plan_point_in_time({"local": store}, policy, "mongodb", at(12, 30)).window.base.backup_id == str(b)
