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
import shutil
import subprocess
import threading
import time
from pathlib import Path

import pytest

from backup_dr.devstack.mongo_tools import ENV_VAR, StockTools, ToolsUnavailable, find_stock_tools
from backup_dr.devstack.servers import MongoServer

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
    """Inserts, updates (several shapes), deletes and a transaction per round while the dump runs."""

    def __init__(self, db, collections: list[str]):
        super().__init__(daemon=True)
        self.db, self.collections = db, collections
        self.stop_event = threading.Event()
        self.ops = 0
        self.error: BaseException | None = None

    def run(self):
        i = 0
        try:
            while not self.stop_event.is_set():
                coll = self.db[self.collections[i % len(self.collections)]]
                coll.insert_one({"_id": f"live-{i}", "n": i, "tags": ["새", "글"]})
                coll.update_one({"_id": f"live-{i // 2}"}, {"$inc": {"n": 1}, "$push": {"tags": "수정"}})
                coll.update_one({"_id": f"live-{i // 3}"}, {"$unset": {"tags": ""}, "$set": {"moved": True}})
                coll.delete_one({"_id": f"live-{i // 5}"})
                if i % 7 == 0:
                    with self.db.client.start_session() as s, s.start_transaction():
                        coll.insert_one({"_id": f"txn-{i}", "n": i}, session=s)
                        coll.update_one({"_id": f"live-{i}"}, {"$set": {"txn": True}}, session=s)
                self.ops += 1
                i += 1
        except BaseException as e:  # noqa: BLE001 - surfaced by the test
            self.error = e

    def stop(self):
        self.stop_event.set()
        self.join(30)


def copy_tree(src: Path, dst: Path) -> Path:
    shutil.copytree(src, dst)
    return dst
