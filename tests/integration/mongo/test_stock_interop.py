"""The product's formats against stock mongodump's, and stock mongodump's output restored by the product.

Same data, same server, both tools: the archive body (every namespace's blocks, documents,
CRC-64) and the directory layout (file names, metadata text, document bytes) are compared
byte for byte with what mongodump 100.8.0 writes. The other direction: ``mongodump --archive
--gzip``, ``--out`` and ``--oplog`` output (of a database written during the dump, too) is
restored by the product, and the result equals the source.
"""

from __future__ import annotations

import gzip
import io
import json
import os
import signal
import struct
import subprocess
import time
from pathlib import Path

import bson
import pytest
from bson.son import SON

from backup_dr.core.mongo.archive import ArchiveWriter, PreludeEntry
from backup_dr.core.mongo.codecs import compressed_writer
from backup_dr.core.mongo.dump import dump_database
from backup_dr.core.mongo.metadata import CollectionMeta
from backup_dr.core.mongo.restore import open_archive, restore_archive
from backup_dr.core.mongo.safe_restore import safe_restore
from backup_dr.core.mongo.sinks import ArchiveSink
from backup_dr.core.stores.local import LocalStore

from stock_tools import (DB, LIVE, LiveWrites, assert_bsondump_reads, assert_equal_databases, fresh_servers,  # noqa: F401
                         index_specs, product_backup, raw_docs, source, target, tools)

TERMINATOR = b"\xff\xff\xff\xff"


def namespace_bytes(plain: bytes) -> tuple[dict, list[dict], dict[str, bytes]]:
    """Header, prelude and, per namespace, the concatenation of its blocks' raw bytes
    (headers, documents, terminators, EOF block) of an uncompressed archive."""
    assert plain[:4] == bytes.fromhex("6de29981")
    pos = 4

    def doc_at(p: int) -> tuple[bytes | None, int]:
        (size,) = struct.unpack_from("<i", plain, p)
        return (None, p + 4) if size == -1 else (plain[p:p + size], p + size)

    raw, pos = doc_at(pos)
    header, prelude = bson.decode(raw), []
    while True:
        raw, pos = doc_at(pos)
        if raw is None:
            break
        prelude.append(bson.decode(raw))
    blocks: dict[str, bytes] = {}
    while pos < len(plain):
        start = pos
        raw, pos = doc_at(pos)
        h = bson.decode(raw)
        if not h["EOF"]:
            while True:
                doc, pos = doc_at(pos)
                if doc is None:
                    break
        else:
            assert plain[pos:pos + 4] == TERMINATOR
            pos += 4
        ns = f"{h['db']}.{h['collection']}"
        blocks[ns] = blocks.get(ns, b"") + plain[start:pos]
    return header, prelude, blocks


def test_archive_body_is_byte_identical_to_stock_mongodump(tools, source, fresh_servers, tmp_path):
    server = fresh_servers[0]
    stock = tmp_path / "stock.archive"
    res = tools.run("mongodump", f"--uri={server.uri}", f"--db={DB}", f"--archive={stock}", "--numParallelCollections=1")
    assert res.returncode == 0, res.stderr
    ours = io.BytesIO()
    dump_database(source, DB, ArchiveSink(ours, "none", server_version="x", tool_version="y"), oplog=False)
    s_header, s_prelude, s_blocks = namespace_bytes(stock.read_bytes())
    o_header, o_prelude, o_blocks = namespace_bytes(ours.getvalue())
    assert o_header["version"] == s_header["version"] == "0.1"
    assert o_header["concurrent_collections"] == s_header["concurrent_collections"] == 1
    assert sorted(p["collection"] for p in o_prelude) == sorted(p["collection"] for p in s_prelude)
    stock_meta = {p["collection"]: p for p in s_prelude}
    for p in o_prelude:
        assert {k: v for k, v in p.items() if k != "metadata"} == {k: v for k, v in stock_meta[p["collection"]].items() if k != "metadata"}
        assert_same_metadata(p["metadata"], stock_meta[p["collection"]]["metadata"], p["collection"])
    assert set(o_blocks) == set(s_blocks) and len(s_blocks) > 10
    for ns in s_blocks:
        assert o_blocks[ns] == s_blocks[ns], f"{ns}: our blocks differ from mongodump's"


