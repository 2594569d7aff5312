"""DR scenario DAGs end to end with dag.test(): real restores, human approvals answered as a
person would, repoint webhook, post-recovery health check, measured RPO/RTO summary."""

from __future__ import annotations

import html
import json
import time
import warnings
from datetime import datetime, timedelta, timezone

import pytest

from backup_dr.core.artifacts.layout import BackupId
from backup_dr.core.catalog import Catalog
from backup_dr.core.stores.local import LocalStore
from backup_dr.devstack.servers import MongoServer, RedisServer
from tests.conftest import set_connection
from tests.dags.conftest import Approver, run_dag

COLLS = ("announcements", "businesses", "contents")


@pytest.fixture
def replacement_mongo(tmp_path):
    """The new database server a DBA provisions during the incident."""
    with MongoServer(tmp_path / "replacement") as server:
        set_connection("mongo_dr_target", conn_type="mongo", host="127.0.0.1", port=server.port, extra={"directConnection": True})
        yield server


def _raw_by_id(db, coll):
    from bson.raw_bson import RawBSONDocument

    return {d["_id"]: d.raw for d in db.get_collection(coll, codec_options=db.codec_options.with_options(document_class=RawBSONDocument)).find()}


def _backup_now(when):
    dr, states = run_dag("backup_critical_data", logical_date=when)
    assert str(dr.state) == "success", states
    return dr


@pytest.fixture
def writing_prod(tmp_path, monkeypatch):
    """This test's own production server (the app writes to it during the backup), as the
    ``mongo_korea_public_data`` connection; the session's shared server is left untouched."""
    from backup_dr.devstack import sample_data

    with MongoServer(tmp_path / "prod", oplog_max_entries=500_000) as prod:
        monkeypatch.setenv("AIRFLOW_CONN_MONGO_KOREA_PUBLIC_DATA", json.dumps(
            {"conn_type": "mongo", "host": "127.0.0.1", "port": prod.port, "extra": {"directConnection": True}}))
        client = prod.client()
        sample_data.seed_mongo(client, {"announcements": 1500, "businesses": 1000, "contents": 300, "statistics": 50})
        yield client
        client.close()


def _ts(point):
    from bson import Timestamp

    return Timestamp(point["t"], point["i"])


def _oplog_ids(client, after, until=None) -> set[tuple[str, object]]:
    """(collection, _id) of every document of the database written after ``after`` (up to ``until``)."""
    ts = {"$gt": after, **({"$lte": until} if until is not None else {})}
    out = set()
    for e in client.local["oplog.rs"].find({"ts": ts, "ns": {"$regex": r"^korea_public_data\."}}):
        doc = e.get("o2") if e["op"] == "u" else e.get("o")
        if isinstance(doc, dict) and "_id" in doc:
            out.add((e["ns"].split(".", 1)[1], doc["_id"]))
    return out


def _written_at_or_before(client, coll: str, _id, point) -> bool:
    """Whether the newest oplog entry that wrote ``_id`` of ``coll`` is at or before ``point``."""
    entries = list(client.local["oplog.rs"].find({"ns": f"korea_public_data.{coll}", "$or": [{"o._id": _id}, {"o2._id": _id}]}))
    return bool(entries) and max(e["ts"] for e in entries) <= point


def assert_consistent_at_end(src_client, dst_db, backup: dict) -> None:
    """The restore of a backup taken during writes holds the state at the backup's consistent point:
    the counts recorded for that point, and, byte for byte, every document nobody wrote after it
    (those written later differ from the live source by design)."""
    end = _ts(backup["consistent_point"]["end"])
    during = _oplog_ids(src_client, _ts(backup["consistent_point"]["start"]), end)
    later = _oplog_ids(src_client, end)
    assert during, "no write landed during the backup: the scenario is not exercised"
    assert later, "no write after the consistent point: the comparison would not tell it from the live data"
    at_end = backup["consistent_point"]["counts"]
    src_db = src_client["korea_public_data"]
    for coll in COLLS:
        dst = _raw_by_id(dst_db, coll)
        assert len(dst) == at_end[coll], (coll, len(dst), at_end[coll])
        skip = {i for c, i in later if c == coll}
        src = {k: v for k, v in _raw_by_id(src_db, coll).items() if k not in skip}
        # A write whose oplog entry is at or before the dump's START, yet was not visible to the
        # dump's reads, is the test server's oplog visibility (mongod exposes no oplog entry with
        # a hole before it), not the product's: named, not hidden. Anything else must be equal.
        hole = {k for k in set(src) - set(dst) if _written_at_or_before(src_client, coll, k, _ts(backup["consistent_point"]["start"]))}
        if hole:
            warnings.warn(f"{coll}: {len(hole)} write(s) at/before the dump's start not visible to it (test server oplog visibility): {sorted(map(str, hole))}")
        assert {k: v for k, v in dst.items() if k not in skip} == {k: v for k, v in src.items() if k not in hole}, coll
        assert set(dst_db[coll].index_information()) == set(src_db[coll].index_information())
    written = {i for c, i in during if c == "announcements"}
    assert written & set(_raw_by_id(dst_db, "announcements")), "none of the writes during the backup was restored"


