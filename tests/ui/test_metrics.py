"""``/backup-dr/metrics`` as Airflow's API server serves it: auth, the text format, and values that
are the catalog page's own (the backup history of ``catalog_history``, read from real stores)."""

from __future__ import annotations

import time
from datetime import datetime, timezone

import pytest
from prometheus_client.parser import text_string_to_metric_families

from backup_dr.core.health import DRILL_STALE_AFTER, load_latest_report
from backup_dr.core.policy_model import StoreSpec
from backup_dr.core.stores.factory import open_store
from backup_dr.ui.data import CatalogInputs, build_catalog
from backup_dr.ui.metrics import METRICS, render

from .conftest import LEAKED_SECRET

CRIT = {"class": "critical_data", "source": "mongodb", "kind": "full"}


def parse(text: str) -> dict[str, dict[frozenset, float]]:
    """{metric name: {frozenset(labels.items()): value}} (the text format read by prometheus_client's parser)."""
    out: dict[str, dict[frozenset, float]] = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            out.setdefault(s.name, {})[frozenset(s.labels.items())] = s.value
    return out


def value(series, name: str, **labels) -> float:
    return series[name][frozenset(labels.items())]


@pytest.fixture
def scrape(client, mint_token):
    def get():
        started = time.time()
        r = client.get("/backup-dr/metrics", headers={"Authorization": f"Bearer {mint_token()}"})
        assert r.status_code == 200, r.text
        return r, parse(r.text), started, time.time()

    return get


def test_metrics_need_airflow_auth(client, mint_token):
    assert client.get("/backup-dr/metrics").status_code == 401
    assert client.get("/backup-dr/metrics", headers={"Authorization": "Bearer not-a-jwt"}).status_code == 403


def test_exposition_format_and_no_secrets(scrape):
    r, series, _, _ = scrape()
    assert r.headers["content-type"].startswith("text/plain; version=0.0.4")
    assert r.headers["cache-control"] == "no-store"
    assert LEAKED_SECRET not in r.text
    assert set(series) <= set(METRICS), set(series) - set(METRICS)
    assert "# HELP backup_dr_backup_age_seconds " in r.text and "# TYPE backup_dr_backup_age_seconds gauge" in r.text
    for name, samples in series.items():  # every series carries exactly the labels METRICS names
        assert all({k for k, _ in labels} == set(METRICS[name][0]) for labels in samples), name


def test_backup_age_per_store_from_the_backup_time(scrape, catalog_history):
    _, series, t0, t1 = scrape()
    newest = catalog_history.newest("critical_data/mongodb")
    taken = newest.id.stamp.timestamp()
    for store in ("local", "s3", "gcs"):
        assert value(series, "backup_dr_backup_timestamp_seconds", **CRIT, store=store) == taken
        age = value(series, "backup_dr_backup_age_seconds", **CRIT, store=store)
        assert t0 - taken - 1 <= age <= t1 - taken + 1  # computed at scrape time, not when the cache was built
    redis = {"class": "operational_data", "source": "redis_cache", "kind": "rdb"}
    assert value(series, "backup_dr_backup_age_seconds", **redis, store="local") > 30 * 3600 - 5
    assert frozenset({**redis, "store": "s3"}.items()) not in series["backup_dr_backup_age_seconds"]  # s3 holds none
    logs = {"class": "operational_data", "source": "app_logs", "kind": "files"}
    assert value(series, "backup_dr_backups", **logs) == 0
    assert not [k for k in series["backup_dr_backup_age_seconds"] if ("source", "app_logs") in k]
    assert value(series, "backup_dr_backups", **CRIT) == 6
    schema = {"class": "configuration", "source": "mongodb", "kind": "schema"}
    assert value(series, "backup_dr_backup_age_seconds", **schema, store="gcs") > 25 * 3600 - 5


