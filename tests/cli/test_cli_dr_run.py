"""``dr run``: a whole DR scenario from the command line, with Airflow unimportable.

The production server is seeded, backed up by the core job function and replicated to S3 and
GCS; then it is lost, and so is the disk of the local store. With only the policy, the
stores' credentials and the new server's connection in the environment, ``dr run
database_server_failure`` runs the scenario's steps (the same core functions as the DR DAG's
tasks): the new server holds every document and index, the app is repointed, and no module
of Airflow was imported (the blocker on PYTHONPATH records any attempt). ``--dry-run`` prints
the plan and changes nothing; a human step nobody confirmed refuses the run up front.
"""

from __future__ import annotations

import json
import os
import shutil

import pytest

from backup_dr.devstack import sample_data
from backup_dr.devstack.servers import MongoServer

from cli_support import mongo_conn_json, snapshot_db

CRITICAL = ["announcements", "businesses", "contents"]


@pytest.fixture
def lost_site(fresh_history, tmp_path, webhook_sink, sinks):
    """(history, manifest, snapshot of the lost data, new server, cli): production and the local store are gone."""
    h = fresh_history()
    with MongoServer(tmp_path / "prod") as prod, prod.client() as client:
        sample_data.seed_mongo(client, {"announcements": 800, "businesses": 600, "contents": 200, "statistics": 50})
        manifest = h.mongo(client)
        before = snapshot_db(client, "korea_public_data", CRITICAL)
    shutil.rmtree(h.local.root)  # the host of the local store went down with the server
    webhook_sink.requests.clear()
    with MongoServer(tmp_path / "replacement") as new:
        cli = h.cli(mongo_dr_target=mongo_conn_json(new)).with_env(
            AIRFLOW_CONN_DR_REPOINT_WEBHOOK=os.environ["AIRFLOW_CONN_DR_REPOINT_WEBHOOK"],
            BACKUP_DR_APP_HEALTH_URL=os.environ["BACKUP_DR_APP_HEALTH_URL"],
            AIRFLOW_CONN_SMTP_BACKUP_ALERTS=os.environ["AIRFLOW_CONN_SMTP_BACKUP_ALERTS"],
            AIRFLOW_CONN_SLACK_BACKUP_ALERTS=os.environ["AIRFLOW_CONN_SLACK_BACKUP_ALERTS"])
        yield h, manifest, before, new, cli


def test_database_server_failure_runs_end_to_end_without_airflow(lost_site, webhook_sink, sinks):
    h, manifest, before, new, cli = lost_site
    smtp, slack = sinks
    slack_token = json.loads(os.environ["AIRFLOW_CONN_SLACK_BACKUP_ALERTS"])["password"]
    out = cli.run("dr", "run", "database_server_failure", "--confirm", "provision_mongodb", "--json", input="",
                  importtime=True, timeout=300)
    assert out.returncode == 0, out.stderr[-4000:]
    report = json.loads(out.stdout)
    assert report["outcome"] == "recovered" and report["error"] is None, report
    states = {s["name"]: s["state"] for s in report["steps"]}
    assert states == {"detect": "done", "pick_backup": "done", "provision_mongodb": "confirmed", "safety_backup": "done",
                      "restore": "done", "validate": "done", "repoint": "done", "health_check": "done"}, states
    [row] = report["plan"]
    assert row["backup_id"] == manifest.backup_id and row["store"] == "s3" and row["target"] == "mongo_dr_target"
    assert report["recovery_time"]["seconds"] > 0 and report["recovery_point"]
    detect = next(s for s in report["steps"] if s["name"] == "detect")["result"]
    assert detect["mongodb"]["ok"] is False and detect["restore_target"]["ok"] is True
    # the new server holds exactly the lost data, byte for byte, with its indexes
    with new.client() as client:
        after = snapshot_db(client, "korea_public_data", CRITICAL)
    for name in CRITICAL:
        assert after[name]["count"] == before[name]["count"] == manifest.counts[name]
        assert after[name]["docs"] == before[name]["docs"], name
        assert after[name]["indexes"] == before[name]["indexes"], name
    # the app was told where its data lives now, with the webhook's token, without credentials
    posts = webhook_sink.wait_for(lambda r: r["path"] == "/admin/repoint")
    assert posts and posts[0]["body"]["mongodb"]["port"] == new.port
    assert posts[0]["body"]["recovered_from"] == manifest.backup_id
    assert posts[0]["headers"]["Authorization"] == "Bearer repoint-token-secret"
    assert "repoint-token-secret" not in out.stdout + out.stderr
    # as the DAG's summary task: the report kept in the local store, the summary sent by email and Slack
    summary = report["summary"]
    assert summary["outcome"] == "recovered" and summary["backup_id"] == manifest.backup_id and summary["rto_met"], summary
    assert sorted(summary["alerts_sent"]) == ["email", "slack"] and not summary["alerts_failed"], summary
    [saved] = h.root.rglob("_reports/dr/database_server_failure/*.json")
    assert str(saved) == summary["path"] and json.loads(saved.read_text())["recovery_point"] == summary["recovery_point"]
    [mail] = smtp.wait_for(lambda m: "database_server_failure" in str(m["Subject"]))
    assert "recovered" in str(mail["Subject"]) and "RTO: recovered in" in smtp.text(mail)
    [slack_post] = slack.wait_for(lambda r: "database_server_failure" in str(r["body"]))
    assert "recovered" in slack_post["body"]["text"] and slack_post["path"] == f"/services/{slack_token}"
    assert slack_token not in out.stdout + out.stderr
    # Airflow was never imported: not by the import-time trace, not past the blocker
    imported = [line for line in out.stderr.splitlines() if line.startswith("import time:")]
    assert len(imported) > 100 and not [line for line in imported if "airflow" in line.split("|")[-1]]
    assert not cli.airflow_mark.exists()


