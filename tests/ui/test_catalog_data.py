"""The catalog page's data, assembled by plain functions from real stores (local, moto S3, GCS
emulator) holding backups written through ArtifactWriter, and the saved health report."""

from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone

import pytest

from backup_dr.core.artifacts.manifest import parse_iso
from backup_dr.core.health import load_latest_report
from backup_dr.core.policy_model import StoreSpec
from backup_dr.core.stores.factory import open_store
from backup_dr.ui.data import CatalogInputs, build_catalog, class_view

from .conftest import LEAKED_SECRET


@pytest.fixture(scope="module")
def inputs(catalog_history) -> CatalogInputs:
    return CatalogInputs(policy=catalog_history.policy, stores=dict(catalog_history.stores),
                         report=load_latest_report(catalog_history.stores["local"]))


@pytest.fixture(scope="module")
def data(inputs):
    return build_catalog(inputs)


def source(data, cls: str, key: str) -> dict:
    block = class_view(data, cls)["class"]
    return next(s for s in block["sources"] if s["key"] == key)


def test_classes_and_sources_follow_the_policy(data, catalog_history):
    policy = catalog_history.policy
    # every class of the policy, the tightest RPO first
    assert [c["name"] for c in data["classes"]] == ["critical_data", "operational_data", "application_code", "configuration"]
    assert sorted(c["name"] for c in data["classes"]) == sorted(policy.classes)
    keys = {c["name"]: [s["key"] for s in c["sources"]] for c in data["classes"]}
    assert keys == {
        "critical_data": ["mongodb"],
        "operational_data": ["mongodb", "redis_cache", "app_logs", "app_uploads"],
        "configuration": ["app_config", "mongodb_schema", "airflow_db"],
        "application_code": ["app_repository"],
    }
    assert class_view(data, "no_such_class") is None


def test_newest_backup_size_stores_and_age(data, catalog_history):
    crit = source(data, "critical_data", "mongodb")
    newest = catalog_history.newest("critical_data/mongodb")
    assert crit["newest"]["backup_id"] == newest.backup_id
    assert crit["newest"]["size"] == newest.total_size  # data files only, as hashed into the manifest
    assert crit["newest"]["files"] == 2
    assert crit["newest"]["complete_in"] == ["local", "s3", "gcs"]
    assert crit["backups"] == 6
    expected_age = (datetime.now(timezone.utc) - newest.id.stamp).total_seconds()
    assert abs(crit["age"]["seconds"] - expected_age) < 120
    assert crit["age"]["rpo_seconds"] == 4 * 3600
    # older copies went to the local store only
    assert [r["complete_in"] for r in crit["table"]][2:] == [["local"]] * 4


@pytest.mark.parametrize("cls,key,color", [
    ("critical_data", "mongodb", "green"),          # 1h of 4h
    ("operational_data", "mongodb", "amber"),       # 20h of 24h: past 75% of the RPO
    ("operational_data", "redis_cache", "red"),     # 30h of 24h: RPO breached
    ("operational_data", "app_logs", "red"),        # no backup at all
    ("operational_data", "app_uploads", "green"),   # 2h of 24h
    ("configuration", "app_config", "green"),       # 1d of 7d
    ("configuration", "mongodb_schema", "green"),
    ("application_code", "app_repository", "green"),  # on deploy: no age limit
])
def test_age_vs_rpo_colour(data, cls, key, color):
    assert source(data, cls, key)["age"]["color"] == color


def test_missing_backup_is_explicit(data):
    logs = source(data, "operational_data", "app_logs")
    assert logs["newest"] is None and logs["backups"] == 0 and logs["history"] == [] and logs["table"] == []
    assert [s["color"] for s in logs["stores"]] == ["red", "red"]
    assert logs["color"] == "red"


