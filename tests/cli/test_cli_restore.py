"""``restore mongo|redis|files|git`` through the CLI, against real servers and real stores."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import time
import uuid
from datetime import datetime, timedelta, timezone
from zoneinfo import ZoneInfo

import redis

from backup_dr.core.artifacts.layout import BackupId
from backup_dr.core.mongo.backup import backup_mongodb
from backup_dr.core.pitr import archive_slice
from backup_dr.core.policy import load_policy

from cli_support import redis_fingerprint, snapshot_db, tree
from cli_support import POLICY, mongo_conn_json

CRITICAL = ["announcements", "businesses", "contents"]


# ----------------------------------------------------------------------------- MongoDB


def test_restore_mongo_falls_back_to_a_good_store_and_says_so(fresh_history, mongo_client, seeded_mongo,
                                                             mongo_scratch_server, fresh_db_name, tmp_path):
    h = fresh_history()
    m = h.mongo(mongo_client)
    h.flip_byte("local", m.backup_id)
    cli = h.cli(mongo_scratch=mongo_conn_json(mongo_scratch_server))
    out = cli.run("restore", "mongo", m.backup_id, "--to", "mongo_scratch", "--db", fresh_db_name, "--json",
                  "--safety-dir", str(tmp_path / "safety"))
    assert out.returncode == 0, out.stderr
    data = json.loads(out.stdout)
    assert data["store"] == "s3"
    assert data["fell_back_from"][0]["store"] == "local" and "does not match its manifest" in data["fell_back_from"][0]["reason"]
    assert "falling back to store s3" in out.stderr
    restored = snapshot_db(mongo_scratch_server.client(), fresh_db_name)
    assert restored == snapshot_db(mongo_client, "korea_public_data", CRITICAL)

    # insisting on the corrupt copy fails before the target is touched
    other = f"{fresh_db_name}_b"
    out = cli.run("restore", "mongo", m.backup_id, "--to", "mongo_scratch", "--db", other, "--from-store", "local")
    assert out.returncode == 1 and "no store holds a usable copy" in out.stderr and "local:" in out.stderr
    assert other not in mongo_scratch_server.client().list_database_names()


def test_restore_mongo_refuses_a_non_empty_target_without_drop(cli, history, mongo_scratch_server, fresh_db_name, tmp_path):
    safety = str(tmp_path / "safety")
    args = ("restore", "mongo", history.ids["mongo"], "--to", "mongo_scratch", "--db", fresh_db_name, "--safety-dir", safety)
    first = cli.json(*args)
    assert first["restore"]["safety_backup"] is None
    db = mongo_scratch_server.client()[fresh_db_name]
    db.announcements.update_one({}, {"$set": {"title": "changed after the restore"}})
    db.create_collection("unrelated")
    out = cli.run(*args)
    assert out.returncode == 1
    assert "already has the collection(s) this restore would write: announcements (2000 documents)" in out.stderr
    assert "pass --drop" in out.stderr
    assert db.announcements.count_documents({"title": "changed after the restore"}) == 1  # untouched

    again = cli.json(*args, "--drop")
    assert again["restore"]["safety_backup"].startswith("critical_data.mongodb.safety.")
    assert again["restore"]["validation"]["ok"] is True
    assert db.announcements.count_documents({"title": "changed after the restore"}) == 0
    assert "unrelated" in db.list_collection_names()  # only the backup's collections are replaced
    sbid = BackupId.parse(again["restore"]["safety_backup"])
    assert (tmp_path / "safety" / sbid.manifest_key).is_file()


def test_restore_mongo_latest_asks_for_the_class_when_several_have_backups(fresh_history, mongo_client, seeded_mongo,
                                                                           mongo_scratch_server, fresh_db_name, tmp_path):
    h = fresh_history()
    h.mongo(mongo_client)
    stats = h.mongo(mongo_client, cls_name="operational_data", key="stats")
    cli = h.cli(mongo_scratch=mongo_conn_json(mongo_scratch_server))
    out = cli.run("restore", "mongo", "latest", "--to", "mongo_scratch", "--db", fresh_db_name)
    assert out.returncode == 2 and "`latest` is ambiguous" in out.stderr and "--class" in out.stderr
    assert fresh_db_name not in mongo_scratch_server.client().list_database_names()
    data = cli.json("restore", "mongo", "latest", "--class", "operational_data", "--to", "mongo_scratch",
                    "--db", fresh_db_name, "--safety-dir", str(tmp_path))
    assert data["backup_id"] == stats.backup_id
    assert mongo_scratch_server.client()[fresh_db_name].list_collection_names() == ["statistics"]


def test_restore_mongo_argument_errors(cli, history, monkeypatch):
    mongo_id = history.ids["mongo"]
    cases = [
        (("restore", "mongo", "--to", "mongo_scratch"), "give a backup id (or 'latest') OR --at TIME"),
        (("restore", "mongo", mongo_id, "--at", "2026-01-01T00:00:00Z", "--to", "mongo_scratch"), "not both"),
        (("restore", "mongo", "--at", "2999-01-01T00:00:00Z", "--to", "mongo_scratch"), "is in the future"),
        (("restore", "mongo", "--at", "2999-01-01T08:00", "--to", "mongo_scratch"), "is in the future"),
        (("restore", "mongo", "--at", "yesterday", "--to", "mongo_scratch"), "is not an ISO 8601 time"),
        (("restore", "mongo", mongo_id, "--to", "mongo_scratch", "--collections", "announcements,nope"), "no collection(s) nope"),
        (("restore", "mongo", mongo_id, "--to", "mongo_nowhere"), "connection 'mongo_nowhere' is not defined"),
        (("restore", "mongo", history.ids["redis"], "--to", "mongo_scratch"), "use: python -m backup_dr restore redis"),
        (("restore", "mongo", mongo_id, "--to", "mongo_scratch", "--db", "a.b"), "--db 'a.b' is not a valid database name"),
        (("restore", "mongo", mongo_id, "--to", "mongo_scratch", "--from-store", "tape"), "unknown store 'tape'; defined stores: gcs, local, s3"),
    ]
    for args, message in cases:
        out = cli.run(*args)
        assert out.returncode == 2, (args, out.stderr)
        assert message in out.stderr, (args, out.stderr)
    # a policy that does not opt in to its time zone refuses a time without an offset, naming both fixes
    out = cli.run("restore", "mongo", "--at", "2026-01-01T08:00", "--to", "mongo_scratch",
                  extra_env={"BACKUP_DR_NAIVE_TIMES": "refuse"})
    assert out.returncode == 2 and "has no time zone" in out.stderr, out.stderr
    assert "2026-01-01T08:00+09:00" in out.stderr and "naive_times: policy_timezone" in out.stderr, out.stderr
    out = cli.run("restore", "mongo", mongo_id, "--to", "redis_target",
                  extra_env={"AIRFLOW_CONN_REDIS_TARGET": '{"conn_type": "redis", "host": "127.0.0.1"}'})
    assert out.returncode == 2 and "a MongoDB target needs conn_type 'mongo'" in out.stderr


def test_to_refuses_a_uri_and_says_why_and_how(cli, history):
    """A URI on --to (with its password) would sit in every user's `ps` and the shell history:
    refused before anything is read, without echoing it, with the connection-id way to do it."""
    secret = "Sup3r-s3cret"
    cases = [("mongo", history.ids["mongo"], f"mongodb://admin:{secret}@10.0.0.9:27017/", "AIRFLOW_CONN_MONGO_NEW", "--to mongo_new"),
             ("mongo", "latest", "mongodb+srv://cluster0.example.net/", "AIRFLOW_CONN_MONGO_NEW", "--to mongo_new"),
             ("redis", history.ids["redis"], f"redis://default:{secret}@10.0.0.7:6379/0", "AIRFLOW_CONN_REDIS_NEW", "--to redis_new"),
             ("redis", history.ids["redis"], f"redis://default:{secret}@10.0.0.7:6379/0 --data-dir", "AIRFLOW_CONN_REDIS_NEW", "--to redis_new")]
    for kind, backup, uri, variable, flag in cases:
        uri, _, extra = uri.partition(" ")
        out = cli.run("restore", kind, backup, "--to", uri, *extra.split(), "--json")
        assert out.returncode == 2, (uri, out.stderr)
        body = json.loads(out.stdout)
        assert "--to takes a connection id, not a URI" in body["error"], body
        assert "visible to every user of this machine" in body["error"]  # why
        assert variable in body["hint"] and flag in body["hint"] and "BACKUP_DR_CONNECTIONS_FILE" in body["hint"]  # how
        assert secret not in out.stdout + out.stderr and "10.0.0." not in out.stdout + out.stderr  # not echoed
        assert "AIRFLOW_CONN_MONGODB:" not in out.stderr and "is not defined" not in out.stderr  # the old, wrong hint


def test_a_target_password_never_appears_in_output(cli, tmp_path):
    secret = "pw-Zx9!secret@host"
    conn = json.dumps({"conn_type": "mongo", "host": "127.0.0.1", "port": 9, "login": "restorer", "password": secret,
                       "extra": {"serverSelectionTimeoutMS": 300}})
    for verbose in ((), ("-v",)):
        out = cli.run("restore", "mongo", "latest", "--to", "mongo_dead", "--json", *verbose,
                      extra_env={"AIRFLOW_CONN_MONGO_DEAD": conn})
        assert out.returncode == 1, out.stderr
        assert "cannot reach the MongoDB server" in out.stderr
        assert secret not in out.stdout + out.stderr
        assert json.loads(out.stdout)["ok"] is False


# ----------------------------------------------------------------------------- Redis


def _password(path: str) -> str:
    return next(line.split(None, 1)[1] for line in open(path).read().splitlines() if line.startswith("requirepass "))


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def test_restore_redis_to_a_detached_scratch_server(cli, history, cli_redis):
    data = cli.json("restore", "redis", history.ids["redis"], "--to", "scratch", "--detach")
    try:
        password = _password(data["password_file"])
        assert password not in json.dumps(data)
        assert oct(os.stat(data["password_file"]).st_mode & 0o777) == "0o600"
        with redis.Redis(port=data["port"], password=password) as r, cli_redis.client() as src:
            assert redis_fingerprint(r) == redis_fingerprint(src)
        assert data["keys"] == {"db0": 2000} == data["expected_keys"]
    finally:
        os.kill(data["pid"], signal.SIGTERM)  # the test stops the server the CLI left for it
    for _ in range(100):
        if not _alive(data["pid"]):
            break
        time.sleep(0.05)


def test_restore_redis_to_scratch_serves_until_ctrl_c(cli, history):
    proc = subprocess.Popen([*cli_cmd(), "restore", "redis", "latest", "--to", "scratch"], env=cli.full_env(),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=cli.tmp)
    try:
        lines = []
        while not any("serving until Ctrl-C" in line for line in lines):
            line = proc.stdout.readline()
            assert line, f"CLI ended early: {proc.stderr.read()}"
            lines.append(line)
        text = "".join(lines)
        port = int(re.search(r"listening on 127\.0\.0\.1:(\d+)", text).group(1))
        pid = int(re.search(r"pid (\d+), files in (\S+)", text).group(1))
        workdir = re.search(r"pid (\d+), files in (\S+)", text).group(2)
        assert history.ids["redis"] in text
        password = _password(f"{workdir}/redis.conf")
        with redis.Redis(port=port, password=password) as r:
            assert r.dbsize() == 2000
        proc.send_signal(signal.SIGINT)
        assert proc.wait(30) == 0
        assert not _alive(pid) and not os.path.exists(workdir)
    finally:
        if proc.poll() is None:
            proc.kill()


def cli_cmd() -> list[str]:
    import sys

    return [sys.executable, "-m", "backup_dr"]


def test_restore_redis_data_dir_needs_a_data_dir_and_a_restart_command(cli, history, tmp_path):
    unreachable = {"AIRFLOW_CONN_REDIS_CACHE": '{"conn_type": "redis", "host": "127.0.0.1", "port": 9}'}
    out = cli.run("restore", "redis", "latest", "--to", "redis_cache", "--data-dir", extra_env=unreachable)
    assert out.returncode == 2  # the policy's redis_cache has neither: the flags that supply them are named
    assert "needs the server's data directory and a restart command" in out.stderr and "--restart-command" in out.stderr
    out = cli.run("restore", "redis", "latest", "--to", "redis_cache", "--data-dir", str(tmp_path / "absent"),
                  "--restart-command", "true", extra_env=unreachable)
    assert out.returncode == 1 and "does not exist on this worker" in out.stderr
    out = cli.run("restore", "redis", "latest", "--to", "redis_cache", "--restart-command", "true", extra_env=unreachable)
    assert out.returncode == 2 and "--restart-command only applies to --data-dir" in out.stderr


# ----------------------------------------------------------------------------- files and git


def test_restore_files_round_trip_and_overwrite(cli, history, cli_app, tmp_path):
    target = tmp_path / "config"
    data = cli.json("restore", "files", "latest", "--source", "app_config", "--to", str(target))
    assert data["backup_id"] == history.ids["files"]
    assert tree(target) == tree(cli_app / "config")
    (target / "app.yaml").write_text("edited after the restore\n")
    out = cli.run("restore", "files", history.ids["files"], "--to", str(target))
    assert out.returncode == 1 and "is not empty; refusing to overwrite it" in out.stderr
    assert (target / "app.yaml").read_text() == "edited after the restore\n"
    data = cli.json("restore", "files", history.ids["files"], "--to", str(target), "--overwrite")
    assert tree(target) == tree(cli_app / "config")
    assert (tmp_path / data["restore"]["safety_copy"]).joinpath("app.yaml").read_text() == "edited after the restore\n"


def test_restore_git_bundle_clones_the_backed_up_commit(cli, history, cli_app, tmp_path):
    head = subprocess.run(["git", "rev-parse", "HEAD"], cwd=cli_app / "repo", capture_output=True, text=True).stdout.strip()
    for args in (("files", history.ids["git"]), ("git", "latest")):
        target = tmp_path / args[0]
        data = cli.json("restore", *args, "--to", str(target))
        assert data["restore"]["commit"] == head
        got = subprocess.run(["git", "rev-parse", "HEAD"], cwd=target, capture_output=True, text=True).stdout.strip()
        assert got == head and (target / "app.py").read_text() == (cli_app / "repo" / "app.py").read_text()
    out = cli.run("restore", "files", history.ids["git"], "--to", str(tmp_path / "x"), "--overwrite")
    assert out.returncode == 2 and "--overwrite does not apply" in out.stderr
    out = cli.run("restore", "files", "latest", "--to", str(tmp_path / "y"))
    assert out.returncode == 2 and "say which with --source" in out.stderr


def test_point_in_time_restore_through_the_cli_alone(fresh_history, mongo_client, mongo_scratch_server, tmp_path):
    """A full backup and one oplog slice in the stores, then ``restore mongo --at`` with only the
    CLI: the target holds exactly the source's state at that whole second, none of the later writes."""
    name = f"cli_pitr_{uuid.uuid4().hex[:8]}"
    policy_file = tmp_path / "policy.yaml"
    policy_file.write_text(POLICY.read_text().replace("database: korea_public_data", f"database: {name}"))
    policy = load_policy(policy_file)
    source = policy.sources["mongodb"]
    assert source.database == name
    db = mongo_client[name]
    try:
        db.announcements.insert_many([{"_id": i, "title": f"공고 {i}", "views": i} for i in range(300)])
        db.businesses.insert_many([{"_id": f"b{i}", "name": f"사업자 {i}", "employees": i} for i in range(100)])
        db.contents.insert_many([{"_id": i, "body": "본문 " * 20, "rev": 1} for i in range(100)])
        h = fresh_history()
        job = next(j for j in policy.classes["critical_data"].jobs if j.source == "mongodb")
        full = backup_mongodb(mongo_client, source, job, h._writer("critical_data", source, age=timedelta(minutes=10)))
        h.replicate("critical_data", full)

        # after the full backup: updates, deletes, inserts, a new index — all before T
        db.announcements.update_many({"views": {"$lt": 50}}, {"$set": {"status": "closed"}, "$unset": {"views": ""}})
        db.businesses.delete_many({"employees": {"$gte": 90}})
        db.contents.insert_one({"_id": "new", "body": "T 이전", "rev": 2})
        db.announcements.create_index("status")
        t = mongo_client.local["oplog.rs"].find_one({}, sort=[("$natural", -1)])["ts"].time
        expected = snapshot_db(mongo_client, name, CRITICAL)
        time.sleep(1.2)  # the next writes fall in a later second than T
        db.announcements.delete_many({})
        db.contents.insert_one({"_id": "after", "body": "T 이후"})
        assert mongo_client.local["oplog.rs"].find_one({}, sort=[("$natural", -1)])["ts"].time > t

        sliced = archive_slice(mongo_client, policy, "mongodb", h.local, h.stores,
                               datetime.now(timezone.utc).replace(microsecond=0) - timedelta(minutes=5))
        assert sliced.status == "archived", sliced.message

        target = f"{name}_restored"
        at = datetime.fromtimestamp(t, timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
        cli = h.cli(mongo_scratch=mongo_conn_json(mongo_scratch_server))
        env = {"BACKUP_DR_POLICY": str(policy_file)}
        # the on-call DBA types the Seoul wall-clock time, no offset (the policy reads it in Asia/Seoul)
        kst = datetime.fromtimestamp(t, ZoneInfo("Asia/Seoul")).strftime("%Y-%m-%dT%H:%M:%S")
        out = cli.run("restore", "mongo", "--at", kst, "--to", "mongo_scratch", "--db", target, "--json", extra_env=env)
        assert out.returncode == 0, out.stderr
        data = json.loads(out.stdout)
        echo = f"point in time: {kst!r} read as policy time zone Asia/Seoul = {at[:-1]}Z (UTC) = {kst.replace('T', ' ')} KST"
        assert echo in out.stderr, out.stderr
        assert out.stderr.index(echo) < out.stderr.index("restoring critical_data/mongodb to")  # said back before the restore
        assert data["at"]["utc"] == at and data["at"]["read_as"] == "policy time zone Asia/Seoul", data["at"]
        r = data["restore"]
        assert r["base_backup"] == full.backup_id and r["slice_ids"] == [sliced.backup_id], r
        assert r["mode"] == "whole_second" and r["replayed_entries"] > 0 and r["validated"] is True, r
        assert snapshot_db(mongo_scratch_server.client(), target, CRITICAL) == expected

        # the same again as text, into a non-empty target: refused without --drop, then replaced with it
        out = cli.run("restore", "mongo", "--at", at, "--to", "mongo_scratch", "--db", target, extra_env=env)
        assert out.returncode == 1 and "already has the collection(s)" in out.stderr, out.stderr
        assert "pass --drop" in out.stderr and "nothing was changed" in out.stderr, out.stderr
        out = cli.ok("restore", "mongo", "--at", at, "--to", "mongo_scratch", "--db", target, "--drop", extra_env=env)
        assert f"base {full.backup_id}" in out.stdout and "safety backup of the previous data" in out.stdout, out.stdout
        assert snapshot_db(mongo_scratch_server.client(), target, CRITICAL) == expected
    finally:
        mongo_client.drop_database(name)
        mongo_scratch_server.client().drop_database(f"{name}_restored")


def test_point_in_time_restore_reaches_the_real_pitr_module(cli, history, mongo_scratch_server, fresh_db_name):
    """With the real module: a time before the oldest backup is refused by it, through the CLI, target untouched."""
    out = cli.run("restore", "mongo", "--at", "2026-01-01T00:00:00Z", "--to", "mongo_scratch", "--db", fresh_db_name,
                  "--class", "critical_data")
    assert out.returncode == 1, out.stderr
    assert "cannot restore critical_data/mongodb to" in out.stderr
    assert fresh_db_name not in mongo_scratch_server.client().list_database_names()