def test_dry_run_prints_the_plan_and_changes_nothing(lost_site, webhook_sink, sinks):
    h, manifest, before, new, cli = lost_site
    # no terminal and a human step nobody confirmed: refused before any step ran
    refused = cli.run("dr", "run", "database_server_failure", input="")
    assert refused.returncode == 2, refused.stderr[-3000:]
    assert "provision_mongodb" in refused.stderr and "--confirm provision_mongodb" in refused.stderr
    out = cli.run("dr", "run", "database_server_failure", "--dry-run", "--json", input="")
    assert out.returncode == 0, out.stderr[-4000:]
    report = json.loads(out.stdout)
    assert report["outcome"] == "dry run" and report["dry_run"] is True
    [row] = report["plan"]
    assert row == {"step": "restore", "backup_id": manifest.backup_id, "captured_at": row["captured_at"], "store": "s3",
                   "target": "mongo_dr_target", "database": "korea_public_data", "point_in_time": None}
    pick = next(s for s in report["steps"] if s["name"] == "pick_backup")["result"]
    assert pick["rehearsal"]["store"] == "s3" and pick["rehearsal"]["bytes"] > 0  # the copy was re-hashed, not restored
    assert {s["name"]: s["state"] for s in report["steps"]}["provision_mongodb"] == "would ask"
    human = cli.run("dr", "run", "database_server_failure", "--dry-run", input="")
    assert human.returncode == 0 and f"restore: {manifest.backup_id} from store s3 into mongo_dr_target" in human.stdout
    # nothing changed: no database on the new server, no repoint, no safety backup or journal anywhere
    with new.client() as client:
        assert "korea_public_data" not in client.list_database_names()
    assert not webhook_sink.wait_for(lambda r: r["path"] == "/admin/repoint", timeout=1)
    assert not h.local.root.exists() and not any((h.root / "backup-dr-safety").rglob("*.json"))
    assert "summary" not in report  # no report kept, no alert sent
    smtp, slack = sinks
    assert not smtp.wait_for(timeout=1) and not slack.requests
    assert not cli.airflow_mark.exists()


def test_a_declined_human_step_stops_the_recovery_before_the_target_is_touched(lost_site, sinks):
    """On a terminal the human step is asked; an answer other than yes stops the run there. The
    failure is reported like the DAG's: critical email; the Slack route is broken here, which
    is a warning naming its connection, not another failure."""
    import pty
    import subprocess
    import sys

    from backup_dr.devstack.servers import free_port

    h, manifest, before, new, cli = lost_site
    cli = cli.with_env(AIRFLOW_CONN_SLACK_BACKUP_ALERTS=json.dumps(
        {"conn_type": "slackwebhook", "host": f"http://127.0.0.1:{free_port()}/services", "password": "T0/B0/dead-hook-secret"}))
    master, slave = pty.openpty()
    try:
        proc = subprocess.Popen([sys.executable, "-m", "backup_dr", "dr", "run", "database_server_failure", "--json",
                                 "--no-progress"], stdin=slave, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                env=cli.full_env(), cwd=cli.tmp, text=True)
        os.write(master, b"no\n")
        stdout, stderr = proc.communicate(timeout=180)
    finally:
        os.close(master)
        os.close(slave)
    assert proc.returncode == 1, stderr[-3000:]
    assert "HUMAN STEP provision_mongodb" in stderr
    report = json.loads(stdout)
    assert report["outcome"] == "failed" and "provision_mongodb" in report["error"]
    assert [(s["name"], s["state"]) for s in report["steps"]] == [
        ("detect", "done"), ("pick_backup", "done"), ("provision_mongodb", "refused")]
    assert report["summary"]["outcome"] == "failed" and report["summary"]["failed_steps"] == ["provision_mongodb"]
    assert report["summary"]["alerts_sent"] == ["email"] and "slack_backup_alerts" in report["summary"]["alerts_failed"][0]
    assert "WARNING: alert route slack (connection 'slack_backup_alerts')" in stderr and "dead-hook-secret" not in stdout + stderr
    [mail] = sinks[0].wait_for(lambda m: "database_server_failure" in str(m["Subject"]))
    assert "CRITICAL" in str(mail["Subject"]) and "failed" in str(mail["Subject"])
    with new.client() as client:
        assert "korea_public_data" not in client.list_database_names()
    assert not cli.airflow_mark.exists()