class Writer:
    """The application keeps writing while the backup runs: inserts, updates and deletes."""

    def __init__(self, client):
        import threading

        self.db, self.ops, self._stop = client["korea_public_data"], 0, threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self):
        i = 0
        while not self._stop.is_set():
            i += 1
            self.db.announcements.insert_one({"announcement_id": f"LIVE-{i:06d}", "title": f"실시간 공고 {i}", "status": "모집중"})
            self.db.businesses.update_one({"business_number": {"$exists": True}}, {"$inc": {"live_updates": 1}})
            if i % 3 == 0:
                self.db.announcements.delete_one({"announcement_id": f"LIVE-{i - 1:06d}"})
            self.ops += 3 if i % 3 == 0 else 2

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join(10)


def _s3_gets(s3_server, key_suffix: str, action) -> int:
    """How many times ``action()`` downloaded an object ending in ``key_suffix`` from the S3 server
    (moto's own request recorder: every request the server received)."""
    import urllib.request

    def call(what, method="POST"):
        req = urllib.request.Request(f"{s3_server.endpoint_url}/moto-api/recorder/{what}", method=method, data=b"" if method == "POST" else None)
        with urllib.request.urlopen(req, timeout=30) as resp:
            return resp.read()

    call("reset-recording")
    call("start-recording")
    try:
        action()
    finally:
        call("stop-recording")
    lines = [json.loads(x) for x in call("download-recording", "GET").decode().splitlines() if x.strip()]
    call("reset-recording")
    return sum(1 for r in lines if r["method"] == "GET" and r["url"].split("?")[0].endswith(key_suffix))


