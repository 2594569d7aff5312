"""Reading a mongodump directory like an archive: names from metadata, codecs per file, damage refused."""

from __future__ import annotations

import gzip

import bson
import pytest

from backup_dr.core.errors import IntegrityError
from backup_dr.core.mongo.dumpdir import DumpDirectoryReader
from backup_dr.core.mongo.metadata import CollectionMeta
from backup_dr.core.mongo.sinks import escaped_collection_name


def _dump(root, docs=3):
    db = root / "shop"
    db.mkdir(parents=True)
    stem = escaped_collection_name("공지 a+b")
    (db / f"{stem}.metadata.json.gz").write_bytes(gzip.compress(CollectionMeta(name="공지 a+b").to_json().encode()))
    (db / f"{stem}.bson.gz").write_bytes(gzip.compress(b"".join(bson.encode({"_id": i}) for i in range(docs))))
    (db / "view.metadata.json").write_text(CollectionMeta(name="view", type="view", options={"viewOn": "x", "pipeline": []}).to_json())
    (db / "bare.bson").write_bytes(bson.encode({"_id": "no metadata"}))
    (root / "oplog.bson").write_bytes(gzip.compress(bson.encode({"op": "n", "ns": "", "o": {}, "ts": bson.Timestamp(1, 1)})))
    (root / "manifest.json").write_text("{}")
    return db / f"{stem}.bson.gz"


def test_reads_names_views_bare_files_and_a_gzipped_oplog_bson(tmp_path):
    _dump(tmp_path)
    reader = DumpDirectoryReader(tmp_path)
    assert [(e.db, e.collection, e.type) for e in reader.prelude] == [
        ("shop", "공지 a+b", "collection"), ("shop", "view", "view"), ("shop", "bare", "collection"), ("", "oplog", "")]
    summary = reader.summarize()
    assert summary.count("shop", "공지 a+b") == 3 and summary.count("shop", "bare") == 1 and summary.count("", "oplog") == 1
    assert summary.count("shop", "view") == 0


def test_truncated_or_corrupt_bson_file_is_refused(tmp_path):
    data = _dump(tmp_path)
    plain = gzip.decompress(data.read_bytes())
    data.write_bytes(gzip.compress(plain[:-3]))
    with pytest.raises(IntegrityError, match="BSON file is truncated"):
        DumpDirectoryReader(tmp_path).summarize()
    data.write_bytes(gzip.compress(b"\x02\x00\x00\x00" + plain))
    with pytest.raises(IntegrityError, match="2 is not a document length"):
        DumpDirectoryReader(tmp_path).summarize()


def test_a_directory_without_a_dump_is_refused(tmp_path):
    (tmp_path / "notes.txt").write_text("x")
    with pytest.raises(IntegrityError, match="not a mongodump directory"):
        DumpDirectoryReader(tmp_path)