def test_verification_state_of_each_backup(data):
    crit = source(data, "critical_data", "mongodb")
    assert crit["newest"]["verification"] == {"color": "green", "label": "verified"}
    stores = crit["newest"]["stores"]
    assert (stores["s3"]["verify_method"], stores["s3"]["verified"]) == ("read for a restore drill", True)
    assert (stores["gcs"]["verify_method"], stores["gcs"]["verified"]) == ("replication read-back", True)
    assert (stores["local"]["verify_method"], stores["local"]["verified"]) == ("re-hash", True)
    # replicated, so every copy was read back: verified, not "unverified" (issue 14 item 10)
    assert crit["table"][1]["verification"]["label"] == "verified"
    assert crit["table"][1]["stores"]["local"]["verify_method"] == "read while replicating"
    assert crit["table"][2]["verification"]["label"] == "unverified"  # local only, never checked
    uploads = source(data, "operational_data", "app_uploads")  # local copy failed its re-hash, the S3 copy is good
    assert uploads["newest"]["verification"] == {"color": "amber", "label": "a copy failed"}
    assert uploads["newest"]["stores"]["local"]["verified"] is False and uploads["newest"]["stores"]["s3"]["verified"] is True
    assert uploads["color"] == "amber"


def test_last_drill_against_rto(data):
    crit = source(data, "critical_data", "mongodb")["last_drill"]
    # a later plain "verify" record of the same backup does not hide the drill
    assert crit["record"]["restore_seconds"] == 42.5 and crit["record"]["store"] == "s3" and crit["record"]["ok"] is True
    assert (crit["color"], crit["rto_seconds"]) == ("green", 1800)
    ops = source(data, "operational_data", "mongodb")["last_drill"]
    assert (ops["record"]["restore_seconds"], ops["color"]) == (6000, "amber")  # > 75% of the 2h RTO
    redis = source(data, "operational_data", "redis_cache")["last_drill"]
    assert redis["record"]["ok"] is False and redis["color"] == "red" and "FAILED" in redis["reason"]
    never = source(data, "configuration", "app_config")["last_drill"]
    assert never["record"] is None and never["color"] == "amber" and never["reason"] == "no restore drill on record"


def test_history_sizes_and_durations_come_from_the_manifests(data, catalog_history):
    history = source(data, "critical_data", "mongodb")["history"]
    manifests = list(reversed(catalog_history.manifests["critical_data/mongodb"]))  # oldest first
    assert [p["backup_id"] for p in history] == [m.backup_id for m in manifests]
    assert [p["size"] for p in history] == [m.total_size for m in manifests]
    for point, m in zip(history, manifests):
        expected = (parse_iso(m.finished_at) - parse_iso(m.started_at)).total_seconds()
        assert point["duration_seconds"] == round(expected, 3)
        assert point["duration_seconds"] >= 0


def test_pitr_window_from_the_health_report_and_na_elsewhere(data, catalog_history):
    pitr = source(data, "critical_data", "mongodb")["pitr"]
    assert pitr["available"] and pitr["configured"] and pitr["color"] == "green" and pitr["status"] == "ok"
    assert parse_iso(pitr["to"]) == catalog_history.built_at - timedelta(minutes=5)
    assert parse_iso(pitr["from"]) == catalog_history.built_at - timedelta(hours=21)
    ops = source(data, "operational_data", "mongodb")["pitr"]
    assert (ops["applicable"], ops["configured"], ops["available"], ops["text"]) == (True, False, False, "n/a")
    redis = source(data, "operational_data", "redis_cache")["pitr"]
    assert (redis["applicable"], redis["text"], redis["color"]) == (False, "n/a", "grey")


def test_pitr_lookup_hook_takes_precedence(inputs, catalog_history):
    now = datetime.now(timezone.utc)
    seen = []

    def lookup(cls, key):
        seen.append((cls, key))
        if (cls, key) == ("critical_data", "mongodb"):
            return {"from": (now - timedelta(hours=30)).isoformat(), "to": (now - timedelta(hours=6)).isoformat()}
        return None

    data = build_catalog(CatalogInputs(policy=inputs.policy, stores=inputs.stores, report=inputs.report, pitr_lookup=lookup))
    pitr = source(data, "critical_data", "mongodb")["pitr"]
    # no status word: judged by lag; 6h behind now is past the 4h RPO
    assert pitr["available"] and pitr["color"] == "red" and abs(pitr["lag_seconds"] - 6 * 3600) < 120
    assert ("critical_data", "mongodb") in seen and ("operational_data", "mongodb") in seen


