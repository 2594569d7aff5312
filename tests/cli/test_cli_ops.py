"""``prune``, ``health``, ``verify --scratch`` (drills) and the terminal progress bar."""

from __future__ import annotations

import json
import os
import pty
import select
import subprocess
import sys
from datetime import timedelta

from backup_dr.core.artifacts.layout import BackupId
from backup_dr.core.health import load_latest_report
from backup_dr.core.policy import load_policy
from backup_dr.core.verify import latest_verification
from backup_dr.ui.data import CatalogInputs, build_catalog

from cli_support import mongo_conn_json

MINI_POLICY = """\
version: 1
recovery_objectives:
  critical_services: {rpo: 4h, rto: 30m}
stores:
  local: {type: local, path: "${BACKUP_DR_LOCAL_PATH}"}
  s3: {type: s3, conn_id: backup_s3, bucket: "${BACKUP_DR_S3_BUCKET}", prefix: backup-dr}
  gcs: {type: gcs, conn_id: backup_gcs, bucket: "${BACKUP_DR_GCS_BUCKET}", prefix: backup-dr}
sources:
  mongodb: {type: mongodb, conn_id: mongo_korea_public_data, database: korea_public_data}
classes:
  critical_data:
    description: only the critical collections
    schedule: "0 */4 * * *"
    retention: 3 months
    stores: [local, s3, gcs]
    objective: critical_services
    jobs:
      - {source: mongodb, collections: [announcements, businesses, contents], critical: true}
alerts:
  email: {conn_id: smtp_backup_alerts, to: [dba@example.org]}
ops:
  drill_scratch: {mongodb_conn_id: mongo_scratch}
"""


def _exists_everywhere(h, backup_id: str) -> dict[str, bool]:
    bid = BackupId.parse(backup_id)
    return {name: store.stat(bid.manifest_key) is not None for name, store in h.stores.items()}


def test_prune_dry_run_deletes_nothing_and_prune_without_yes_refuses(fresh_history, cli_app):
    h = fresh_history()
    old = h.files(cli_app, age=timedelta(days=300), key="old", taken_then=True).backup_id
    new = h.files(cli_app, age=timedelta(hours=1), key="new").backup_id
    cli = h.cli()
    plan = cli.json("prune", "--dry-run")
    deletes = {(d["store"], d["backup_id"]) for d in plan["decisions"] if d["action"] == "delete"}
    assert deletes == {("local", old), ("s3", old), ("gcs", old)}
    reasons = {d["store"]: d["reasons"] for d in plan["decisions"] if d["backup_id"] == old}
    assert reasons["s3"] == ["older than 6 months and kept by no rule"]
    out = cli.run("prune", "--dry-run")
    assert f"DELETE {old}" in out.stdout and f"keep   {new}" in out.stdout
    assert _exists_everywhere(h, old) == {"local": True, "s3": True, "gcs": True}

    out = cli.run("prune")
    assert out.returncode == 2 and "refused: this would delete 3 backup(s)" in out.stdout and "--yes" in out.stdout
    assert _exists_everywhere(h, old) == {"local": True, "s3": True, "gcs": True}
    assert cli.run("prune", "--dry-run", "--yes").returncode == 2  # one or the other
    assert "unknown class 'nope'" in cli.run("prune", "--class", "nope", "--dry-run").stderr

    # --class limits the plan; other classes' backups are not even listed
    assert cli.json("prune", "--class", "critical_data", "--dry-run")["decisions"] == []
    done = cli.json("prune", "--class", "configuration", "--yes")
    assert sorted(d["store"] for d in done["result"]["deleted"]) == ["gcs", "local", "s3"]
    assert _exists_everywhere(h, old) == {"local": False, "s3": False, "gcs": False}
    assert _exists_everywhere(h, new) == {"local": True, "s3": True, "gcs": True}
    assert cli.run("prune").returncode == 0  # nothing left to delete