def test_bad_scenario_and_confirm_names_are_usage_errors(cli):
    out = cli.run("dr", "run", "database_failure", input="")
    assert out.returncode == 2 and "unknown scenario 'database_failure'" in out.stderr and "database_server_failure" in out.stderr
    out = cli.run("dr", "run", "database_server_failure", "--confirm", "provision_mongo", input="")
    assert out.returncode == 2 and "--confirm provision_mongo" in out.stderr and "provision_mongodb" in out.stderr
    listed = cli.json("dr", "list")
    names = {s["name"]: [st["name"] for st in s["steps"] if st["human"]] for s in listed["scenarios"]}
    assert names["full_infrastructure_failure"] == ["provision_instances", "docker_environment", "change_dns"]


@pytest.mark.slow
def test_full_infrastructure_failure_runs_end_to_end_without_airflow(fresh_history, tmp_path, webhook_sink):
    """Database, cache and app files are all gone; `dr run full_infrastructure_failure --yes`
    brings each back from the stores (the local one lost too) into the new servers and paths."""
    from backup_dr.core.connections import ConnInfo
    from backup_dr.devstack.app_files import make_app_dir
    from backup_dr.devstack.servers import RedisServer

    from cli_support import redis_fingerprint, tree

    h = fresh_history()
    app = make_app_dir(h.root / "app", git=False)
    config, uploads = tree(app / "config"), tree(app / "uploads")
    with MongoServer(tmp_path / "prod") as prod, prod.client() as client:
        sample_data.seed_mongo(client, {"announcements": 500, "businesses": 400, "contents": 100, "statistics": 50})
        manifest = h.mongo(client)
        before = snapshot_db(client, "korea_public_data", CRITICAL)
    with RedisServer(tmp_path / "redis", password="old-redis-secret") as old:
        with old.client() as r:
            sample_data.seed_redis(r, 500)
            cache = redis_fingerprint(r)
        h.redis(ConnInfo("redis_cache", "redis", "127.0.0.1", old.port, None, "old-redis-secret"))
    h.files(app, source_name="app_config", key="config")
    h.files(app, source_name="app_uploads", cls_name="operational_data", key="uploads")
    shutil.rmtree(h.local.root)
    shutil.rmtree(app / "config")
    shutil.rmtree(app / "uploads")
    with MongoServer(tmp_path / "new-mongo") as new, RedisServer(tmp_path / "new-redis", password="new-redis-secret") as new_redis:
        cli = h.cli(mongo_dr_target=mongo_conn_json(new), redis_dr_target=json.dumps(
            {"conn_type": "redis", "host": "127.0.0.1", "port": new_redis.port, "password": "new-redis-secret"})).with_env(
            AIRFLOW_CONN_DR_REPOINT_WEBHOOK=os.environ["AIRFLOW_CONN_DR_REPOINT_WEBHOOK"],
            BACKUP_DR_APP_HEALTH_URL=os.environ["BACKUP_DR_APP_HEALTH_URL"])
        out = cli.run("dr", "run", "full_infrastructure_failure", "--yes", "--json", input="", timeout=300)
        assert out.returncode == 0, out.stderr[-4000:]
        report = json.loads(out.stdout)
        assert report["outcome"] == "recovered", report
        rows = {(r["step"], r.get("source")): r for r in report["plan"]}
        assert rows[("restore", None)]["backup_id"] == manifest.backup_id
        assert rows[("restore_redis", None)]["backup_id"] == h.ids["redis"]
        assert rows[("restore_files", "app_config")]["backup_id"] == h.ids["config"]
        assert {r["store"] for r in rows.values()} == {"s3"}
        with new.client() as client:
            after = snapshot_db(client, "korea_public_data", CRITICAL)
        assert {n: after[n]["docs"] for n in CRITICAL} == {n: before[n]["docs"] for n in CRITICAL}
        with new_redis.client() as r:
            assert redis_fingerprint(r) == cache
    assert tree(app / "config") == config and tree(app / "uploads") == uploads
    assert "new-redis-secret" not in out.stdout + out.stderr and not cli.airflow_mark.exists()
