"""The stock MongoDB tools in the tests: whether they run, the README's commands, fresh servers.

The tools are found as on a user's machine (``MONGO_TOOLS_BIN`` or ``PATH``, see
:mod:`backup_dr.devstack.mongo_tools`). Without them the stock-tool tests skip with a message
naming the variable; under ``CI=true`` (``.ci/run`` sets it and points ``MONGO_TOOLS_BIN`` at
the machine's copy) a missing or broken tool FAILS the test instead: CI must prove the README.

The README's stock-tool table is the source of the commands: :func:`readme_commands` reads
it, the tests run each command verbatim with ``bash`` in the backup directory, with the tools
on PATH and a ``restore.yaml`` (``uri: ...`` of a fresh target server) next to the files.
"""

from __future__ import annotations

import os
import re
import subprocess
import threading
import time
import uuid
from contextlib import contextmanager
from datetime import datetime, timezone
from pathlib import Path

import bson
import pytest
from bson import json_util
from bson.json_util import CANONICAL_JSON_OPTIONS
from bson.son import SON

from backup_dr.core.artifacts.layout import BackupId
from backup_dr.core.artifacts.writer import ArtifactWriter
from backup_dr.core.mongo.backup import archive_name, backup_mongodb
from backup_dr.core.mongo.dump import dump_database
from backup_dr.core.mongo.oplog import newest_ts
from backup_dr.core.mongo.sinks import ArchiveSink, DirectorySink, server_version, tool_version
from backup_dr.core.policy_model import Job, MongoSource
from backup_dr.core.stores.local import LocalStore
from backup_dr.devstack.mongo_tools import ENV_VAR, StockTools, ToolsUnavailable, find_stock_tools
from backup_dr.devstack.servers import MongoServer

from mongo_support import build_rich_database, snapshot

README = Path(__file__).resolve().parents[3] / "README.md"
STOCK_SECTION = "## Backup artifacts, and restoring with stock tools"
MONGO_TOOLS = ("mongorestore", "mongodump", "bsondump")
COMMAND_WORDS = MONGO_TOOLS + ("zstd", "zcat", "mkdir")  # what a runnable command cell starts with


def stock_tools_or_skip() -> StockTools:
    try:
        return find_stock_tools()
    except ToolsUnavailable as e:
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(f"stock MongoDB tools unavailable under CI=true: {e}", pytrace=False)
        pytest.skip(f"stock MongoDB tools unavailable ({e}); set {ENV_VAR} to run these tests")


@pytest.fixture(scope="module")
def tools() -> StockTools:
    return stock_tools_or_skip()


@pytest.fixture(scope="module")
def fresh_servers(tmp_path_factory, tools):
    """A fresh source and a fresh target SecantusDB for this module (stock ``--oplog`` dumps whole servers)."""
    root = tmp_path_factory.mktemp("stock-servers")
    with MongoServer(root / "source") as source, MongoServer(root / "target") as target:
        src, dst = source.client(), target.client()
        yield source, target, src, dst
        src.close()
        dst.close()


def user_databases(client) -> list[str]:
    return sorted(n for n in client.list_database_names() if n not in ("admin", "local", "config"))


def wipe(client) -> None:
    for name in user_databases(client):
        client.drop_database(name)


def write_restore_config(directory: Path, uri: str) -> Path:
    """``restore.yaml`` as the README tells users to write it (the target's URI, off the command line)."""
    path = directory / "restore.yaml"
    path.write_text(f"uri: {uri}\n")
    path.chmod(0o600)
    return path


def run_shell(command: str, *, cwd: Path, tools: StockTools, env: dict[str, str] | None = None,
              timeout: float = 300) -> subprocess.CompletedProcess:
    """One README command, verbatim, in ``bash -o pipefail`` (a failing mongorestore in a pipe fails the pipe)."""
    return subprocess.run(["bash", "-o", "pipefail", "-c", command], cwd=cwd, env=tools.env(env), capture_output=True,
                          text=True, timeout=timeout)


def readme_commands() -> dict[str, list[str]]:
    """The MongoDB rows of the README's stock-tool table: artifact label -> commands (backticked, in order)."""
    text = README.read_text(encoding="utf-8")
    section = text.split(STOCK_SECTION, 1)[1].split("\n## ", 1)[0]
    rows: dict[str, list[str]] = {}
    for line in section.splitlines():
        if not line.startswith("| ") or line.startswith("|---") or line.startswith("| artifact"):
            continue
        cells = [c.strip() for c in re.split(r"(?<!\\)\|", line.strip().strip("|"))]
        label, command_cell = cells[0], cells[1]
        commands = [c.replace("\\|", "|") for c in re.findall(r"`([^`]+)`", command_cell)]
        commands = [c for c in commands if c.split()[0] in COMMAND_WORDS]
        if any(tool in c for c in commands for tool in MONGO_TOOLS):
            rows[label] = commands
    return rows


def readme_command(label_start: str, index: int = 0) -> str:
    rows = readme_commands()
    matches = [label for label in rows if label.startswith(label_start)]
    assert len(matches) == 1, f"README stock-tool table: no single row starting {label_start!r} (rows: {list(rows)})"
    return rows[matches[0]][index]