def test_store_freshness_per_source(data):
    crit = source(data, "critical_data", "mongodb")
    assert [(s["store"], s["color"]) for s in crit["stores"]] == [("local", "green"), ("s3", "green"), ("gcs", "green")]
    redis = source(data, "operational_data", "redis_cache")
    assert [(s["store"], s["color"]) for s in redis["stores"]] == [("local", "red"), ("s3", "amber")]
    assert "no complete backup" in redis["stores"][1]["message"]


def test_class_and_page_colours_roll_up(data):
    colors = {c["name"]: c["color"] for c in data["classes"]}
    assert colors == {"critical_data": "green", "operational_data": "red", "configuration": "amber",
                      "application_code": "amber"}  # configuration/application_code: never drilled
    assert data["color"] == "red"


def test_stores_and_health_report(data, catalog_history):
    stores = {s["name"]: s for s in data["stores"]}
    assert all(s["reachable"] and s["color"] == "green" for s in stores.values())
    assert stores["s3"]["location"] == f"s3://{catalog_history.env['BACKUP_DR_S3_BUCKET']}/backup-dr"
    assert stores["local"]["usage"]["objects"] > 0  # from the health report
    report = data["health_report"]
    assert report["status"] == "critical" and report["color"] == "red"
    assert any("operational_data/app_logs" in r for r in report["reasons"])
    redis = source(data, "operational_data", "redis_cache")
    assert redis["health"]["status"] == "critical" and all("operational_data/redis_cache:" in r for r in redis["health"]["reasons"])


def test_stale_health_report_is_flagged(inputs):
    old = {**inputs.report, "generated_at": (datetime.now(timezone.utc) - timedelta(hours=5)).isoformat()}
    data = build_catalog(CatalogInputs(policy=inputs.policy, stores=inputs.stores, report=old))
    assert data["health_report"]["stale"] is True and data["health_report"]["age_seconds"] >= 5 * 3600
    assert build_catalog(inputs)["health_report"]["stale"] is False


def test_no_health_report_is_not_an_error(inputs):
    data = build_catalog(CatalogInputs(policy=inputs.policy, stores=inputs.stores, report=None))
    assert data["health_report"] is None
    crit = source(data, "critical_data", "mongodb")
    assert crit["health"] is None and crit["pitr"]["text"] == "n/a" and crit["newest"] is not None


def test_secrets_never_reach_the_page_data(inputs, data):
    text = json.dumps(data)
    assert LEAKED_SECRET not in text
    redis = source(data, "operational_data", "redis_cache")
    assert redis["last_drill"]["record"]["problems"] == [
        "scratch restore failed: cannot connect to redis://default:***@10.0.0.7:6379/0"]
    broken = build_catalog(CatalogInputs(policy=inputs.policy, stores={"local": inputs.stores["local"]},
                                         store_errors={"s3": "cannot reach https://AKIA0TEST:s3cr3t-key@s3.example/ password=pw123"}))
    s3 = next(s for s in broken["stores"] if s["name"] == "s3")
    assert "s3cr3t-key" not in json.dumps(broken) and "pw123" not in json.dumps(broken)
    assert s3["error"] == "cannot reach https://AKIA0TEST:***@s3.example/ password=***"


def test_unreachable_store_is_shown_and_the_rest_still_renders(inputs, catalog_history, s3_server):
    missing = open_store(StoreSpec(name="s3", type="s3", bucket="ui-no-such-bucket", prefix="backup-dr", conn_id="backup_s3"))
    data = build_catalog(CatalogInputs(policy=inputs.policy, stores={**inputs.stores, "s3": missing}, report=inputs.report))
    s3 = next(s for s in data["stores"] if s["name"] == "s3")
    assert not s3["reachable"] and s3["color"] == "red" and "ui-no-such-bucket" in s3["error"] and "does not exist" in s3["error"]
    crit = source(data, "critical_data", "mongodb")
    assert crit["newest"]["backup_id"] == catalog_history.newest("critical_data/mongodb").backup_id
    assert crit["newest"]["complete_in"] == ["local", "gcs"]
    chip = next(s for s in crit["stores"] if s["store"] == "s3")
    assert chip["color"] == "red" and chip["message"].startswith("unreachable")
    assert crit["age"]["color"] == "green" and crit["color"] == "amber"  # redundancy degraded, RPO still met