def test_objectives_sizes_durations_and_verification(scrape, catalog_history):
    _, series, _, _ = scrape()
    policy = catalog_history.policy
    for name, cls in policy.classes.items():
        assert value(series, "backup_dr_rto_target_seconds", **{"class": name}) == cls.objective.rto.total_seconds()
    assert value(series, "backup_dr_rpo_target_seconds", **{"class": "critical_data"}) == 4 * 3600
    assert frozenset({"class": "application_code"}.items()) not in series["backup_dr_rpo_target_seconds"]  # on deploy
    newest, previous = catalog_history.manifests["critical_data/mongodb"][:2]
    assert value(series, "backup_dr_last_backup_size_bytes", **CRIT) == newest.total_size
    assert value(series, "backup_dr_previous_backup_size_bytes", **CRIT) == previous.total_size
    duration = (datetime.fromisoformat(newest.finished_at) - datetime.fromisoformat(newest.started_at)).total_seconds()
    assert value(series, "backup_dr_last_backup_duration_seconds", **CRIT) == pytest.approx(duration, abs=0.01)
    uploads = {"class": "operational_data", "source": "app_uploads", "kind": "files"}
    # the local copy failed its re-hash, the S3 copy is good: one bad copy, not a failed backup
    assert value(series, "backup_dr_last_backup_verification_failed", **uploads) == 0
    assert value(series, "backup_dr_last_backup_bad_copies", **uploads) == 1
    assert value(series, "backup_dr_last_backup_verification_failed", **CRIT) == 0
    assert value(series, "backup_dr_last_backup_bad_copies", **CRIT) == 0


def test_drills_pitr_stores_and_health(scrape, catalog_history):
    _, series, t0, t1 = scrape()
    assert value(series, "backup_dr_last_drill_restore_seconds", **CRIT) == 42.5
    assert value(series, "backup_dr_last_drill_success", **CRIT) == 1
    assert value(series, "backup_dr_last_drill_success", **{"class": "operational_data", "source": "redis_cache", "kind": "rdb"}) == 0
    assert value(series, "backup_dr_drill_stale_after_seconds") == DRILL_STALE_AFTER.total_seconds()
    built = catalog_history.built_at.timestamp()
    assert value(series, "backup_dr_pitr_window_start_timestamp_seconds", **CRIT) == built - 21 * 3600
    assert value(series, "backup_dr_pitr_window_end_timestamp_seconds", **CRIT) == built - 300
    assert t0 - built + 299 <= value(series, "backup_dr_pitr_lag_seconds", **CRIT) <= t1 - built + 301
    assert value(series, "backup_dr_pitr_slice_interval_seconds", **CRIT) == 15 * 60
    assert value(series, "backup_dr_pitr_window_available", **CRIT) == 1
    report = load_latest_report(catalog_history.stores["local"])
    for name, spec in catalog_history.policy.stores.items():
        labels = {"store": name, "type": spec.type}
        assert value(series, "backup_dr_store_up", **labels) == 1
        assert value(series, "backup_dr_store_used_bytes", **labels) == report["stores"][name]["bytes"]
        assert value(series, "backup_dr_store_usage_timestamp_seconds", **labels) == datetime.fromisoformat(
            report["generated_at"].replace("Z", "+00:00")).timestamp()
    assert value(series, "backup_dr_store_free_bytes", store="local", type="local") > 0
    for cls, block in report["classes"].items():
        states = {s: value(series, "backup_dr_health_status", **{"class": cls, "status": s}) for s in ("healthy", "warning", "critical")}
        assert states == {s: float(s == block["status"]) for s in states}, cls
    assert value(series, "backup_dr_health_report_timestamp_seconds") == datetime.fromisoformat(
        report["generated_at"].replace("Z", "+00:00")).timestamp()


def test_a_scrape_reuses_the_page_cache(client, mint_token, catalog_app_cache):
    auth = {"Authorization": f"Bearer {mint_token()}"}
    assert client.get("/backup-dr/api/catalog", headers=auth).status_code == 200
    builds = catalog_app_cache.builds
    for _ in range(3):
        r = client.get("/backup-dr/metrics", headers=auth)
        assert r.status_code == 200
    assert catalog_app_cache.builds == builds  # no store was read again
    age = value(parse(r.text), "backup_dr_catalog_cache_age_seconds")
    assert 0 <= age < catalog_app_cache.ttl


def test_unreachable_store_is_store_up_zero(catalog_env, s3_server):
    history = catalog_env
    report = load_latest_report(history.stores["local"])
    missing = open_store(StoreSpec(name="s3", type="s3", bucket="metrics-no-such-bucket", prefix="backup-dr", conn_id="backup_s3"))
    data = build_catalog(CatalogInputs(policy=history.policy, stores={**history.stores, "s3": missing}, report=report))
    series = parse(render(data, now=datetime.now(timezone.utc), cache_age=0).decode())
    assert value(series, "backup_dr_store_up", store="s3", type="s3") == 0
    assert value(series, "backup_dr_store_up", store="gcs", type="gcs") == 1
    assert frozenset({**CRIT, "store": "s3"}.items()) not in series["backup_dr_backup_age_seconds"]
    assert frozenset({**CRIT, "store": "gcs"}.items()) in series["backup_dr_backup_age_seconds"]