def assert_same_metadata(ours: str, stock: str, what: str) -> None:
    """Equal metadata. mongodump marshals a collection's options from a Go map (bson.M), so
    their key order is random from run to run; ours keep the server's order. Everything else
    (indexes with their key order, uuid, name, type) must match exactly, and so must the whole
    text when there are no options."""
    pairs = lambda text: json.loads(text, object_pairs_hook=lambda p: p)  # noqa: E731 - keeps key order
    assert json.loads(ours) == json.loads(stock), f"{what}: metadata differs from mongodump's"
    assert dict(pairs(ours))["indexes"] == dict(pairs(stock))["indexes"], f"{what}: index specs differ from mongodump's"
    if '"options"' not in stock:
        assert ours == stock, f"{what}: metadata text differs from mongodump's"


def _plain(path: Path) -> bytes:
    data = path.read_bytes()
    return gzip.decompress(data) if data[:2] == b"\x1f\x8b" else data


def test_directory_backup_is_laid_out_as_stock_mongodump_writes_it(tools, source, fresh_servers, tmp_path):
    server = fresh_servers[0]
    manifest, backup_dir = product_backup(source, tmp_path, codec="gzip", fmt="directory")
    stock = tmp_path / "stock"
    res = tools.run("mongodump", f"--uri={server.uri}", "--oplog", "--gzip", f"--out={stock}")
    assert res.returncode == 0, res.stderr
    stock_files = {p.relative_to(stock).as_posix() for p in stock.rglob("*") if p.is_file()}
    stock_db = {f for f in stock_files if f.startswith(f"{DB}/")}
    ours = {f.name for f in manifest.files}
    assert ours == stock_db | {"oplog.bson"}, f"ours only: {ours - stock_db}; stock only: {stock_db - ours}"
    assert "oplog.bson" in stock_files  # stock's name for the (gzipped) oplog, too
    for name in sorted(stock_db):
        mine, theirs = _plain(backup_dir / name), _plain(stock / name)
        if name.endswith(".metadata.json.gz"):
            assert_same_metadata(mine.decode(), theirs.decode(), name)
        else:
            assert raw_docs(mine) == raw_docs(theirs), f"{name}: documents differ from mongodump's"
            assert assert_bsondump_reads(tools, mine) == len(raw_docs(theirs))
    assert (backup_dir / "oplog.bson").read_bytes()[:2] == b"\x1f\x8b"
    assert assert_bsondump_reads(tools, _plain(backup_dir / "oplog.bson")) >= 1  # never empty
    assert not any(name.endswith("공지_뷰.bson.gz") or "%EB%B7%B0.bson" in name for name in ours)  # a view: metadata only


# A collection with a default collation, as mongod lists it: the collation in full, every index
# with its collation (inherited ones included), an explicitly simple index WITHOUT a collation.
KO_FULL = SON([("locale", "ko"), ("caseLevel", False), ("caseFirst", "off"), ("strength", 2), ("numericOrdering", False),
               ("alternate", "non-ignorable"), ("maxVariable", "punct"), ("normalization", False), ("backwards", False),
               ("version", "57.1")])
MONGOD_COLLATED = CollectionMeta(
    name="지역", options=SON([("collation", KO_FULL)]), uuid="0123456789abcdef0123456789abcdef",
    indexes=[SON([("v", 2), ("key", SON([("_id", 1)])), ("name", "_id_"), ("collation", KO_FULL)]),
             SON([("v", 2), ("key", SON([("이름", 1)])), ("name", "이름_1"), ("collation", KO_FULL)]),
             SON([("v", 2), ("key", SON([("코드", 1)])), ("name", "코드_1"), ("unique", True)])])  # simple


def mongod_style_archive(path: Path) -> None:
    docs = b"".join(bson.encode({"_id": i, "이름": n, "코드": f"C{i}"}) for i, n in enumerate(["서울", "부산", "대구"]))
    with open(path, "wb") as f, compressed_writer(f, "gzip") as out:
        w = ArchiveWriter(out, server_version="7.0.12", tool_version="100.8.0")
        w.write_prelude([PreludeEntry("geo", MONGOD_COLLATED.name, MONGOD_COLLATED.to_json(), 0, "collection")])
        w.begin("geo", MONGOD_COLLATED.name)
        w.write_docs(docs)
        w.end()


