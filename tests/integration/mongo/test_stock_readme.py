"""Every MongoDB command of the README's stock-tool table, run verbatim with the stock tools.

For each artifact the product writes (gzip archive, zstd archive through the documented pipe,
directory format, the schema-only backup, a PITR slice) the command is read from README.md
and run with ``bash`` in the backup's directory against a FRESH target server, on a quiet
database and on one written during the dump. The target must then equal the source: raw
BSON by ``_id``, listCollections options, listIndexes specs (``mongo_support.snapshot``).

The test server (SecantusDB) has no ``applyOps``, so ``mongorestore --oplogReplay`` cannot
apply an oplog entry there: on a database written during the dump the stock command loads
every document and then stops at the first entry with ``applyOps: (CommandNotFound)`` (on
mongod it applies them). Those tests assert exactly that failure, check the documents stock
mongorestore loaded are the archive's, and prove the archive's oplog entries by replaying them
with the product's applier and building the indexes (what mongorestore 100.8 does next).
"""

from __future__ import annotations

import io
import subprocess
import time
from contextlib import contextmanager
from datetime import datetime, timezone
from pathlib import Path

import bson
import pytest
from bson import json_util
from bson.json_util import CANONICAL_JSON_OPTIONS

from backup_dr.core.artifacts.layout import BackupId
from backup_dr.core.artifacts.writer import ArtifactWriter
from backup_dr.core.mongo.applier import NamespaceMap, OplogApplier
from backup_dr.core.mongo.backup import archive_name, backup_mongodb
from backup_dr.core.mongo.codecs import compressed_writer, decompressed_reader
from backup_dr.core.mongo.dump import dump_database
from backup_dr.core.mongo.metadata import read_collections
from backup_dr.core.mongo.oplog import newest_ts
from backup_dr.core.mongo.restore import open_archive
from backup_dr.core.mongo.sinks import ArchiveSink, DirectorySink, server_version, tool_version
from backup_dr.core.pitr.slices import copy_entries, iter_slice
from backup_dr.core.policy_model import Job, MongoSource
from backup_dr.core.stores.local import LocalStore

from mongo_support import build_rich_database, snapshot
from stock_tools import (LiveWrites, SlowedSink, assert_stock_replay_needs_apply_ops, fresh_servers,  # noqa: F401
                         readme_command, readme_commands, run_shell, tools, wipe, write_restore_config)

DB = "korea_public_data"
LIVE = ("live_a", "live_b")
ODD_NAMES = ("공지사항", "a+b c%d", "slash/name")


@pytest.fixture(scope="module")
def source(fresh_servers):
    """The source database on the fresh source server: every BSON type, Korean and odd names,
    capped, validator, collation, view, a 15 MB document, every index kind."""
    _srv, _tgt, src, _dst = fresh_servers
    build_rich_database(src, DB, big_docs=1)
    for name in ODD_NAMES:
        src[DB][name].insert_many([{"_id": i, "이름": f"{name} {i}"} for i in range(20)])
    src[DB].command("create", "공지_뷰", viewOn="공지사항", pipeline=[{"$match": {"_id": {"$lt": 5}}}])
    for name in LIVE:
        src[DB][name].insert_many([{"_id": f"live-{i}", "n": i, "tags": ["초기"]} for i in range(200)])
        src[DB][name].create_index("n")
    return src


@pytest.fixture
def target(fresh_servers):
    _srv, tgt, _src, dst = fresh_servers
    wipe(dst)
    return tgt, dst


def product_backup(client, tmp_path: Path, *, codec: str = "gzip", fmt: str = "archive", metadata_only: bool = False):
    """A backup by the product's job function; returns (manifest, the backup's directory)."""
    store = LocalStore(tmp_path / "store")
    bid = BackupId.new("critical_data", "mongodb", "schema" if metadata_only else "full", datetime.now(timezone.utc))
    source = MongoSource(name="mongodb", conn_id="x", database=DB, compression=codec, format=fmt)
    manifest = backup_mongodb(client, source, Job(source="mongodb", metadata_only=metadata_only),
                              ArtifactWriter(store, bid, source_type="mongodb"))
    return manifest, store.path(manifest.id.manifest_key).parent


@contextmanager
def _open_in(directory: Path, name: str):
    path = directory / name
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "wb") as f:
        yield f