def test_prune_needs_every_store_unless_limited(fresh_history, cli_app):
    h = fresh_history()
    h.files(cli_app, age=timedelta(days=300), taken_then=True)
    h.files(cli_app, age=timedelta(hours=1), key="new")
    cli = h.cli().with_env(AIRFLOW_CONN_BACKUP_GCS=None)
    out = cli.run("prune", "--dry-run")
    assert out.returncode == 2 and "prune needs every store of the policy" in out.stderr and "gcs" in out.stderr
    plan = cli.json("prune", "--dry-run", "--store", "local")
    assert {d["store"] for d in plan["decisions"]} == {"local"}


def test_health_reports_critical_with_reasons_and_saves(cli, history):
    out = cli.run("health")
    assert out.returncode == 1 and out.stdout.startswith("health: CRITICAL")
    assert "critical: operational_data/mongodb: no complete full backup in any store" in out.stdout
    data = cli.json("health", "--save", expect=1)
    assert data["status"] == "critical" and data["classes"]["critical_data"]["sources"]["mongodb"]["newest"] == history.ids["mongo"]
    saved = load_latest_report(history.local)
    assert saved["status"] == "critical" and saved["generated_at"] == data["generated_at"]
    no_s3 = cli.with_env(AIRFLOW_CONN_BACKUP_S3=None).json("health", expect=1)
    assert no_s3["stores"]["s3"]["reachable"] is False
    assert any(r.startswith("critical: store s3 is unreachable from here") for r in no_s3["reasons"])


def test_verify_scratch_drill_makes_health_green(fresh_history, mongo_client, seeded_mongo, mongo_scratch_server, tmp_path,
                                                 monkeypatch):
    h = fresh_history()
    m = h.mongo(mongo_client)
    policy = tmp_path / "policy.yaml"
    policy.write_text(MINI_POLICY)
    cli = h.cli(mongo_scratch=mongo_conn_json(mongo_scratch_server)).with_env(BACKUP_DR_POLICY=str(policy))
    before = cli.json("health", expect=0)
    assert before["status"] == "warning" and any("no restore drill on record" in r for r in before["reasons"])
    dbs_before = set(mongo_scratch_server.client().list_database_names())

    data = cli.json("verify", m.backup_id, "--scratch")
    assert data["ok"] is True and data["drill"]["ok"] is True and data["drill"]["store"] == "local"
    assert data["drill"]["details"]["documents"] == sum(m.counts.values())
    assert set(mongo_scratch_server.client().list_database_names()) == dbs_before  # scratch db dropped
    rec = latest_verification(h.local, m.backup_id, kind="drill")
    assert rec["ok"] is True and rec["rto_seconds"] == 1800 and rec["via"] == "cli" and rec["copy_ok"] is True
    # the drill's time runs from the first byte fetched to the checked target: the download is in it
    assert rec["fetch_seconds"] > 0 and rec["restore_seconds"] >= rec["details"]["seconds"] + rec["fetch_seconds"] - 0.002
    shown = cli.json("show", m.backup_id)
    # replication to s3 and to gcs each read the local copy in full; then verify re-hashed it; then the drill
    assert [(r["kind"], r.get("method")) for r in shown["verification"]["local"]] == [
        ("verify", "read while replicating"), ("verify", "read while replicating"), ("verify", "re-hash"), ("drill", None)]
    after = cli.json("health", expect=0)
    assert after["status"] == "healthy", after["reasons"]

    # a copy check AFTER the drill must not hide the drill from any view (it did from `health`)
    assert cli.json("verify", m.backup_id)["ok"] is True
    after = cli.json("health", expect=0)
    assert after["status"] == "healthy", after["reasons"]
    drill = after["classes"]["critical_data"]["sources"]["mongodb"]["last_drill"]
    assert drill["checked_at"] == rec["checked_at"] and drill["store"] == "local"
    listed = cli.json("list")["backups"][0]["verification"]
    assert listed["state"] == "verified" and listed["drill"]["checked_at"] == rec["checked_at"]
    assert {n: r["method"] for n, r in listed["by_store"].items()} == {"local": "re-hash", "s3": "re-hash", "gcs": "re-hash"}
    for k, v in h.env().items():
        monkeypatch.setenv(k, v)
    page = build_catalog(CatalogInputs(load_policy(policy), h.stores))
    src = page["classes"][0]["sources"][0]
    assert src["last_drill"]["record"]["checked_at"] == rec["checked_at"] and src["last_drill"]["color"] == "green"
    assert src["newest"]["verification"]["label"] == "verified"

    out = cli.run("verify", m.backup_id, "--scratch", "--scratch-conn", "mongo_korea_public_data",
                  extra_env={"AIRFLOW_CONN_MONGO_KOREA_PUBLIC_DATA": mongo_conn_json(mongo_scratch_server)})
    assert out.returncode == 2 and "drills never restore into production" in out.stderr
    out = cli.run("verify", m.backup_id, "--scratch", "--scratch-conn", "prod_alias",
                  extra_env={"AIRFLOW_CONN_MONGO_KOREA_PUBLIC_DATA": mongo_conn_json(mongo_scratch_server),
                             "AIRFLOW_CONN_PROD_ALIAS": mongo_conn_json(mongo_scratch_server)})
    assert out.returncode == 2 and "points at the same server as source 'mongodb'" in out.stderr