def test_index_collation_rule_is_stock_mongorestores(tools, target, tmp_path):
    """An index without a collation on a collated collection is restored as simple, as stock does."""
    tgt, dst = target
    path = tmp_path / "geo.archive.gz"
    mongod_style_archive(path)
    res = tools.run("mongorestore", f"--uri={tgt.uri}", f"--archive={path}", "--gzip", "--nsFrom=geo.*", "--nsTo=by_stock.*")
    assert res.returncode == 0, res.stderr
    restore_archive(dst, path, target_db="by_product", progress_every=3600)
    by_stock, by_product = index_specs(dst.by_stock["지역"]), index_specs(dst.by_product["지역"])
    assert by_product == by_stock
    simple = {ix["name"]: ix.get("collation") for ix in dst.by_product["지역"].list_indexes()}
    assert simple["코드_1"] == {"locale": "simple"}, "the simple index would inherit the collection's ko collation"
    assert simple["이름_1"]["locale"] == "ko"


@pytest.mark.parametrize("form", ["archive", "directory"])
def test_stock_mongodump_output_is_restored_by_the_product_exactly(tools, source, fresh_servers, target, tmp_path, form):
    server = fresh_servers[0]
    tgt, dst = target
    out = tmp_path / ("stock.archive.gz" if form == "archive" else "stock")
    where = [f"--archive={out}"] if form == "archive" else [f"--out={out}"]
    res = tools.run("mongodump", f"--uri={server.uri}", f"--db={DB}", "--gzip", *where)
    assert res.returncode == 0, res.stderr
    result = safe_restore(dst, out, source_db=DB, safety_store=LocalStore(tmp_path / "safety"))
    assert result.validation["ok"] and result.docs > 1000
    assert_equal_databases(source[DB], dst[DB])


def stock_dump_with_oplog_during_writes(tools, server, client, out: Path, attempts: int = 3) -> int:
    """``mongodump --oplog --archive --gzip`` of the whole server while LiveWrites write.

    Stock mongodump has no hook, so the writes are stopped with mongodump frozen (SIGSTOP) once
    it has started its second collection: writes overlapped its first reads, none can follow
    its end position. Should mongodump have got past its end position before the freeze (a
    loaded machine), the dump is taken again: the check is the oplog itself."""
    for _ in range(attempts):
        writes = LiveWrites(client[DB], list(LIVE))
        writes.start()
        time.sleep(0.3)
        proc = subprocess.Popen([str(tools.path("mongodump")), f"--uri={server.uri}", "--oplog", f"--archive={out}", "--gzip",
                                 "--numParallelCollections=1"], stderr=subprocess.PIPE, text=True)
        started = 0
        for line in proc.stderr:
            if "\twriting " in line:
                started += 1
                if started == 2:
                    os.kill(proc.pid, signal.SIGSTOP)
                    writes.stop()
                    os.kill(proc.pid, signal.SIGCONT)
        assert proc.wait(120) == 0
        assert writes.error is None and writes.ops > 5, writes.error
        with open_archive(out) as reader:
            last = max((bson.decode(d)["ts"] for db, _c, d in reader.documents() if db == "" and d), default=None)
        if last is not None and client.local["oplog.rs"].find_one({"ts": {"$gt": last}}) is None:
            return writes.ops
    pytest.fail(f"mongodump read its end position before the writes could be stopped, {attempts} times")


@pytest.mark.slow
def test_stock_mongodump_oplog_of_a_live_database_is_restored_by_the_product_exactly(tools, source, fresh_servers,
                                                                                     target, tmp_path):
    """Stock's window [start, end] replayed by the product's applier: the target equals the source
    at mongodump's end point (documents written, updated and deleted while it read)."""
    server = fresh_servers[0]
    tgt, dst = target
    out = tmp_path / "stock-oplog.archive.gz"
    ops = stock_dump_with_oplog_during_writes(tools, server, source, out)
    result = safe_restore(dst, out, source_db=DB, safety_store=LocalStore(tmp_path / "safety"))
    assert result.validation["ok"] and result.oplog["entries"] >= 10, f"{ops} write rounds, too few in the window"
    assert_equal_databases(source[DB], dst[DB])
