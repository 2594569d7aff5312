"""A real Prometheus scrapes the real endpoint: Debian ``prometheus`` on 127.0.0.1 (own port, own
storage dir, stopped by PID), the shipped scrape config and alert rules, a token obtained by
the shipped ``airflow_token.py`` from the API server's own login, and Airflow's API app (the
plugin mounted, real auth) under uvicorn. The backup is a real MongoDB dump made by the test,
replicated to S3 and GCS; Prometheus's HTTP API must return its age per store, consistent
with the time the dump captured."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
import urllib.parse
import urllib.request
from datetime import datetime, timezone
from pathlib import Path

import pytest
import yaml

from backup_dr.core.artifacts.layout import BackupId
from backup_dr.core.artifacts.writer import ArtifactWriter
from backup_dr.core.mongo.backup import backup_mongodb
from backup_dr.core.policy import load_policy
from backup_dr.core.replicate import replicate_all
from backup_dr.core.stores.factory import open_store
from backup_dr.devstack.servers import free_port

from .conftest import mounted_catalog_app, serve

ROOT = Path(__file__).resolve().parents[2]
PROM_DIR = ROOT / "include" / "prometheus"
PROMETHEUS = shutil.which("prometheus")
CRIT = 'class="critical_data",source="mongodb",kind="full"'

pytestmark = pytest.mark.skipif(PROMETHEUS is None and not os.environ.get("CI"),
                                reason="prometheus missing: bash scripts/setup.sh installs the Debian package")


@pytest.fixture(scope="module")
def fresh_backup(tmp_path_factory, s3_server, gcs_server, mongo_client, seeded_mongo):
    """A critical_data MongoDB backup made now, in a local store and fresh S3/GCS buckets of its own."""
    root = tmp_path_factory.mktemp("prom-scrape")
    env = {"BACKUP_DR_LOCAL_PATH": str(root / "backups"), "BACKUP_DR_S3_BUCKET": f"prom-{os.getpid()}-s3",
           "BACKUP_DR_GCS_BUCKET": f"prom-{os.getpid()}-gcs", "BACKUP_DR_APP_DIR": str(root / "app")}
    s3_server.client().create_bucket(Bucket=env["BACKUP_DR_S3_BUCKET"])
    gcs_server.client().create_bucket(env["BACKUP_DR_GCS_BUCKET"])
    (root / "backups").mkdir()
    with pytest.MonkeyPatch.context() as mp:
        for k, v in env.items():
            mp.setenv(k, v)
        policy = load_policy(ROOT / "include" / "policy.yaml")
        stores = {n: open_store(s) for n, s in policy.stores.items()}
        source = policy.sources["mongodb"]
        job = next(j for j in policy.classes["critical_data"].jobs if j.source == "mongodb")
        run_after = datetime.now(timezone.utc).replace(microsecond=0)  # a manual run: triggered now
        writer = ArtifactWriter(stores["local"], BackupId.new("critical_data", "mongodb", "full", run_after),
                                source_type="mongodb", retention=policy.classes["critical_data"].retention, run_after=run_after)
        manifest = backup_mongodb(mongo_client, source, job, writer)
        replicate_all(stores["local"], manifest, [stores["s3"], stores["gcs"]])
        yield root, manifest


@pytest.fixture(scope="module")
def api_url(airflow_api, fresh_backup):
    cache = mounted_catalog_app(airflow_api).state.catalog_cache
    cache.clear()  # read the stores of this module's environment
    with serve(airflow_api) as url:
        yield url
    cache.clear()


def _token(api_url: str, out: Path) -> None:
    """The shipped token helper, logging in through the API server as the compose service does."""
    passwords = Path(os.environ["AIRFLOW_HOME"]) / "simple_auth_manager_passwords.json.generated"
    run = subprocess.run([sys.executable, str(PROM_DIR / "airflow_token.py"), "--api", api_url, "--user", "admin",
                          "--passwords-file", str(passwords), "--out", str(out)],
                         capture_output=True, text=True, timeout=60, env={"PATH": os.environ["PATH"]})
    assert run.returncode == 0, run.stderr
    assert out.read_text().count(".") == 2  # a JWT


@pytest.fixture(scope="module")
def prometheus(api_url, tmp_path_factory):
    """The shipped config (include/prometheus/prometheus.yml) pointed at this API server, scraped every 2 seconds."""
    work = tmp_path_factory.mktemp("prometheus")
    _token(api_url, work / "token")
    config = yaml.safe_load((PROM_DIR / "prometheus.yml").read_text())
    config["global"].update(scrape_interval="2s", evaluation_interval="1s")
    config["rule_files"] = [str(PROM_DIR / f) for f in config["rule_files"]]
    job = config["scrape_configs"][0]
    job.update(scrape_timeout="2s")
    job["authorization"]["credentials_file"] = str(work / "token")
    job["static_configs"] = [{"targets": [urllib.parse.urlsplit(api_url).netloc]}]
    unauthenticated = {k: v for k, v in job.items() if k != "authorization"}
    config["scrape_configs"].append({**unauthenticated, "job_name": "backup-dr-no-token"})
    (work / "prometheus.yml").write_text(yaml.safe_dump(config))
    port = free_port()
    log = open(work / "prometheus.log", "wb")
    proc = subprocess.Popen([PROMETHEUS, f"--config.file={work / 'prometheus.yml'}", f"--storage.tsdb.path={work / 'data'}",
                             f"--web.listen-address=127.0.0.1:{port}"], stdout=log, stderr=subprocess.STDOUT,
                            start_new_session=True)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                with urllib.request.urlopen(base + "/-/ready", timeout=2) as r:
                    if r.status == 200:
                        break
            except OSError:
                pass
            assert proc.poll() is None and time.monotonic() < deadline, (work / "prometheus.log").read_text()[-3000:]
            time.sleep(0.2)
        yield base
    finally:
        proc.terminate()
        try:
            proc.wait(15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)
        log.close()


def query(base: str, promql: str) -> list[dict]:
    with urllib.request.urlopen(f"{base}/api/v1/query?" + urllib.parse.urlencode({"query": promql}), timeout=10) as r:
        body = json.loads(r.read())
    assert body["status"] == "success", body
    return body["data"]["result"]


def wait_for(base: str, promql: str, timeout: float = 60) -> list[dict]:
    deadline = time.monotonic() + timeout
    while True:
        result = query(base, promql)
        if result:
            return result
        assert time.monotonic() < deadline, f"no result for {promql} after {timeout}s"
        time.sleep(0.5)


def test_prometheus_scrapes_the_age_of_the_backup_just_made(prometheus, fresh_backup):
    _, manifest = fresh_backup
    wait_for(prometheus, 'up{job="backup-dr"} == 1')
    ages = wait_for(prometheus, f"backup_dr_backup_age_seconds{{{CRIT}}}")
    assert sorted(r["metric"]["store"] for r in ages) == ["gcs", "local", "s3"]
    slot = manifest.id.stamp.timestamp()  # when the run was triggered
    captured = manifest.captured_at.timestamp()  # the catalog's time of this backup: its data's consistent point
    dump_seconds = (datetime.fromisoformat(manifest.finished_at) - datetime.fromisoformat(manifest.started_at)).total_seconds()
    assert slot <= captured <= slot + dump_seconds + 2  # the run started, then the dump captured its end point
    stamps = {r["metric"]["store"]: float(r["value"][1]) for r in query(prometheus, f"backup_dr_backup_timestamp_seconds{{{CRIT}}}")}
    assert stamps == {"local": captured, "s3": captured, "gcs": captured}
    sampled = {r["metric"]["store"]: float(r["value"][1]) for r in query(prometheus, f"timestamp(backup_dr_backup_age_seconds{{{CRIT}}})")}
    for r in ages:
        store, age = r["metric"]["store"], float(r["value"][1])
        # the age at the moment of the scrape: the sample's time minus the data's time (not the slot's)
        assert abs(age - (sampled[store] - captured)) < 2.0, (store, age, sampled[store] - captured)
    assert float(query(prometheus, 'backup_dr_rpo_target_seconds{class="critical_data"}')[0]["value"][1]) == 4 * 3600


def test_the_endpoint_refuses_a_scraper_without_a_token(prometheus):
    deadline = time.monotonic() + 60
    while True:
        with urllib.request.urlopen(prometheus + "/api/v1/targets", timeout=10) as r:
            targets = {t["scrapePool"]: t for t in json.loads(r.read())["data"]["activeTargets"]}
        if targets.get("backup-dr-no-token", {}).get("health") == "down" and targets.get("backup-dr", {}).get("health") == "up":
            break
        assert time.monotonic() < deadline, targets
        time.sleep(0.5)
    assert "401" in targets["backup-dr-no-token"]["lastError"]
    assert targets["backup-dr"]["lastError"] == ""


def test_the_shipped_rules_load_and_evaluate_on_real_series(prometheus):
    wait_for(prometheus, 'up{job="backup-dr"} == 1')
    deadline = time.monotonic() + 30
    while True:
        with urllib.request.urlopen(prometheus + "/api/v1/rules", timeout=10) as r:
            groups = json.loads(r.read())["data"]["groups"]
        rules = [rule for g in groups for rule in g["rules"]]
        if rules and all(rule.get("lastEvaluation", "").startswith("20") for rule in rules):
            break
        assert time.monotonic() < deadline, rules
        time.sleep(0.5)
    assert len(groups) == 4 and len(rules) == 16
    assert all(rule["health"] == "ok" for rule in rules), [(r["name"], r.get("lastError")) for r in rules if r["health"] != "ok"]
    # this module's stores hold only the critical_data backup: every other source has none (pending, "for: 15m")
    missing = wait_for(prometheus, 'ALERTS{alertname="BackupMissing",class="operational_data",source="redis_cache"}')
    assert missing[0]["metric"]["alertstate"] == "pending" and missing[0]["metric"]["severity"] == "critical"
    alerts = {(a["metric"]["alertname"], a["metric"].get("class"), a["metric"].get("source")) for a in query(prometheus, "ALERTS")}
    assert not [k for k in alerts if k[1] == "critical_data" and k[0].startswith("Backup")]  # seconds old, in 3 stores
    assert not [k for k in alerts if k[0] == "BackupStoreUnreachable"]
