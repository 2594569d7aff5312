"""``list`` / ``show`` / ``verify`` on backups made by the core job functions and replicated to S3/GCS."""

from __future__ import annotations

import json

from backup_dr.core.artifacts.layout import BackupId
from backup_dr.core.verify import latest_verification


def test_list_shows_every_backup_newest_first_with_its_stores(cli, history):
    data = cli.json("list")
    ids = [b["backup_id"] for b in data["backups"]]
    assert set(history.ids.values()) <= set(ids)
    stamps = [BackupId.parse(i).stamp for i in ids]
    assert stamps == sorted(stamps, reverse=True)
    by_id = {b["backup_id"]: b for b in data["backups"]}
    assert by_id[history.ids["mongo"]]["complete_in"] == ["local", "s3", "gcs"]
    assert by_id[history.ids["redis"]]["complete_in"] == ["local", "s3"]  # operational_data: 2 stores
    assert by_id[history.ids["mongo"]]["size"] == history.local.stat(
        BackupId.parse(history.ids["mongo"]).key("korea_public_data.archive.gz")).size
    assert data["unavailable_stores"] == {} and data["store_errors"] == {}
    assert cli.airflow_mark.exists() is False


def test_list_filters_and_limit(cli, history):
    data = cli.json("list", "--source", "mongodb", "--kind", "full")
    assert [b["backup_id"] for b in data["backups"]] == [history.ids["mongo"]]
    data = cli.json("list", "--class", "application_code")
    assert [b["backup_id"] for b in data["backups"]] == [history.ids["git"]]
    data = cli.json("list", "--store", "gcs")
    assert history.ids["redis"] not in [b["backup_id"] for b in data["backups"]]  # not kept in GCS
    assert {b["backup_id"] for b in data["backups"]} >= {history.ids["mongo"], history.ids["files"]}
    data = cli.json("list", "--limit", "1")
    assert data["shown"] == 1 and data["total"] >= 4


def test_list_human_output_has_columns(cli, history):
    out = cli.ok("list", "--source", "mongodb")
    header, row = out.stdout.splitlines()[:2]
    assert header.split()[:5] == ["BACKUP", "ID", "CAPTURED", "AT", "SIZE"]
    assert row.startswith(history.ids["mongo"]) and "local,s3,gcs" in row


def test_show_prints_the_manifest_and_presence(cli, history):
    bid = history.ids["mongo"]
    data = cli.json("show", bid)
    m = data["manifest"]
    assert m["backup_id"] == bid and m["source_type"] == "mongodb"
    (f,) = m["files"]
    stored = history.local.path(BackupId.parse(bid).key(f["name"])).read_bytes()
    import hashlib

    assert f["sha256"] == hashlib.sha256(stored).hexdigest() and f["size"] == len(stored) and f["codec"] == "gzip"
    assert set(m["counts"]) == {"announcements", "businesses", "contents"}
    assert m["consistent_point"]["end"]["t"] > 0
    assert data["expires_at"] == m["retention"]["expires_at"]
    assert {n: s["state"] for n, s in data["stores"].items()} == {"local": "complete", "s3": "complete", "gcs": "complete"}
    out = cli.ok("show", history.ids["redis"])
    assert "gcs      absent" in out.stdout and "sha256 " in out.stdout and "retention: keep 1 month" in out.stdout


def test_verify_rehashes_every_copy_and_records_it(cli, history):
    bid = history.ids["files"]
    data = cli.json("verify", bid)
    assert data["ok"] is True and data["good_stores"] == ["local", "s3", "gcs"] and data["bad_stores"] == []
    files = json.loads(history.local.get_bytes(BackupId.parse(bid).manifest_key))["files"]
    for name in ("local", "s3", "gcs"):
        assert data["copies"][name]["bytes"] == sum(f["size"] for f in files) > 0
        rec = latest_verification(history.stores[name], bid)
        assert rec["kind"] == "verify" and rec["ok"] is True
    listed = {b["backup_id"]: b for b in cli.json("list")["backups"]}
    assert listed[bid]["verification"]["state"] == "verified"