def test_verify_scratch_of_a_redis_backup_uses_a_fresh_server(cli, history):
    data = cli.json("verify", history.ids["redis"], "--scratch", "--no-record")
    assert data["drill"]["ok"] is True and data["drill"]["details"]["restored"] == {"db0": 2000}
    assert "record_key" not in data["drill"]


def _run_on_a_terminal(cli, *args: str) -> tuple[int, str]:
    master, slave = pty.openpty()
    proc = subprocess.Popen([sys.executable, "-m", "backup_dr", *args], env=cli.full_env(), cwd=cli.tmp,
                            stdout=subprocess.PIPE, stderr=slave, stdin=subprocess.DEVNULL)
    os.close(slave)
    chunks = []
    while True:
        ready, _, _ = select.select([master], [], [], 60)
        if not ready:
            break
        try:
            data = os.read(master, 65536)
        except OSError:  # EIO: the child closed the terminal
            break
        if not data:
            break
        chunks.append(data)
    os.close(master)
    proc.stdout.read()
    return proc.wait(60), b"".join(chunks).decode("utf-8", "replace")


def test_progress_bar_on_a_terminal_and_log_lines_otherwise(cli, history):
    bid = history.ids["mongo"]
    code, err = _run_on_a_terminal(cli, "verify", bid, "--no-record")
    assert code == 0, err
    assert "\r\x1b[K" in err and "[####################] 100%" in err
    assert f"verify {bid} in s3: 1 files" in err  # the final line of each step stays
    assert f"INFO verify {bid} in s3: 1 files" not in err  # ... written by the bar, not as a log record
    piped = cli.run("verify", bid, "--no-record")
    assert f"INFO verify {bid} in s3: 1 files" in piped.stderr and "\x1b[K" not in piped.stderr
    code, err = _run_on_a_terminal(cli, "verify", bid, "--no-record", "--no-progress")
    assert code == 0 and "\x1b[K" not in err and f"INFO verify {bid} in s3: 1 files" in err


def test_json_output_parses_for_every_command(cli, history, tmp_path):
    for args in (("list",), ("show", history.ids["git"]), ("verify", history.ids["git"], "--no-record"),
                 ("prune", "--dry-run"), ("policy", "check")):
        out = cli.run(*args, "--json")
        assert out.returncode == 0, out.stderr
        assert isinstance(json.loads(out.stdout), dict)
    out = cli.run("--json", "list")  # before the command works as well
    assert json.loads(out.stdout)["backups"]
