"""The oplog applier against hand-made entries of every form, on a real SecantusDB.

Each test starts from a known document, applies one hand-written entry (mongod's or
SecantusDB's shape) and compares the stored document's raw bytes with the expected one,
so field order and BSON types count too.
"""

from __future__ import annotations

import bson
import pytest
from bson import Int64, Timestamp
from bson.raw_bson import RawBSONDocument
from bson.son import SON

from backup_dr.core.mongo.applier import NamespaceMap, OplogApplier
from backup_dr.core.mongo.mongod_diff import apply_diff
from backup_dr.core.mongo.oplog_updates import UnknownOplogEntry, plan_update

LSID = {"id": bson.Binary(b"\x01" * 16, 4), "uid": bson.Binary(b"\x02" * 32, 0)}


@pytest.fixture
def db(mongo_client, fresh_db_name):
    yield mongo_client[fresh_db_name]
    mongo_client.drop_database(fresh_db_name)


def raw(doc) -> RawBSONDocument:
    return RawBSONDocument(bson.encode(doc))


def apply(db, *entries, target_db=None, collections=None):
    applier = OplogApplier(db.client, NamespaceMap(db.name, target_db, collections))
    stats = applier.apply_all([raw(e) for e in entries])
    return stats


def stored(db, coll, _id):
    doc = db[coll].with_options(codec_options=db.codec_options.with_options(document_class=RawBSONDocument)).find_one({"_id": _id})
    return None if doc is None else doc.raw


def u(db, o, _id=1, coll="c"):
    return {"op": "u", "ns": f"{db.name}.{coll}", "o": o, "o2": {"_id": _id}, "ts": Timestamp(10, 1)}


START = SON([("_id", 1), ("a", 1), ("b", SON([("c", 1), ("d", 2)])), ("arr", [1, 2, 3, SON([("x", 1)])]), ("gone", 5)])


@pytest.fixture
def start(db):
    db.c.insert_one(START)
    return db


def test_insert_is_an_idempotent_upsert(db):
    doc = SON([("_id", 7), ("n", Int64(3)), ("s", "가")])
    e = {"op": "i", "ns": f"{db.name}.c", "o": doc, "ts": Timestamp(10, 1)}
    stats = apply(db, e, e)
    assert stored(db, "c", 7) == bson.encode(doc)
    assert db.c.count_documents({}) == 1
    assert stats.doc_delta == {"c": 1} and stats.applied == {"i": 2}


def test_delete(start):
    stats = apply(start, {"op": "d", "ns": f"{start.name}.c", "o": {"_id": 1}, "ts": Timestamp(10, 1)})
    assert start.c.count_documents({}) == 0
    assert stats.doc_delta == {"c": -1}


def test_full_replacement_document(start):
    new = SON([("_id", 1), ("z", "replaced")])
    apply(start, u(start, new))
    assert stored(start, "c", 1) == bson.encode(new)


def test_legacy_set_unset(start):
    apply(start, u(start, SON([("$v", 1), ("$set", {"a": 2, "b.c": 9}), ("$unset", {"gone": True})])))
    want = SON([("_id", 1), ("a", 2), ("b", SON([("c", 9), ("d", 2)])), ("arr", [1, 2, 3, SON([("x", 1)])])])
    assert stored(start, "c", 1) == bson.encode(want)


def test_secantus_update_description_diff(start):
    o = {"$v": 2, "diff": {"updatedFields": SON([("b.c", 5), ("arr.1", 20), ("arr.3.x", 2), ("new", "n")]),
                           "removedFields": ["gone", "b.d"], "truncatedArrays": []}}
    apply(start, u(start, o))
    want = SON([("_id", 1), ("a", 1), ("b", SON([("c", 5)])), ("arr", [1, 20, 3, SON([("x", 2)])]), ("new", "n")])
    assert stored(start, "c", 1) == bson.encode(want)


