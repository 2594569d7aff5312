"""The product's formats against stock mongodump's, and stock mongodump's output restored by the product.

Same data, same server, both tools: the archive body (every namespace's blocks, documents,
CRC-64) and the directory layout (file names, metadata text, document bytes) are compared
byte for byte with what mongodump 100.8.0 writes. The other direction: ``mongodump --archive
--gzip``, ``--out`` and ``--oplog`` output (of a database written during the dump, too) is
restored by the product, and the result equals the source.
"""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import bson
import pytest

from stock_tools import (DB, assert_bsondump_reads, fresh_servers, product_backup, raw_docs, source,  # noqa: F401
                         target, tools)


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