def test_database_server_failure_recovers_onto_a_new_server(stack, webhook_sink, replacement_mongo, writing_prod, s3_server):
    """The application wrote during the backup. The failed server took the local staging disk
    with it: the copy comes from S3, downloaded ONCE (verified while it arrives), the recovery
    time runs from that first byte, and the new server holds the backup's consistent state."""
    import shutil

    from tests.faults.conftest import xcom

    smtp, slack = stack["smtp"], stack["slack"]
    now = datetime.now(timezone.utc).replace(microsecond=0)
    with Writer(writing_prod) as writer:
        backup = xcom(_backup_now(now - timedelta(hours=1)), "backup_mongodb")
        time.sleep(0.5)  # and on after it: the live data moves past the backup's consistent point
    assert writer.ops > 20, writer.ops
    bid = BackupId.parse(backup["backup_id"])
    shutil.rmtree(stack["local"] / bid.prefix)
    webhook_sink.requests.clear()

    def recover():
        with Approver({"provision_mongodb": ("Approve", {})}) as approver:
            dr, states = run_dag("dr_database_server_failure", run_conf={"dry_run": False})
        assert approver.answered == ["provision_mongodb"]
        recover.result = dr, states

    assert _s3_gets(s3_server, bid.key("korea_public_data.archive.gz"), recover) == 1  # one download of the copy
    dr, states = recover.result
    assert str(dr.state) == "success", states
    assert set(states.values()) == {"success"}, states
    pick = xcom(dr, "pick_backup")
    assert pick["backup_id"] == str(bid) and pick["order"] == ["s3", "gcs"] and "rehearsal" not in pick
    end = datetime.fromtimestamp(backup["consistent_point"]["end"]["t"], timezone.utc)
    assert pick["captured_at"] == end.isoformat().replace("+00:00", "Z") and pick["slot"] <= pick["captured_at"]  # the same second when the dump is quick
    restored = xcom(dr, "restore")
    assert restored["store"] == "s3" and restored["fell_back_from"] == []
    # the new server holds the data at the backup's consistent point, byte for byte
    assert_consistent_at_end(writing_prod, replacement_mongo.client()["korea_public_data"], backup)
    # the app was told where its data now lives (no credentials in the payload)
    posts = webhook_sink.wait_for(lambda r: r["path"] == "/admin/repoint")
    assert posts and posts[0]["body"]["mongodb"]["port"] == replacement_mongo.port
    assert posts[0]["headers"]["Authorization"] == "Bearer repoint-token-secret"
    assert "password" not in json.dumps(posts[0]["body"])
    # summary: measured RTO and RPO against the targets, by email and Slack
    mail = smtp.wait_for(lambda m: "DR database_server_failure: recovered" in m["Subject"])
    assert mail, [(m["Subject"], smtp.text(m)[:300]) for m in smtp.messages]
    text = smtp.text(mail[0])
    assert "RTO: recovered in" in text and "(first byte fetched → validated target) vs target 30m: MET" in text
    assert "RPO: recovery point" in text and "vs target 4h: MET" in text
    assert slack.wait_for(lambda r: "DR database_server_failure" in str(r["body"]))
    reports = list((stack["local"] / "backup-dr-v1" / "_reports" / "dr" / "database_server_failure").glob("*.json"))
    report = json.loads(reports[0].read_text())
    assert report["outcome"] == "recovered" and report["rto_met"] and report["rpo_met"] and report["store"] == "s3"
    assert report["recovery_time_from"] == restored["first_byte_at"].replace("+00:00", "Z")
    assert report["recovery_time_to"] == xcom(dr, "validate")["validated_at"].replace("+00:00", "Z")
    assert 0 < report["recovery_time_seconds"] < report["run_seconds"] < 1800 and report["data_loss_seconds"] < 4 * 3600


def test_dry_run_is_the_default_and_changes_nothing(stack, webhook_sink, replacement_mongo):
    from tests.faults.conftest import xcom

    now = datetime.now(timezone.utc).replace(microsecond=0)
    _backup_now(now - timedelta(hours=2))
    webhook_sink.requests.clear()
    with Approver({"provision_mongodb": ("Approve", {})}):
        dr, states = run_dag("dr_database_server_failure")
    assert str(dr.state) == "success", states
    rehearsal = xcom(dr, "pick_backup")["rehearsal"]  # the rehearsal re-hashes the copy it would restore
    assert rehearsal["store"] == "local" and rehearsal["fell_back_from"] == [] and rehearsal["bytes"] > 0
    assert "korea_public_data" not in replacement_mongo.client().list_database_names()
    assert not webhook_sink.wait_for(lambda r: r["path"] == "/admin/repoint", timeout=1)
    assert stack["smtp"].wait_for(lambda m: "DR database_server_failure: dry run" in m["Subject"])


def test_rejected_approval_stops_the_recovery(stack, webhook_sink, replacement_mongo):
    now = datetime.now(timezone.utc).replace(microsecond=0)
    _backup_now(now - timedelta(hours=3))
    with Approver({"provision_mongodb": ("Reject", {})}):
        dr, states = run_dag("dr_database_server_failure", run_conf={"dry_run": False})
    assert str(dr.state) == "failed"
    assert states["provision_mongodb"] == "failed" and states["restore"] == "upstream_failed"
    assert states["summary"] == "failed"  # it reports, then fails so the run shows red
    assert "korea_public_data" not in replacement_mongo.client().list_database_names()
    mail = stack["smtp"].wait_for(lambda m: "DR database_server_failure: failed" in m["Subject"])
    assert mail and "provision_mongodb" in stack["smtp"].text(mail[0])