def test_secantus_truncated_arrays(start):
    o = {"$v": 2, "diff": {"updatedFields": {"arr.0": 100}, "removedFields": [],
                           "truncatedArrays": [{"field": "arr", "newSize": 2}]}}
    apply(start, u(start, o))
    want = SON([("_id", 1), ("a", 1), ("b", SON([("c", 1), ("d", 2)])), ("arr", [100, 2]), ("gone", 5)])
    assert stored(start, "c", 1) == bson.encode(want)


def test_mongod_v2_diff_all_sections(start):
    diff = SON([
        ("d", {"gone": False}),
        ("u", {"a": 10}),
        ("i", SON([("new", "n"), ("n2", Int64(2))])),
        ("sb", SON([("d", {"d": False}), ("u", {"c": 5})])),
        ("sarr", SON([("a", True), ("u1", 20), ("s3", {"u": {"x": 2}, "i": {"y": 3}})])),
    ])
    apply(start, u(start, {"$v": 2, "diff": diff}))
    want = SON([("_id", 1), ("a", 10), ("b", SON([("c", 5)])), ("arr", [1, 20, 3, SON([("x", 2), ("y", 3)])]),
                ("new", "n"), ("n2", Int64(2))])
    assert stored(start, "c", 1) == bson.encode(want)


def test_mongod_array_diff_truncation_and_append(start):
    apply(start, u(start, {"$v": 2, "diff": {"sarr": SON([("a", True), ("l", 2)])}}))
    assert bson.decode(stored(start, "c", 1))["arr"] == [1, 2]
    apply(start, u(start, {"$v": 2, "diff": {"sarr": SON([("a", True), ("l", 4), ("u2", "x"), ("u3", "y")])}}))
    assert bson.decode(stored(start, "c", 1))["arr"] == [1, 2, "x", "y"]


def test_mongod_nested_array_inside_subdocument(db):
    db.c.insert_one({"_id": 1, "o": {"list": [{"k": 1}, {"k": 2}]}})
    diff = {"so": {"slist": SON([("a", True), ("s1", {"u": {"k": 22}})])}}
    apply(db, u(db, {"$v": 2, "diff": diff}))
    assert bson.decode(stored(db, "c", 1)) == {"_id": 1, "o": {"list": [{"k": 1}, {"k": 22}]}}


def test_diff_values_keep_their_original_bytes_even_for_deprecated_types():
    # symbol / undefined would not survive a decode-encode round trip in Python; the diff is
    # applied to the raw pre-image and copies the raw element bytes (the test server itself
    # stores both as string/null, so this is checked on the post-image the applier writes)
    sym = b"\x0e" + b"s\x00" + (4).to_bytes(4, "little") + b"abc\x00"
    und = b"\x06" + b"u\x00"
    inner = sym + und
    u_section = (len(inner) + 5).to_bytes(4, "little") + inner + b"\x00"
    diff_body = b"\x03u\x00" + u_section
    diff = RawBSONDocument((len(diff_body) + 5).to_bytes(4, "little") + diff_body + b"\x00")
    assert plan_update(raw(SON([("$v", 2), ("diff", diff)]))).diff.raw == diff.raw
    pre = bson.encode(SON([("_id", 1), ("keep", 1)]))
    body = b"\x10_id\x00" + (1).to_bytes(4, "little") + b"\x10keep\x00" + (1).to_bytes(4, "little") + sym + und
    assert apply_diff(pre, diff).raw == (len(body) + 5).to_bytes(4, "little") + body + b"\x00"


