"""Each stand-in server really answers: the rest of the suite stands on these."""

from __future__ import annotations

import smtplib
import urllib.request
import json

from backup_dr.devstack import sample_data


def test_mongo_insert_find_and_oplog(mongo_client, fresh_db_name):
    coll = mongo_client[fresh_db_name]["smoke"]
    coll.insert_one({"_id": 1, "이름": "공고"})
    assert coll.find_one({"_id": 1})["이름"] == "공고"
    last = mongo_client.local["oplog.rs"].find({"ns": f"{fresh_db_name}.smoke"}).sort("$natural", -1).limit(1)
    assert next(last)["op"] == "i"
    mongo_client.drop_database(fresh_db_name)


def test_seeded_sample_data(seeded_mongo, mongo_client):
    db = mongo_client[sample_data.DATABASE]
    assert seeded_mongo == {name: db[name].count_documents({}) for name in sample_data.COLLECTIONS}
    assert all(n > 0 for n in seeded_mongo.values())
    doc = db.announcements.find_one()
    assert doc["budget_krw"].to_decimal() > 0 and "공고" in doc["title"]
    info = db.contents.index_information()
    assert info["draft_expires_at_1"]["expireAfterSeconds"] == 0
    assert db.announcements.index_information()["announcement_id_1"]["unique"] is True


def test_scratch_mongo_is_a_separate_server(mongo_server, mongo_scratch_server):
    assert mongo_server.port != mongo_scratch_server.port
    assert mongo_scratch_server.client().admin.command("ping")["ok"] == 1


def test_redis_set_get_with_password(redis_server):
    r = redis_server.client()
    r.set("smoke", "값")
    assert r.get("smoke").decode() == "값"
    assert r.config_get("repl-diskless-sync-delay")["repl-diskless-sync-delay"] == "0"
    assert r.execute_command("DEBUG", "DIGEST")  # debug commands enabled
    # the password is not on the server's command line
    with open(f"/proc/{redis_server.pid}/cmdline", "rb") as f:
        assert redis_server.password.encode() not in f.read()


def test_s3_put_get(s3_server, s3_bucket):
    c = s3_server.client()
    c.put_object(Bucket=s3_bucket, Key="a/b", Body=b"hello")
    assert c.get_object(Bucket=s3_bucket, Key="a/b")["Body"].read() == b"hello"


def test_gcs_put_get(gcs_server, gcs_bucket):
    blob = gcs_server.client().bucket(gcs_bucket).blob("a/b")
    blob.upload_from_string(b"hello")
    assert blob.download_as_bytes() == b"hello"


def test_smtp_sink_receives(sinks):
    smtp, _ = sinks
    with smtplib.SMTP("127.0.0.1", smtp.port) as s:
        s.sendmail("a@example", ["b@example"], "Subject: smoke\n\nbody")
    assert smtp.wait_for(lambda m: m["Subject"] == "smoke")


def test_slack_sink_receives(sinks):
    _, slack = sinks
    req = urllib.request.Request(f"{slack.url}/services/x", data=json.dumps({"text": "hi"}).encode(), method="POST")
    urllib.request.urlopen(req).read()
    assert slack.wait_for(lambda r: r["body"] == {"text": "hi"})
