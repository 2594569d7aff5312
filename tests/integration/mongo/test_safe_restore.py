"""The safe restore: refusal, rollback on failures midway, bad input refused untouched."""

from __future__ import annotations

import bson
import pytest

from backup_dr.core.errors import IntegrityError, NotFoundError, RestoreError, RestoreRefused
from backup_dr.core.mongo.archive import ArchiveWriter, PreludeEntry
from backup_dr.core.mongo.backup import backup_mongodb, restore_mongodb
from backup_dr.core.mongo.codecs import compressed_writer
from backup_dr.core.mongo.metadata import CollectionMeta
from backup_dr.core.mongo.safe_restore import safe_restore
from backup_dr.core.policy_model import Job, MongoSource
from backup_dr.core.stores.local import LocalStore

from mongo_support import snapshot, uniq


@pytest.fixture
def target(mongo_client, drop_after):
    """A production-like target with data the restore would replace."""
    name = uniq("prod")
    drop_after.append(name)
    db = mongo_client[name]
    db.orders.insert_many([{"_id": i, "k": i, "state": "before"} for i in range(300)])
    db.orders.create_index("k", unique=True)
    db.create_collection("audit", capped=True, size=65536)
    db.audit.insert_one({"_id": 1, "msg": "keep me"})
    return db


def write_archive(path, collections: dict[str, list[dict]], *, indexes: dict[str, list[dict]] | None = None,
                  codec: str = "gzip", db: str = "shop") -> None:
    with open(path, "wb") as raw, compressed_writer(raw, codec) as out:
        w = ArchiveWriter(out, server_version="8.2.11", tool_version="test")
        metas = {c: CollectionMeta(name=c, indexes=[{"v": 2, "key": {"_id": 1}, "name": "_id_"}] + (indexes or {}).get(c, []))
                 for c in collections}
        w.write_prelude([PreludeEntry(db, c, m.to_json(), 0, "collection") for c, m in metas.items()])
        for c, docs in collections.items():
            w.begin(db, c)
            w.write_docs(b"".join(bson.encode(d) for d in docs))
            w.end()


def restore(client, path, tmp_path, target_db, **kw):
    return safe_restore(client, path, target_db=target_db, safety_store=LocalStore(tmp_path / "safety"), **kw)


def safety_backups(tmp_path) -> list[str]:
    root = tmp_path / "safety"
    return sorted(p.name for p in root.rglob("manifest.json")) if root.exists() else []


def test_non_empty_target_is_refused_without_drop(mongo_client, target, tmp_path):
    path = tmp_path / "a.archive.gz"
    write_archive(path, {"orders": [{"_id": 1, "k": 1}]})
    before = snapshot(target)
    with pytest.raises(RestoreRefused, match=r"already has the collection\(s\) this restore would write: orders \(300 documents\)"):
        restore(mongo_client, path, tmp_path, target.name)
    assert snapshot(target) == before and safety_backups(tmp_path) == []


def test_successful_restore_with_drop_keeps_a_safety_backup_that_undoes_it(mongo_client, target, tmp_path):
    path = tmp_path / "a.archive.gz"
    write_archive(path, {"orders": [{"_id": i, "k": i, "state": "after"} for i in range(50)]},
                  indexes={"orders": [{"v": 2, "key": {"k": 1}, "name": "k_1", "unique": True}]})
    before = snapshot(target)
    result = restore(mongo_client, path, tmp_path, target.name, drop=True)
    assert target.orders.count_documents({"state": "after"}) == 50 == target.orders.count_documents({})
    assert target.audit.find_one() == {"_id": 1, "msg": "keep me"}  # not in the archive: untouched
    assert result.safety_backup and result.validation["ok"]
    # undo with the kept safety backup
    safety = LocalStore(tmp_path / "safety")
    from backup_dr.core.artifacts.layout import BackupId
    from backup_dr.core.artifacts.reader import load_manifest

    manifest = load_manifest(safety, BackupId.parse(result.safety_backup))
    restore_mongodb(mongo_client, safety, manifest, workdir=tmp_path / "w", safety_dir=tmp_path / "safety2",
                    target_db=target.name, drop=True)
    assert snapshot(target) == before


def test_duplicate_document_midway_rolls_back_exactly(mongo_client, target, tmp_path):
    path = tmp_path / "dup.archive.gz"
    docs = [{"_id": i, "k": i, "state": "after"} for i in range(6000)] + [{"_id": 5, "k": -5}]  # dup _id in a later batch
    write_archive(path, {"orders": docs, "more": [{"_id": 1}]})
    before = snapshot(target)
    with pytest.raises(RestoreError, match="failed; the target was rolled back to its state before the restore") as ei:
        restore(mongo_client, path, tmp_path, target.name, drop=True)
    assert "duplicate key" in str(ei.value) and "orders" in str(ei.value)
    assert snapshot(target) == before
    assert len(safety_backups(tmp_path)) == 1  # kept


def test_unique_index_violation_rolls_back(mongo_client, target, tmp_path):
    path = tmp_path / "uniq.archive.gz"
    write_archive(path, {"orders": [{"_id": 1, "k": 7}, {"_id": 2, "k": 7}]},
                  indexes={"orders": [{"v": 2, "key": {"k": 1}, "name": "k_1", "unique": True}]})
    before = snapshot(target)
    with pytest.raises(RestoreError, match="building the indexes of .*orders failed"):
        restore(mongo_client, path, tmp_path, target.name, drop=True)
    assert snapshot(target) == before


