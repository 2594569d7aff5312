"""Helpers for the MongoDB integration tests: a rich source database and snapshot helpers.

A module of its own (not conftest) so test modules import it by a unique name.
"""

from __future__ import annotations

import datetime as dt
import uuid
from decimal import Decimal

import bson
from bson import (Binary, Code, DBRef, Decimal128, Int64, MaxKey, MinKey, ObjectId, Regex, Timestamp)
from bson.codec_options import CodecOptions
from bson.datetime_ms import DatetimeMS
from bson.raw_bson import RawBSONDocument
from bson.son import SON


RAW = CodecOptions(document_class=RawBSONDocument)
KOREAN = "공고_첨부파일"
KO_COLLATION = {"locale": "ko", "strength": 2}


def every_type_doc(i: int) -> SON:
    return SON([
        ("_id", ObjectId(f"{i:024x}")),
        ("double", 1.5 + i), ("neg_zero", -0.0), ("nan", float("nan")),
        ("string", f"문자열 {i}"), ("doc", SON([("z", 1), ("a", 2)])), ("array", [1, "two", [3], {"four": 4}]),
        ("bin_generic", Binary(b"\x00\x01\xff", 0)), ("bin_uuid", Binary(uuid.UUID(int=i).bytes, 4)),
        ("bin_md5", Binary(b"\x11" * 16, 5)), ("bin_user", Binary(b"user", 0x80)),
        ("oid", ObjectId()), ("bool", i % 2 == 0), ("date", dt.datetime(2026, 11, 26, 8, 0, i % 60)),
        ("pre_epoch_date", DatetimeMS(-2208988800000 - i)), ("null", None), ("regex", Regex("^공고.*$", "imx")),
        ("code", Code("function() { return 1; }")), ("code_scope", Code("function() { return x; }", {"x": 1})),
        ("int32", i), ("timestamp", Timestamp(1795680000, i + 1)), ("int64", Int64(2**40 + i)),
        ("decimal", Decimal128(Decimal(f"{i}.10"))), ("min", MinKey()), ("max", MaxKey()),
        ("dbref", DBRef("coll", ObjectId(f"{i:024x}"), "db", extra=1)),
        ("한글_필드", {"중첩": [f"값{i}"]}),
    ])


def deprecated_types_doc(_id: int) -> RawBSONDocument:
    """A raw document with symbol (0x0E), undefined (0x06) and DBPointer (0x0C) elements."""
    sym = b"\x0esym\x00" + (4).to_bytes(4, "little") + b"abc\x00"
    und = b"\x06undef\x00"
    ptr = b"\x0cptr\x00" + (3).to_bytes(4, "little") + b"ns\x00" + bytes(ObjectId(f"{_id:024x}").binary)
    idel = b"\x10_id\x00" + _id.to_bytes(4, "little")
    body = idel + sym + und + ptr
    return RawBSONDocument((len(body) + 5).to_bytes(4, "little") + body + b"\x00")


def build_rich_database(client, name: str, *, big_docs: int = 2, big_mb: int = 15) -> None:
    db = client[name]
    db.create_collection("every_type")
    db.every_type.with_options(codec_options=RAW).insert_many(
        [RawBSONDocument(bson.encode(every_type_doc(i))) for i in range(50)] + [deprecated_types_doc(10_000)])
    db.create_collection(KOREAN, collation=KO_COLLATION)
    db[KOREAN].insert_many([{"_id": i, "파일명": f"첨부_{i}.hwp", "크기": i * 100, "지역": ["서울", "부산"][i % 2],
                             "loc": {"type": "Point", "coordinates": [126.9 + i / 1000, 37.5]}} for i in range(300)])
    db.create_collection("capped_log", capped=True, size=1 << 20, max=500)
    db.capped_log.insert_many([{"_id": i, "msg": f"log {i}"} for i in range(200)])
    db.create_collection("validated", validator={"$jsonSchema": {"bsonType": "object", "required": ["name"],
                                                                  "properties": {"name": {"bsonType": "string"}}}},
                         validationLevel="strict", validationAction="error")
    db.validated.insert_many([{"_id": i, "name": f"n{i}"} for i in range(100)])
    db.create_collection("empty_one")
    db.create_collection("big")
    for i in range(big_docs):
        db.big.insert_one({"_id": i, "blob": Binary(bytes([i]) * (big_mb * 1024 * 1024 - 200))})
    db.command("create", "open_view", viewOn=KOREAN, pipeline=[{"$match": {"지역": "서울"}}])
    # On a collection with a default collation mongod lists every index with its collation
    # (inherited ones too) and omits it only for an explicitly simple index; SecantusDB omits
    # inherited ones. Giving each index its collation explicitly makes both list the same.
    c = db[KOREAN]
    c.create_index("파일명", unique=True, collation=KO_COLLATION)
    c.create_index([("지역", 1), ("크기", -1)], name="compound_지역_크기", collation=KO_COLLATION)
    c.create_index("expires_at", expireAfterSeconds=3600, collation=KO_COLLATION)
    c.create_index("크기", partialFilterExpression={"크기": {"$gt": 100}}, name="partial_크기", collation=KO_COLLATION)
    c.create_index("optional", sparse=True, collation={"locale": "simple"})
    c.create_index("파일명_ci", collation={"locale": "ko", "strength": 1})
    c.create_index([("loc", "2dsphere")], collation=KO_COLLATION)


def snapshot(db, names=None) -> dict:
    """Everything a restore must reproduce: raw documents by _id, options, index specs."""
    out = {}
    for info in db.list_collections():
        name = info["name"]
        if names is not None and name not in names:
            continue
        entry = {"type": info.get("type"), "options": info.get("options")}
        if info.get("type") != "view":
            docs = {}
            for d in db[name].with_options(codec_options=RAW).find():
                docs[bytes(bson.encode({"k": d["_id"]}) if not isinstance(d["_id"], RawBSONDocument) else d["_id"].raw)] = d.raw
            entry["docs"] = docs
            entry["indexes"] = sorted(
                (tuple(sorted((k, repr(v)) for k, v in ix.items() if k != "ns")) for ix in db[name].list_indexes()))
        out[name] = entry
    return out


def uniq(prefix: str) -> str:
    return f"{prefix}_{uuid.uuid4().hex[:8]}"