def live_dump(client, out_dir: Path, *, codec: str, fmt: str):
    """The product's dump of a database written during the dump (same file names as a backup).
    The writes stop right after the last collection is read, before the dump takes its end
    position, so the source as left afterwards IS the state at the end point."""
    out_dir.mkdir(parents=True)
    writes = LiveWrites(client[DB], list(LIVE))
    writes.start()
    time.sleep(0.3)
    if fmt == "archive":
        with open(out_dir / archive_name(DB, codec), "wb") as f:
            sink = ArchiveSink(f, codec, server_version=server_version(client), tool_version=tool_version())
            result = dump_database(client, DB, SlowedSink(sink, before_end=writes.stop), progress_every=3600)
    else:
        sink = DirectorySink(lambda name: _open_in(out_dir, name), codec)
        result = dump_database(client, DB, SlowedSink(sink, before_end=writes.stop), progress_every=3600)
    assert writes.error is None, writes.error
    assert writes.ops > 20 and result.oplog_entries > 20, "the writes did not overlap with the dump"
    assert newest_ts(client) >= result.end, "a write happened after the dump's end point"
    return result


def _unordered(value):
    if isinstance(value, dict):
        return tuple(sorted((k, _unordered(v)) for k, v in value.items()))
    if isinstance(value, list):
        return tuple(_unordered(v) for v in value)
    return repr(value)


def index_specs(coll) -> list:
    """listIndexes specs; the key pattern in order, other sub-documents without key order.
    (mongorestore 100.8 decodes an index's options into a Go map, so e.g. a collation
    ``{locale, strength}`` comes back as ``{strength, locale}``; mongod normalises collations
    and does not care; the key pattern's order, which matters, stock keeps.)"""
    out = []
    for ix in coll.list_indexes():
        out.append(tuple(sorted((k, repr(list(v.items())) if k == "key" else _unordered(v)) for k, v in ix.items() if k != "ns")))
    return sorted(out)


def assert_equal_databases(src_db, dst_db) -> None:
    src, dst = snapshot(src_db), snapshot(dst_db)
    assert set(dst) == set(src), f"collections: missing {set(src) - set(dst)}, extra {set(dst) - set(src)}"
    for name in src:
        assert dst[name]["type"] == src[name]["type"], name
        assert dst[name]["options"] == src[name]["options"], f"{name}: listCollections options differ"
        if "docs" in src[name]:
            assert index_specs(dst_db[name]) == index_specs(src_db[name]), f"{name}: listIndexes specs differ"
            diff = {k for k in set(src[name]["docs"]) | set(dst[name]["docs"])
                    if src[name]["docs"].get(k) != dst[name]["docs"].get(k)}
            assert not diff, f"{name}: {len(diff)} of {len(src[name]['docs'])} documents differ (raw BSON by _id)"


def archive_oplog_and_docs(path: Path):
    """The oplog entries and the per-collection documents an archive holds, raw."""
    oplog, docs = [], {}
    with open_archive(path) as reader:
        for db, coll, doc in reader.documents():
            if doc is None:
                continue
            if db == "":
                oplog.append(bson.raw_bson.RawBSONDocument(doc))
            else:
                docs.setdefault(coll, {})[bson.encode({"k": bson.decode(doc)["_id"]})] = doc
    return oplog, docs


def finish_with_product_replay(dst_client, oplog, metas) -> None:
    """What mongorestore does after loading, done by the product: replay, then the indexes."""
    OplogApplier(dst_client, NamespaceMap(DB, DB)).apply_all(oplog)
    for meta in metas:
        if not meta.is_view and meta.index_specs():
            dst_client[DB].command("createIndexes", meta.name, indexes=meta.index_specs())


def test_the_readme_lists_a_command_for_every_mongodb_artifact():
    rows = readme_commands()
    labels = " / ".join(rows)
    for kind in ("MongoDB full, gzip archive", "MongoDB full, zstd archive", "MongoDB full, directory format",
                 "MongoDB schema", "MongoDB oplog slice"):
        assert any(label.startswith(kind) for label in rows), f"no README stock command for {kind}: {labels}"


@pytest.mark.parametrize("codec,fmt,row", [("gzip", "archive", "MongoDB full, gzip archive"),
                                           ("zstd", "archive", "MongoDB full, zstd archive")])
def test_readme_command_restores_a_quiet_backup_exactly(tools, source, target, tmp_path, codec, fmt, row):
    tgt, dst = target
    _manifest, backup_dir = product_backup(source, tmp_path, codec=codec, fmt=fmt)
    write_restore_config(backup_dir, tgt.uri)
    result = run_shell(readme_command(row), cwd=backup_dir, tools=tools)
    assert result.returncode == 0, result.stderr
    assert "0 document(s) failed to restore" in result.stderr
    assert_equal_databases(source[DB], dst[DB])
