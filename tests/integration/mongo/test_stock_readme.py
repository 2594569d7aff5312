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

import gzip
import os
import time
from pathlib import Path

import bson
import pytest
from bson import json_util
from bson.codec_options import CodecOptions
from bson.json_util import CANONICAL_JSON_OPTIONS
from bson.raw_bson import RawBSONDocument
from bson.son import SON

from backup_dr.core.mongo.applier import NamespaceMap, OplogApplier
from backup_dr.core.mongo.backup import archive_name
from backup_dr.core.mongo.codecs import compressed_writer
from backup_dr.core.mongo.dump import dump_database
from backup_dr.core.mongo.metadata import CollectionMeta
from backup_dr.core.mongo.oplog import newest_ts
from backup_dr.core.mongo.restore import open_archive, restore_archive
from backup_dr.core.mongo.sinks import ArchiveSink
from backup_dr.core.pitr.slices import copy_entries, iter_slice

from mongo_support import snapshot
from stock_tools import (DB, LIVE, LiveWrites, assert_bsondump_reads, assert_equal_databases,  # noqa: F401
                         assert_stock_replay_needs_apply_ops,
                         fresh_servers, index_specs, live_dump, product_backup, readme_command, readme_commands,
                         run_shell, source, target, tools, write_restore_config)

RAW = CodecOptions(document_class=RawBSONDocument)
ROWS = [("gzip", "archive", "MongoDB full, gzip archive"), ("zstd", "archive", "MongoDB full, zstd archive"),
        ("gzip", "directory", "MongoDB full, directory format")]


def finish_with_product_replay(dst_client, oplog, metas) -> None:
    """What mongorestore does after loading, done by the product: replay, then the indexes."""
    OplogApplier(dst_client, NamespaceMap(DB, DB)).apply_all(oplog)
    for meta in metas:
        if not meta.is_view and meta.index_specs():
            dst_client[DB].command("createIndexes", meta.name, indexes=meta.index_specs())


#: every MongoDB row of the README table and how many of its commands the tests below run
TESTED_ROWS = {row: 1 for _c, _f, row in ROWS} | {"MongoDB schema": 1, "MongoDB oplog slice": 2}


def test_the_readme_lists_only_mongodb_commands_a_test_runs():
    """A MongoDB command added to the README table fails here until a test runs it (and a test's
    row removed from the table fails here too)."""
    rows = readme_commands()
    found = {}
    for label, commands in rows.items():
        known = [k for k in TESTED_ROWS if label.startswith(k)]
        assert len(known) == 1, f"README stock-tool row {label!r} has commands no test runs: {commands}"
        found[known[0]] = len(commands)
    assert found == TESTED_ROWS


@pytest.mark.parametrize("codec,fmt,row", ROWS)
def test_readme_command_restores_a_quiet_backup_exactly(tools, source, target, tmp_path, codec, fmt, row):
    tgt, dst = target
    _manifest, backup_dir = product_backup(source, tmp_path, codec=codec, fmt=fmt)
    write_restore_config(backup_dir, tgt.uri)
    result = run_shell(readme_command(row), cwd=backup_dir, tools=tools)
    assert result.returncode == 0, result.stderr
    assert "0 document(s) failed to restore" in result.stderr
    assert_equal_databases(source[DB], dst[DB])


def dump_contents(path: Path):
    """(oplog entries, {collection: {_id key: raw document}}, metadata) of an archive or dump directory."""
    oplog, docs = [], {}
    with open_archive(path) as reader:
        metas = [CollectionMeta.from_json(e.metadata, name=e.collection, type_hint=e.type)
                 for e in reader.prelude if not e.is_oplog]
        for db, coll, doc in reader.documents():
            if doc is None:
                continue
            if db == "":
                oplog.append(RawBSONDocument(doc))
            else:
                docs.setdefault(coll, {})[doc_key(doc)] = doc
    return oplog, docs, metas


def doc_key(doc: bytes) -> bytes:
    _id = RawBSONDocument(doc)["_id"]
    return _id.raw if isinstance(_id, RawBSONDocument) else bson.encode({"k": _id})


