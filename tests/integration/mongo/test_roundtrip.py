"""Dump -> restore into another database: byte-identical documents, options, indexes, views."""

from __future__ import annotations

import pytest

from backup_dr.core.artifacts.reader import load_manifest
from backup_dr.core.mongo.backup import backup_mongodb, restore_mongodb, verify_restore
from backup_dr.core.policy_model import Job, MongoSource

from mongo_support import KOREAN, build_rich_database, snapshot, uniq


@pytest.fixture(scope="module")
def rich_db(mongo_client):
    name = uniq("rich")
    build_rich_database(mongo_client, name)
    yield name
    mongo_client.drop_database(name)


def test_round_trip_is_byte_identical_with_options_indexes_and_views(mongo_client, rich_db, make_writer, local_store,
                                                                      tmp_path, drop_after):
    source = MongoSource(name="mongodb", conn_id="x", database=rich_db, compression="gzip")
    manifest = backup_mongodb(mongo_client, source, Job(source="mongodb"), make_writer())
    assert load_manifest(local_store, manifest.id) == manifest
    assert manifest.counts == {"every_type": 51, KOREAN: 300, "capped_log": 200, "validated": 100, "empty_one": 0,
                               "big": 2, "open_view": 0}
    assert manifest.consistent_point["end"]["t"] > 0 and manifest.details["compression"] == "gzip"
    assert manifest.files[0].name == f"{rich_db}.archive.gz" and manifest.files[0].format == "mongodump-archive"

    target = uniq("restored")
    drop_after.append(target)
    result = restore_mongodb(mongo_client, local_store, manifest, workdir=tmp_path / "work", safety_dir=tmp_path / "safety",
                             target_db=target)
    assert result.validation["ok"] and result.docs == 653
    src, dst = snapshot(mongo_client[rich_db]), snapshot(mongo_client[target])
    assert set(src) == set(dst)
    for name in src:
        assert src[name]["type"] == dst[name]["type"], name
        assert src[name]["options"] == dst[name]["options"], name
        if "docs" in src[name]:
            assert src[name]["docs"] == dst[name]["docs"], f"{name}: documents differ"
            assert src[name]["indexes"] == dst[name]["indexes"], f"{name}: indexes differ"
    assert len(dst["big"]["docs"]) == 2 and all(len(d) > 15_000_000 for d in dst["big"]["docs"].values())


@pytest.mark.parametrize("codec,fmt", [("zstd", "archive"), ("none", "archive"), ("gzip", "directory"), ("zstd", "directory")])
def test_codecs_and_formats(mongo_client, seeded_mongo, make_writer, local_store, tmp_path, drop_after, codec, fmt):
    source = MongoSource(name="mongodb", conn_id="x", database="korea_public_data", compression=codec, format=fmt)
    manifest = backup_mongodb(mongo_client, source, Job(source="mongodb", collections=("contents", "statistics")), make_writer())
    assert manifest.counts == {"contents": seeded_mongo["contents"], "statistics": seeded_mongo["statistics"]}
    if fmt == "directory":
        sfx = {"gzip": ".gz", "zstd": ".zst"}[codec]
        names = sorted(f.name for f in manifest.files)
        assert names == [f"korea_public_data/contents.bson{sfx}", f"korea_public_data/contents.metadata.json{sfx}",
                         f"korea_public_data/statistics.bson{sfx}", f"korea_public_data/statistics.metadata.json{sfx}",
                         "oplog.bson" if codec == "gzip" else "oplog.bson.zst"]  # mongodump's name when gzipped
    target = uniq("codec")
    drop_after.append(target)
    restore_mongodb(mongo_client, local_store, manifest, workdir=tmp_path / "w", safety_dir=tmp_path / "s", target_db=target)
    assert snapshot(mongo_client["korea_public_data"], {"contents", "statistics"}) == snapshot(mongo_client[target])


def test_retry_after_success_returns_the_same_backup(mongo_client, seeded_mongo, make_writer, local_store):
    source = MongoSource(name="mongodb", conn_id="x", database="korea_public_data", compression="zstd")
    writer = make_writer()
    first = backup_mongodb(mongo_client, source, Job(source="mongodb", collections=("contents",)), writer)
    again = backup_mongodb(mongo_client, source, Job(source="mongodb", collections=("contents",)), writer)
    assert again == first


def test_metadata_only_schema_backup(mongo_client, rich_db, make_writer, local_store, tmp_path, drop_after):
    source = MongoSource(name="mongodb", conn_id="x", database=rich_db, compression="zstd")
    manifest = backup_mongodb(mongo_client, source, Job(source="mongodb", metadata_only=True), make_writer(kind="schema"))
    assert manifest.details["metadata_only"] is True and set(manifest.counts.values()) == {0}
    assert manifest.details["collections"]["validated"]["options"]["validationLevel"] == "strict"
    target = uniq("schema")
    drop_after.append(target)
    restore_mongodb(mongo_client, local_store, manifest, workdir=tmp_path / "w", safety_dir=tmp_path / "s", target_db=target)
    src, dst = snapshot(mongo_client[rich_db]), snapshot(mongo_client[target])
    for name in src:
        assert src[name]["options"] == dst[name]["options"]
        assert src[name].get("indexes") == dst[name].get("indexes")
        assert dst[name].get("docs", {}) == {}


def test_verify_restore_drill_into_scratch_server(mongo_client, mongo_scratch_server, seeded_mongo, make_writer,
                                                  local_store, tmp_path):
    source = MongoSource(name="mongodb", conn_id="x", database="korea_public_data", compression="zstd")
    manifest = backup_mongodb(mongo_client, source, Job(source="mongodb"), make_writer())
    scratch = mongo_scratch_server.client()
    try:
        result = verify_restore(scratch, local_store, manifest, workdir=tmp_path / "w", sample=20)
        assert result.ok and result.sampled > 0 and result.restore.docs == sum(seeded_mongo.values())
        assert result.scratch_db not in scratch.list_database_names()  # dropped afterwards
    finally:
        scratch.close()