def test_killed_connection_midway_rolls_back(faulty_mongo_server, tmp_path):
    path = tmp_path / "kill.archive.gz"
    write_archive(path, {"orders": [{"_id": i, "k": i, "pad": "x" * 500} for i in range(12000)]})
    admin = faulty_mongo_server.client()
    target = admin["prod"]
    target.orders.insert_many([{"_id": i, "k": i, "state": "before"} for i in range(300)])
    before = snapshot(target)
    victim = faulty_mongo_server.client(appname="restore-victim")
    admin.admin.command("configureFailPoint", "failCommand", mode={"skip": 1, "times": 2},
                        data={"failCommands": ["insert"], "closeConnection": True, "appName": "restore-victim"})
    try:
        with pytest.raises(RestoreError, match="rolled back") as ei:
            restore(victim, path, tmp_path, target.name, drop=True)
        assert "AutoReconnect" in str(ei.value) or "cannot reach" in str(ei.value) or "connection" in str(ei.value).lower()
    finally:
        admin.admin.command("configureFailPoint", "failCommand", mode="off")
        victim.close()
    assert snapshot(target) == before
    admin.close()


@pytest.mark.parametrize("damage,message", [
    ("truncate", "truncated"),
    ("magic", "not a mongodump archive"),
    ("crc", "CRC mismatch for namespace shop.orders"),
    ("codec", "unknown compression or not a mongodump archive"),
])
def test_bad_archives_are_refused_before_the_target_is_touched(mongo_client, target, tmp_path, damage, message):
    path = tmp_path / "bad.archive"
    write_archive(path, {"orders": [{"_id": i, "k": i} for i in range(500)]}, codec="none")
    raw = bytearray(path.read_bytes())
    if damage == "truncate":
        raw = raw[:-300]
    elif damage == "magic":
        raw[:4] = b"\x6d\xe2\x99\x00"
    elif damage == "crc":
        i = raw.index(bson.encode({"_id": 7, "k": 7}))
        raw[i + 12] ^= 0x01  # flip a bit inside document _id 7
    else:
        raw = bytearray(b"\x04\x22\x4d\x18") + raw  # an lz4 frame magic
    path.write_bytes(bytes(raw))
    before = snapshot(target)
    with pytest.raises(IntegrityError, match=message):
        restore(mongo_client, path, tmp_path, target.name, drop=True)
    assert snapshot(target) == before and safety_backups(tmp_path) == []


def test_missing_database_in_the_archive_is_refused(mongo_client, target, tmp_path):
    path = tmp_path / "a.archive.gz"
    write_archive(path, {"orders": [{"_id": 1}]})
    with pytest.raises(NotFoundError, match="has no database 'nope'"):
        restore(mongo_client, path, tmp_path, target.name, drop=True, source_db="nope")


def test_missing_source_database_fails_the_backup_clearly(mongo_client, tmp_path, make_writer, local_store):
    source = MongoSource(name="mongodb", conn_id="x", database="no_such_db_here")
    writer = make_writer()
    with pytest.raises(NotFoundError, match="MongoDB database 'no_such_db_here' does not exist on the source server"):
        backup_mongodb(mongo_client, source, Job(source="mongodb"), writer)
    assert list(local_store.list()) == []  # aborted: nothing half-written


def test_corrupt_stored_backup_is_refused_by_its_manifest_hash(mongo_client, seeded_mongo, target, tmp_path, make_writer,
                                                              local_store):
    source = MongoSource(name="mongodb", conn_id="x", database="korea_public_data", compression="zstd")
    manifest = backup_mongodb(mongo_client, source, Job(source="mongodb", collections=("contents",)), make_writer())
    p = local_store.path(manifest.id.key(manifest.files[0].name))
    data = bytearray(p.read_bytes())
    data[len(data) // 2] ^= 0xFF
    p.write_bytes(bytes(data))
    before = snapshot(target)
    with pytest.raises(IntegrityError, match="does not match its manifest"):
        restore_mongodb(mongo_client, local_store, manifest, workdir=tmp_path / "w", safety_dir=tmp_path / "safety",
                        target_db=target.name, drop=True)
    assert snapshot(target) == before and safety_backups(tmp_path) == []


def test_safety_backup_of_an_unreachable_target_names_the_problem(tmp_path):
    """The DR runbook's safety-backup step against a target that is down: a project error with a
    hint, not the driver's topology dump."""
    import pymongo

    from backup_dr.core.errors import SourceError
    from backup_dr.core.mongo.safe_restore import take_safety_backup
    from backup_dr.core.stores.local import LocalStore

    client = pymongo.MongoClient("mongodb://127.0.0.1:1/?directConnection=true", serverSelectionTimeoutMS=300)
    with pytest.raises(SourceError, match="taking a safety backup of 'korea_public_data': cannot reach the MongoDB server") as err:
        take_safety_backup(client, "korea_public_data", LocalStore(tmp_path / "s"), backup_class="critical_data", source="mongodb")
    assert "Topology Description" not in err.value.message
