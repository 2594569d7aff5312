"""Helpers for the PITR tests: a policy pointed at a test database, backups, slices, snapshots."""

from __future__ import annotations

import dataclasses
import itertools
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

from bson import encode
from bson.codec_options import CodecOptions
from bson.raw_bson import RawBSONDocument

from backup_dr.core.artifacts.layout import BackupId
from backup_dr.core.artifacts.writer import ArtifactWriter
from backup_dr.core.mongo.backup import backup_mongodb
from backup_dr.core.pitr import archive_slice
from backup_dr.core.policy import load_policy
from backup_dr.core.stores.local import LocalStore

ROOT = Path(__file__).resolve().parents[3]
RAW = CodecOptions(document_class=RawBSONDocument)
PROTECTED = ("announcements", "businesses", "contents")  # critical_data's job collections


def policy_for(database: str):
    """The project policy, with the MongoDB source pointed at ``database``."""
    policy = load_policy(ROOT / "include" / "policy.yaml")
    src = dataclasses.replace(policy.sources["mongodb"], database=database)
    return dataclasses.replace(policy, sources={**policy.sources, "mongodb": src})


class Clock:
    """Distinct, increasing run_after stamps (backup ids have one-second resolution)."""

    def __init__(self, start: datetime | None = None):
        self.start = start or datetime.now(timezone.utc).replace(microsecond=0) - timedelta(hours=1)
        self._n = itertools.count()

    def next(self) -> datetime:
        return self.start + timedelta(minutes=next(self._n))


def full_backup(client, policy, store: LocalStore, when: datetime):
    cls = policy.classes["critical_data"]
    job = next(j for j in cls.jobs if j.source == "mongodb")
    writer = ArtifactWriter(store, BackupId.new("critical_data", "mongodb", "full", when), source_type="mongodb",
                            retention=cls.retention, run_after=when)
    return backup_mongodb(client, policy.sources["mongodb"], job, writer)


def take_slice(client, policy, store: LocalStore, when: datetime, stores: dict | None = None):
    return archive_slice(client, policy, "mongodb", store, stores or {store.name: store}, when)


def newest_ts(client):
    return client.local["oplog.rs"].find_one({}, sort=[("$natural", -1)])["ts"]


def wait_next_second(client) -> None:
    """Sleep until the wall clock is past the second of the newest oplog position: later writes
    then land in a later second (SecantusDB's ts.time is the wall clock second). The newest
    position is the member's ``hello.lastWrite`` (what a dump's or slice's end is taken from;
    SecantusDB mints it at each call, ahead of the newest entry), not only the newest entry."""
    last = max(newest_ts(client).time, client.admin.command("hello")["lastWrite"]["opTime"]["ts"].time)
    while time.time() < last + 1.02:
        time.sleep(0.02)


def snapshot(db, names=PROTECTED) -> dict:
    """Documents (raw bytes by _id) and index specs of the named collections that exist."""
    out = {}
    existing = set(db.list_collection_names())
    for name in names:
        if name not in existing:
            continue
        docs = {}
        for d in db[name].with_options(codec_options=RAW).find():
            docs[encode({"k": d["_id"]})] = d.raw
        indexes = sorted(tuple(sorted((k, repr(v)) for k, v in ix.items() if k not in ("ns", "v"))) for ix in db[name].list_indexes())
        out[name] = {"docs": docs, "indexes": indexes}
    return out


def assert_same(got: dict, want: dict, what: str) -> None:
    assert set(got) == set(want), f"{what}: collections {sorted(got)} != {sorted(want)}"
    for name in want:
        g, w = got[name], want[name]
        missing = set(w["docs"]) - set(g["docs"])
        extra = set(g["docs"]) - set(w["docs"])
        changed = [k for k in set(w["docs"]) & set(g["docs"]) if g["docs"][k] != w["docs"][k]]
        assert not (missing or extra or changed), (
            f"{what}: {name}: {len(missing)} missing, {len(extra)} extra, {len(changed)} different documents")
        assert g["indexes"] == w["indexes"], f"{what}: {name}: indexes {g['indexes']} != {w['indexes']}"


def seed(db, n: int = 200) -> None:
    """The protected collections (plus one the critical_data class does not protect)."""
    db.announcements.insert_many([{"_id": i, "title": f"공고 {i}", "region": ["서울", "부산", "대구"][i % 3], "views": 0,
                                   "tags": ["a"]} for i in range(n)])
    db.businesses.insert_many([{"_id": f"b{i}", "name": f"사업체 {i}", "status": "open", "employees": i % 50} for i in range(n)])
    db.contents.insert_many([{"_id": i, "body": "x" * 200, "rev": 1} for i in range(n // 2)])
    db.statistics.insert_many([{"_id": i, "hits": i} for i in range(20)])
    db.announcements.create_index("region")