@pytest.mark.slow
@pytest.mark.parametrize("codec,fmt,row", ROWS)
def test_readme_command_on_a_backup_written_during_the_dump(tools, source, target, tmp_path, codec, fmt, row):
    """Loads exactly the dumped documents, then stops at applyOps (SecantusDB has none; mongod
    applies it); the product's replay of the same entries then gives the source at the end point."""
    tgt, dst = target
    backup_dir = tmp_path / "backup"
    live_dump(source, backup_dir, codec=codec, fmt=fmt)
    write_restore_config(backup_dir, tgt.uri)
    result = run_shell(readme_command(row), cwd=backup_dir, tools=tools)
    assert_stock_replay_needs_apply_ops(result)
    oplog, docs, metas = dump_contents(backup_dir / archive_name(DB, codec) if fmt == "archive" else backup_dir)
    if fmt == "directory":  # bsondump reads every .bson of a live dump too (the oplog.bson among them)
        for path in sorted(p for p in backup_dir.rglob("*") if ".bson" in p.name and ".metadata" not in p.name):
            assert_bsondump_reads(tools, gzip.decompress(path.read_bytes()))
    for coll, dumped in docs.items():
        loaded = {doc_key(d.raw): d.raw for d in dst[DB][coll].with_options(codec_options=RAW).find()}
        assert loaded == dumped, f"{coll}: stock mongorestore did not load exactly the dumped documents"
    finish_with_product_replay(dst, oplog, metas)
    assert_equal_databases(source[DB], dst[DB])


def test_readme_command_restores_a_schema_backup(tools, source, target, tmp_path):
    """The schema backup (options, validators, collations, views, indexes; no documents, no oplog
    window, so nothing a write during the dump could change) into an empty server."""
    tgt, dst = target
    _manifest, backup_dir = product_backup(source, tmp_path, metadata_only=True)
    write_restore_config(backup_dir, tgt.uri)
    result = run_shell(readme_command("MongoDB schema"), cwd=backup_dir, tools=tools)
    assert result.returncode == 0, result.stderr
    src, got = snapshot(source[DB]), snapshot(dst[DB])
    assert set(got) == set(src)
    for name in src:
        assert (got[name]["type"], got[name]["options"]) == (src[name]["type"], src[name]["options"]), name
        if src[name]["type"] != "view":
            assert index_specs(dst[DB][name]) == index_specs(source[DB][name]), name
            assert got[name]["docs"] == {}, name


@pytest.mark.parametrize("written", [False, True], ids=["quiet", "written"])
def test_readme_commands_read_and_replay_a_pitr_slice(tools, source, target, tmp_path, written):
    """A slice as the PITR job writes it (``copy_entries`` into a gzip stream) after a full backup:
    the README's bsondump line reads every entry; its mongorestore line replays a quiet slice and
    stops at applyOps on one with entries; the product's replay of those entries onto the
    restored full backup gives the source at the slice's end."""
    tgt, dst = target
    full = tmp_path / "full.archive.zst"
    with open(full, "wb") as f:
        base = dump_database(source, DB, ArchiveSink(f, "zstd", server_version="x", tool_version="y"), progress_every=3600)
    if written:
        writes = LiveWrites(source[DB], list(LIVE))
        writes.start()
        time.sleep(1.0)
        writes.stop()
        assert writes.error is None and writes.ops > 5
    end = newest_ts(source)
    slice_dir = tmp_path / "slice"
    slice_dir.mkdir()
    with open(slice_dir / "oplog.bson.gz", "wb") as f, compressed_writer(f, "gzip") as out:
        read = copy_entries(source, DB, base.end, end, out, member=None)
    assert (read.entries > 0) == written
    entries = list(iter_slice(slice_dir / "oplog.bson.gz"))

    read_cmd, replay_cmd = readme_commands()[next(k for k in readme_commands() if k.startswith("MongoDB oplog slice"))]
    shown = run_shell(read_cmd, cwd=slice_dir, tools=tools)
    assert shown.returncode == 0, shown.stderr
    options = CANONICAL_JSON_OPTIONS.with_options(document_class=SON)
    printed = [json_util.loads(line, json_options=options) for line in shown.stdout.splitlines() if line]
    assert [bson.encode(p) for p in printed] == [e.raw for e in entries]

    restore_archive(dst, full, progress_every=3600)  # the full backup first, as the README says
    write_restore_config(slice_dir, tgt.uri)
    replay = run_shell(replay_cmd, cwd=slice_dir, tools=tools, env={**os.environ, "UNTIL": f"{end.time}:{end.inc + 1}"})
    if written:
        assert_stock_replay_needs_apply_ops(replay)
        OplogApplier(dst, NamespaceMap(DB, DB)).apply_all(entries)
    else:
        assert replay.returncode == 0 and "applied 0 oplog entries" in replay.stderr, replay.stderr
    assert_equal_databases(source[DB], dst[DB])