def test_unknown_update_forms_raise():
    with pytest.raises(UnknownOplogEntry, match=r"\$v 3"):
        plan_update(raw({"$v": 3, "diff": {}}))
    with pytest.raises(UnknownOplogEntry, match="mongod update diff: section 'x'"):
        plan_update(raw({"$v": 2, "diff": {"x": {"a": 1}}}))
    with pytest.raises(UnknownOplogEntry, match=r"legacy update with operators \$inc"):
        plan_update(raw({"$inc": {"a": 1}}))
    with pytest.raises(UnknownOplogEntry, match="mixes"):
        plan_update(raw({"$set": {"a": 1}, "b": 2}))
    with pytest.raises(UnknownOplogEntry, match="array diff entry 'q1'"):
        plan_update(raw({"$v": 2, "diff": {"sarr": {"a": True, "q1": 1}}}))


def test_unknown_op_and_command_raise(db):
    with pytest.raises(UnknownOplogEntry, match="unknown oplog op 'x'"):
        apply(db, {"op": "x", "ns": f"{db.name}.c", "o": {}})
    with pytest.raises(UnknownOplogEntry, match="oplog command 'frobnicate'"):
        apply(db, {"op": "c", "ns": f"{db.name}.$cmd", "o": {"frobnicate": "c"}})


def test_noop_and_other_databases_are_skipped(db):
    stats = apply(db, {"op": "n", "ns": "", "o": {"msg": "x"}},
                  {"op": "i", "ns": "otherdb.c", "o": {"_id": 1}})
    assert stats.skipped == 2 and db.list_collection_names() == []


def test_ddl_create_view_indexes_collmod_rename_drop(db):
    ns = f"{db.name}.$cmd"
    apply(db,
          {"op": "c", "ns": ns, "o": SON([("create", "capped"), ("capped", True), ("size", 4096), ("idIndex", {"v": 2, "key": {"_id": 1}, "name": "_id_"})])},
          {"op": "c", "ns": ns, "o": SON([("create", "v"), ("viewOn", "capped"), ("viewPipeline", [{"$match": {"a": 1}}])])},
          {"op": "c", "ns": ns, "o": {"createIndexes": "capped", "indexes": [{"v": 2, "key": {"a": 1}, "name": "a_1", "entryFormat": 4}]}},
          {"op": "c", "ns": ns, "o": SON([("createIndexes", "capped"), ("v", 2), ("key", {"b": 1}), ("name", "b_1"), ("unique", True)])},
          {"op": "c", "ns": ns, "o": {"commitIndexBuild": "capped", "indexBuildUUID": bson.Binary(b"\x00" * 16, 4),
                                      "indexes": [{"v": 2, "key": {"c": 1}, "name": "c_1"}]}},
          {"op": "c", "ns": ns, "o": {"dropIndexes": "capped", "index": "a_1"}},
          {"op": "c", "ns": ns, "o": SON([("create", "val")])},
          {"op": "c", "ns": ns, "o": SON([("collMod", "val"), ("validator", {"x": {"$exists": True}})])},
          {"op": "c", "ns": ns, "o": SON([("create", "old")])},
          {"op": "i", "ns": f"{db.name}.old", "o": {"_id": 1}},
          {"op": "c", "ns": ns, "o": SON([("renameCollection", f"{db.name}.old"), ("to", f"{db.name}.new")])},
          {"op": "c", "ns": ns, "o": SON([("create", "tmp")])},
          {"op": "c", "ns": ns, "o": {"drop": "tmp"}})
    infos = {c["name"]: c for c in db.list_collections()}
    assert set(infos) == {"capped", "v", "val", "new"}
    assert infos["capped"]["options"]["capped"] is True
    assert infos["v"]["options"] == {"viewOn": "capped", "pipeline": [{"$match": {"a": 1}}]}
    assert infos["val"]["options"]["validator"] == {"x": {"$exists": True}}
    assert sorted(ix["name"] for ix in db.capped.list_indexes()) == ["_id_", "b_1", "c_1"]
    assert db.new.find_one() == {"_id": 1}