@pytest.mark.slow
def test_full_infrastructure_failure_restores_db_cache_and_files(stack, webhook_sink, replacement_mongo, tmp_path, writing_prod):
    """Everything is gone. The incident time is typed in KST without an offset: the cache comes
    back from the last snapshot captured BEFORE it (not the newer one taken after it), and since
    that snapshot's local copy rotted, from the next store. The application wrote during the
    database backup: the new server holds the backup's consistent state."""
    import shutil
    from zoneinfo import ZoneInfo

    from tests.faults.conftest import xcom

    now = datetime.now(timezone.utc).replace(microsecond=0)
    runs = {}
    with Writer(writing_prod) as writer:  # the application writes during the database backup
        dr, states = run_dag("backup_critical_data", logical_date=now - timedelta(hours=1))
        time.sleep(0.5)
    assert str(dr.state) == "success", states
    assert writer.ops > 20, writer.ops
    runs["backup_critical_data"] = dr
    for dag_id in ("backup_operational_data", "backup_configuration"):
        dr, states = run_dag(dag_id, logical_date=now - timedelta(hours=1))
        assert str(dr.state) == "success", (dag_id, states)
        runs[dag_id] = dr
    before = xcom(runs["backup_operational_data"], "backup_redis_cache")["backup_id"]
    source_redis = stack["redis"].client()
    expected_keys = source_redis.dbsize()
    time.sleep(1.1)
    incident = datetime.now(timezone.utc).replace(microsecond=0)
    time.sleep(1.1)
    source_redis.mset({f"after-incident:{i}": "x" for i in range(50)})  # written after the incident ...
    dr, states = run_dag("backup_operational_data", logical_date=now - timedelta(minutes=30))
    assert str(dr.state) == "success", states
    after = xcom(dr, "backup_redis_cache")["backup_id"]  # ... and captured by a newer snapshot
    rdb = stack["local"] / BackupId.parse(before).key("dump.rdb")
    raw = bytearray(rdb.read_bytes())
    raw[len(raw) // 2] ^= 0x01
    rdb.write_bytes(bytes(raw))  # the local copy of the snapshot to use has rotted
    # the whole site is gone: app files too
    app = stack["app"]
    config_before = {p.relative_to(app): p.read_bytes() for p in (app / "config").rglob("*") if p.is_file()}
    shutil.rmtree(app / "config")
    shutil.rmtree(app / "uploads")
    typed = incident.astimezone(ZoneInfo("Asia/Seoul")).strftime("%Y-%m-%dT%H:%M:%S")
    with RedisServer(tmp_path / "new-redis", password="new-redis-secret") as new_redis:
        set_connection("redis_dr_target", conn_type="redis", host="127.0.0.1", port=new_redis.port, password=new_redis.password)
        answers = {n: ("Approve", {}) for n in ("provision_instances", "docker_environment", "change_dns")}
        with Approver(answers) as approver:
            dr, states = run_dag("dr_full_infrastructure_failure", run_conf={"dry_run": False, "incident_time": typed})
        assert sorted(approver.answered) == sorted(answers)
        assert str(dr.state) == "success", states
        assert new_redis.client().dbsize() == expected_keys
        assert not new_redis.client().exists("after-incident:0")
    cache = xcom(dr, "restore_redis")
    assert cache["backup_id"] == before != after and cache["store"] == "s3", cache
    assert [s["store"] for s in cache["fell_back_from"]] == ["local"] and "does not match its manifest" in cache["fell_back_from"][0]["reason"]
    assert {p.relative_to(app): p.read_bytes() for p in (app / "config").rglob("*") if p.is_file()} == config_before
    assert any((app / "uploads").rglob("*.pdf"))
    assert_consistent_at_end(writing_prod, replacement_mongo.client()["korea_public_data"],
                             xcom(runs["backup_critical_data"], "backup_mongodb"))
    report = json.loads(sorted((stack["local"] / "backup-dr-v1" / "_reports" / "dr" / "full_infrastructure_failure").glob("*.json"))[-1].read_text())
    assert report["incident_time"] == incident.isoformat() and report["incident_time_typed"]["read_as"] == "policy time zone Asia/Seoul"
    firsts = [xcom(dr, t)["first_byte_at"] for t in ("restore", "restore_redis", "restore_files")]
    assert report["recovery_time_from"] == min(firsts).replace("+00:00", "Z") and report["rto_met"] is True


@pytest.mark.slow
def test_data_corruption_rolls_back_to_the_second_before_it(stack, webhook_sink, tmp_path, monkeypatch):
    """Point-in-time recovery through the DR DAG, the way it happens: the application writes
    during the full backup; the on-call DBA types the Seoul wall-clock time WITHOUT an offset in
    the analyze_damage form (the policy reads such times in Asia/Seoul); the instant is said back
    before anything changes; the database comes back exactly as it was at that second, the
    safety backup step's dump is the only one taken, and the summary states all of it."""
    from zoneinfo import ZoneInfo

    from backup_dr.devstack import sample_data
    from tests.faults.conftest import xcom

    with MongoServer(tmp_path / "prod", oplog_max_entries=500_000) as prod:
        conn = {"conn_type": "mongo", "host": "127.0.0.1", "port": prod.port, "extra": {"directConnection": True}}
        monkeypatch.setenv("AIRFLOW_CONN_MONGO_KOREA_PUBLIC_DATA", json.dumps(conn))
        client = prod.client()
        sample_data.seed_mongo(client, {"announcements": 400, "businesses": 300, "contents": 50, "statistics": 100})
        db = client["korea_public_data"]
        now = datetime.now(timezone.utc).replace(microsecond=0)
        with Writer(prod.client()) as writer:
            _backup_now(now - timedelta(minutes=40))
        assert writer.ops > 20, writer.ops
        dr, states = run_dag("pitr_oplog_archive", logical_date=now - timedelta(minutes=30))
        assert str(dr.state) == "success", states
        # good writes, then the moment to go back to, then the corruption (in a later second)
        db.announcements.update_many({"status": "모집중"}, {"$set": {"status": "마감", "closed_by": "batch-2026-11"}})
        db.businesses.insert_one({"business_number": "999-99-99999", "name": "(주)새사업체"})
        time.sleep(1.1)
        good_at = datetime.now(timezone.utc).replace(microsecond=0)
        expected = {c: _raw_by_id(db, c) for c in COLLS}
        time.sleep(1.1)
        db.announcements.delete_many({"region": {"$in": ["서울특별시", "부산광역시"]}})  # the "corruption"
        db.businesses.update_many({}, {"$set": {"name": None}})
        dr, states = run_dag("pitr_oplog_archive", logical_date=now - timedelta(minutes=15))
        assert str(dr.state) == "success", states
        typed = good_at.astimezone(ZoneInfo("Asia/Seoul")).strftime("%Y-%m-%dT%H:%M:%S")  # KST, no offset
        with Approver({"analyze_damage": ("Approve", {"point_in_time": typed})}) as approver:
            dr, states = run_dag("dr_data_corruption", run_conf={"dry_run": False, "drop": True})
        assert approver.answered == ["analyze_damage"]
        assert str(dr.state) == "success", states
        for coll in COLLS:
            assert _raw_by_id(db, coll) == expected[coll], coll
        # said back before anything changed: the pick step, which runs before the safety backup and the restore
        echo = (f"{typed!r} read as policy time zone Asia/Seoul = {good_at:%Y-%m-%dT%H:%M:%S}Z (UTC) = "
                f"{typed.replace('T', ' ')} KST (Asia/Seoul)")
        pick = xcom(dr, "pick_backup")
        assert pick["typed_point_in_time"]["echo"] == echo and pick["recovery_point"] == good_at.isoformat().replace("+00:00", "Z")
        assert pick["pitr"]["base_backup"] == pick["backup_id"] and pick["pitr"]["slices"]
        restored = xcom(dr, "restore")
        assert restored["base_backup"] == pick["backup_id"] and restored["slice_ids"] == pick["pitr"]["slices"]
        # one safety dump of the target: the safety_backup step's; the restore rolled back to it, took none of its own
        safety = Catalog([LocalStore(stack["local"], name="local")]).list("critical_data", "mongodb", "safety")
        assert [e.backup_id for e in safety] == [xcom(dr, "safety_backup")["safety_backup"]] == [restored["safety_backup"]]
        mail = stack["smtp"].wait_for(lambda m: "DR data_corruption: recovered" in m["Subject"])
        text = html.unescape(stack["smtp"].text(mail[0])) if mail else ""
        assert f"recovery point {good_at.isoformat()}" in text and f"point in time: {echo}" in text, text
