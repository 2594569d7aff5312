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

from pathlib import Path

import bson
import pytest
from bson.raw_bson import RawBSONDocument

from backup_dr.core.mongo.applier import NamespaceMap, OplogApplier
from backup_dr.core.mongo.restore import open_archive

from stock_tools import (DB, assert_equal_databases, fresh_servers, product_backup, readme_command,  # noqa: F401
                         readme_commands, run_shell, source, target, tools, write_restore_config)


def archive_oplog_and_docs(path: Path):
    """The oplog entries and the per-collection documents an archive holds, raw."""
    oplog, docs = [], {}
    with open_archive(path) as reader:
        for db, coll, doc in reader.documents():
            if doc is None:
                continue
            if db == "":
                oplog.append(RawBSONDocument(doc))
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
                                           ("zstd", "archive", "MongoDB full, zstd archive"),
                                           ("gzip", "directory", "MongoDB full, directory format")])
def test_readme_command_restores_a_quiet_backup_exactly(tools, source, target, tmp_path, codec, fmt, row):
    tgt, dst = target
    _manifest, backup_dir = product_backup(source, tmp_path, codec=codec, fmt=fmt)
    write_restore_config(backup_dir, tgt.uri)
    result = run_shell(readme_command(row), cwd=backup_dir, tools=tools)
    assert result.returncode == 0, result.stderr
    assert "0 document(s) failed to restore" in result.stderr
    assert_equal_databases(source[DB], dst[DB])