def test_rename_of_the_database_applies_to_every_entry(db, mongo_client):
    target = db.name + "_to"
    try:
        apply(db, {"op": "c", "ns": f"{db.name}.$cmd", "o": {"create": "k"}},
              {"op": "i", "ns": f"{db.name}.k", "o": {"_id": 1, "v": 1}},
              {"op": "c", "ns": f"{db.name}.$cmd", "o": SON([("renameCollection", f"{db.name}.k"), ("to", f"{db.name}.k2")])},
              u(db, {"$set": {"v": 2}}, coll="k2"), target_db=target)
        assert db.list_collection_names() == []
        assert list(mongo_client[target].k2.find()) == [{"_id": 1, "v": 2}]
    finally:
        mongo_client.drop_database(target)


def test_collection_selection_filters_entries(db):
    stats = apply(db, {"op": "i", "ns": f"{db.name}.keep", "o": {"_id": 1}},
                  {"op": "i", "ns": f"{db.name}.other", "o": {"_id": 1}},
                  {"op": "c", "ns": f"{db.name}.$cmd", "o": {"create": "other2"}}, collections=["keep"])
    assert db.list_collection_names() == ["keep"]
    assert stats.skipped == 2


def test_mongod_transaction_applyops_partial_chain_and_prepared(db):
    base = {"lsid": LSID, "txnNumber": Int64(5)}
    ins = lambda i: {"op": "i", "ns": f"{db.name}.t", "o": {"_id": i}}  # noqa: E731
    apply(db,
          {"op": "c", "ns": "admin.$cmd", "o": {"applyOps": [ins(1), ins(2)], "partialTxn": True}, **base},
          {"op": "c", "ns": "admin.$cmd", "o": {"applyOps": [ins(3)], "count": 3}, **base})
    assert sorted(d["_id"] for d in db.t.find()) == [1, 2, 3]
    other = {"lsid": LSID, "txnNumber": Int64(6)}
    aborted = {"lsid": LSID, "txnNumber": Int64(7)}
    apply(db,
          {"op": "c", "ns": "admin.$cmd", "o": {"applyOps": [ins(4)], "prepare": True}, **other},
          {"op": "c", "ns": "admin.$cmd", "o": {"applyOps": [ins(9)], "prepare": True}, **aborted},
          {"op": "c", "ns": "admin.$cmd", "o": {"abortTransaction": 1}, **aborted},
          {"op": "c", "ns": "admin.$cmd", "o": {"commitTransaction": 1, "commitTimestamp": Timestamp(20, 1)}, **other})
    assert sorted(d["_id"] for d in db.t.find()) == [1, 2, 3, 4]


def test_uncommitted_transaction_is_not_applied(db):
    stats = apply(db, {"op": "c", "ns": "admin.$cmd", "o": {"applyOps": [{"op": "i", "ns": f"{db.name}.t", "o": {"_id": 1}}],
                                                             "partialTxn": True}, "lsid": LSID, "txnNumber": Int64(1)})
    assert db.t.count_documents({}) == 0 and stats.open_transactions == 1


def test_plain_applyops_without_session_applies_inner_ops(db):
    apply(db, {"op": "c", "ns": "admin.$cmd", "o": {"applyOps": [{"op": "i", "ns": f"{db.name}.t", "o": {"_id": 1}},
                                                                  {"op": "i", "ns": "elsewhere.t", "o": {"_id": 2}}]}})
    assert [d["_id"] for d in db.t.find()] == [1]


def test_secantus_transaction_as_separate_entries_sharing_ts(db):
    ts = Timestamp(30, 1)
    apply(db, {"op": "i", "ns": f"{db.name}.t", "o": {"_id": 1}, "ts": ts, "lsid": LSID, "txnNumber": Int64(1)},
          {"op": "u", "ns": f"{db.name}.t", "o": {"$v": 2, "diff": {"updatedFields": {"x": 1}, "removedFields": [], "truncatedArrays": []}},
           "o2": {"_id": 1}, "ts": ts, "lsid": LSID, "txnNumber": Int64(1)})
    assert list(db.t.find()) == [{"_id": 1, "x": 1}]