def assert_stock_replay_needs_apply_ops(result: subprocess.CompletedProcess) -> None:
    """SecantusDB has no ``applyOps``: ``mongorestore --oplogReplay`` stops at the first entry it
    must apply. Anything else (a format error, a missing oplog) is a real failure."""
    assert result.returncode == 1, result.stderr
    assert "applyOps: (CommandNotFound)" in result.stderr, result.stderr
    assert "demultiplexing" not in result.stderr and "no oplog file" not in result.stderr, result.stderr


class SlowedSink:
    """Wraps a dump sink: slows it so writes interleave with the reads, and calls ``before_end``
    once the last collection is written (before the dump reads its end position: the dump waits
    for each collection's ``end`` to be done before it goes on)."""

    def __init__(self, inner, *, before_end, delay: float = 0.15):
        self.inner, self.before_end, self.delay = inner, before_end, delay
        self._left = 0

    def prelude(self, entries):
        self._left = sum(1 for e in entries if not e.is_oplog)
        self.inner.prelude(entries)

    def begin(self, db, coll):
        time.sleep(self.delay)
        self._ns = (db, coll)
        self.inner.begin(db, coll)

    def write(self, data):
        time.sleep(self.delay)
        self.inner.write(data)

    def end(self):
        self.inner.end()
        if self._ns[0]:
            self._left -= 1
            if self._left == 0:
                self.before_end()

    def close(self):
        self.inner.close()

    def discard(self):
        self.inner.discard()

    def __getattr__(self, name):
        return getattr(self.inner, name)


class LiveWrites(threading.Thread):
    """Inserts, updates (several shapes, on seeded and on new documents), deletes and a
    transaction every few rounds, until stopped. New ``_id``s are unique per instance, so
    several runs can write to the same collections."""

    def __init__(self, db, collections: list[str]):
        super().__init__(daemon=True)
        self.db, self.collections = db, collections
        self.tag = uuid.uuid4().hex[:6]
        self.stop_event = threading.Event()
        self.ops = 0
        self.error: BaseException | None = None

    def run(self):
        i, tag = 0, self.tag
        try:
            while not self.stop_event.is_set():
                coll = self.db[self.collections[i % len(self.collections)]]
                coll.insert_one({"_id": f"{tag}-{i}", "n": i, "tags": ["새", "글"]})
                coll.update_one({"_id": f"live-{i % 200}"}, {"$inc": {"n": 1}, "$push": {"tags": f"수정{i}"}})
                coll.update_one({"_id": f"{tag}-{i // 3}"}, {"$unset": {"tags": ""}, "$set": {"moved": True}})
                coll.replace_one({"_id": f"live-{(i * 7) % 200}"}, {"n": -i, "replaced": True})
                coll.delete_one({"_id": f"{tag}-{i // 5}"})
                if i % 7 == 0:
                    with self.db.client.start_session() as s, s.start_transaction():
                        coll.insert_one({"_id": f"{tag}-txn-{i}", "n": i}, session=s)
                        coll.update_one({"_id": f"{tag}-{i}"}, {"$set": {"txn": True}}, session=s)
                self.ops += 1
                i += 1
        except BaseException as e:  # noqa: BLE001 - surfaced by the test
            self.error = e

    def stop(self):
        self.stop_event.set()
        self.join(30)


DB = "korea_public_data"
LIVE = ("live_a", "live_b")
ODD_NAMES = ("공지사항", "a+b c%d", "slash/name", "점.dot")  # mongodump percent-escapes them in file names


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


def bsondump(tools: StockTools, data: bytes) -> list[dict]:
    """Stock ``bsondump --objcheck`` of raw BSON bytes (stdin), parsed back from its JSON lines."""
    out = subprocess.run([str(tools.path("bsondump")), "--objcheck", "--quiet"], input=data, capture_output=True, timeout=120)
    assert out.returncode == 0, out.stderr.decode(errors="replace")
    options = CANONICAL_JSON_OPTIONS.with_options(document_class=SON)
    return [json_util.loads(line, json_options=options) for line in out.stdout.decode("utf-8").splitlines() if line]


def raw_docs(data: bytes) -> list[bytes]:
    docs, pos = [], 0
    while pos < len(data):
        size = int.from_bytes(data[pos:pos + 4], "little")
        docs.append(data[pos:pos + size])
        pos += size
    return docs


def assert_bsondump_reads(tools: StockTools, data: bytes) -> int:
    """bsondump reads every document of ``data``, and each is the same document (decoded)."""
    dumped, ours = bsondump(tools, data), raw_docs(data)
    assert len(dumped) == len(ours)
    for got, raw in zip(dumped, ours):
        want = bson.decode(raw, codec_options=bson.codec_options.CodecOptions(document_class=SON))
        if "_id" in want and want["_id"] == 10_000:
            continue  # symbol/undefined/DBPointer: bsondump prints them; Python has no type to compare with
        assert bson.encode(got) == bson.encode(want), f"bsondump read {got!r}, the file holds {want!r}"  # NaN != NaN
    return len(dumped)