def test_verify_no_record_writes_nothing(cli, history):
    bid = history.ids["git"]
    before = [i.key for i in history.stores["s3"].list(BackupId.parse(bid).prefix)]
    cli.json("verify", bid, "--no-record")
    assert [i.key for i in history.stores["s3"].list(BackupId.parse(bid).prefix)] == before


def test_verify_bit_flip_in_one_store_exits_1_and_names_the_good_stores(fresh_history, mongo_client, seeded_mongo):
    h = fresh_history()
    m = h.mongo(mongo_client)
    h.flip_byte("gcs", m.backup_id)
    cli = h.cli()
    out = cli.run("verify", m.backup_id)
    assert out.returncode == 1, out.stderr
    assert "BAD gcs" in out.stdout and "sha256 mismatch" in out.stdout
    assert "good copy in local, s3 (restore with --from-store local)" in out.stdout
    data = cli.json("verify", m.backup_id, expect=1)
    assert data["good_stores"] == ["local", "s3"] and data["bad_stores"] == ["gcs"]
    assert latest_verification(h.stores["gcs"], m.backup_id)["ok"] is False
    listed = cli.json("list")["backups"][0]
    assert listed["verification"]["state"] == "mixed"
    assert listed["verification"]["by_store"]["gcs"]["ok"] is False
    # only the good stores: exit 0
    assert cli.json("verify", m.backup_id, "--store", "local", "--store", "s3")["ok"] is True


def test_exit_codes_and_error_messages(cli, history):
    out = cli.run("show", "not-an-id")
    assert out.returncode == 2 and "is not a backup id" in out.stderr
    out = cli.run("show", "critical_data.mongodb.full.20200101T000000Z")
    assert out.returncode == 1 and "is not complete in any reachable store" in out.stderr
    out = cli.run("list", "--store", "nowhere")
    assert out.returncode == 2 and "unknown store 'nowhere'; defined stores: gcs, local, s3" in out.stderr, out.stderr
    data = cli.json("show", "critical_data.mongodb.full.20200101T000000Z", expect=1)
    assert data["ok"] is False and data["error_type"] == "NotFoundError"
    out = cli.run("list", extra_env={"BACKUP_DR_POLICY": str(history.root / "missing.yaml")})
    assert out.returncode == 2 and "missing.yaml" in out.stderr
    out = cli.run()
    assert out.returncode == 2 and "COMMAND" in out.stdout


def test_a_store_without_credentials_is_skipped_unless_named(cli, history):
    no_gcs = cli.with_env(AIRFLOW_CONN_BACKUP_GCS=None)
    data = no_gcs.json("list")
    assert "gcs" in data["unavailable_stores"] and "backup_gcs" in data["unavailable_stores"]["gcs"]
    assert history.ids["mongo"] in [b["backup_id"] for b in data["backups"]]
    out = no_gcs.run("list", "--store", "gcs")
    assert out.returncode == 2 and "connection 'backup_gcs' is not defined" in out.stderr
    assert "AIRFLOW_CONN_BACKUP_GCS" in out.stderr


def test_help_texts_have_examples():
    from backup_dr.cli.main import build_parser

    parser = build_parser()
    sub = next(a for a in parser._actions if a.dest == "command")
    assert set(sub.choices) >= {"list", "show", "verify", "restore", "prune", "health", "policy"}
    for name in ("list", "show", "verify", "prune", "health"):
        assert "python -m backup_dr " + name in sub.choices[name].format_help()
    restore = next(a for a in sub.choices["restore"]._actions if a.dest == "restore_kind")
    for kind in ("mongo", "redis", "files", "git"):
        assert f"python -m backup_dr restore {kind}" in restore.choices[kind].format_help()
