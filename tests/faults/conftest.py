"""Shared pieces of the fault-injection matrix (issue 9): private servers we may kill, a fault
thread that fires when a condition is seen, and the "what is left behind" inspectors.

Rules every row follows:

* Faults are real: a stand-in process is SIGKILLed by its PID, a Redis server drops the
  replica link itself (``CLIENT KILL``), a tmpfs really fills, bytes really rot on disk.
  Only PRIVATE servers are killed; the session servers other tests share are never touched.
* Every row runs through the real DAG with ``dag.test()`` where Airflow is part of the
  behaviour (retries, failure callbacks, XCom), and asserts three things: what happened
  (task states), what the user sees (error text, alert), what is left behind (store
  listings, temp files, target data).
"""

from __future__ import annotations

import json
import os
import threading
import time
from pathlib import Path
from typing import Callable

import pytest
from bson import Binary

from backup_dr.devstack import sample_data
from backup_dr.devstack.servers import MongoServer, SmtpSink


ROOT = Path(__file__).resolve().parents[2]


# ----------------------------------------------------------------------------- Airflow views


def xcom(dr, task_id: str, map_index: int = -1):
    """The return value a task pushed in run ``dr`` (None when it pushed nothing)."""
    from airflow.models.xcom import XComModel
    from airflow.utils.session import create_session

    with create_session() as session:
        row = session.query(XComModel).filter_by(dag_id=dr.dag_id, run_id=dr.run_id, task_id=task_id,
                                                 map_index=map_index, key="return_value").first()
        return row.value if row is not None else None


def all_xcom_text(dag_ids: set[str] | None = None) -> str:
    """Every XCom value in the metadata DB (optionally of some DAGs), as one JSON text."""
    from airflow.models.xcom import XComModel
    from airflow.utils.session import create_session

    with create_session() as session:
        q = session.query(XComModel)
        rows = [r for r in q.all() if dag_ids is None or r.dag_id in dag_ids]
        return "\n".join(json.dumps(r.value, default=str, ensure_ascii=False) for r in rows)


def task_tries(dr, task_id: str, map_index: int = -1) -> int:
    """How many times a task instance of ``dr`` ran (its try_number)."""
    from airflow.models.taskinstance import TaskInstance as TI
    from airflow.utils.session import create_session

    with create_session() as session:
        ti = session.query(TI).filter_by(dag_id=dr.dag_id, run_id=dr.run_id, task_id=task_id, map_index=map_index).one()
        return ti.try_number


class Output:
    """Everything a ``dag.test()`` run printed and logged (its task logs).

    Under ``dag.test()`` Airflow writes no task log files: the task runs in-process and its
    log (operator ``self.log``, core ``logging``, the "Task failed with exception" record with
    the traceback) goes to this process's stdout/stderr and logging handlers. ``text()``
    returns all of it captured so far, at the file-descriptor level (so child processes'
    output is included too).
    """

    def __init__(self, capfd, caplog):
        self._capfd, self._caplog, self._seen = capfd, caplog, []

    def text(self) -> str:
        out, err = self._capfd.readouterr()
        self._seen += [out, err]
        records = "\n".join(f"{r.levelname} {r.name} {r.getMessage()}" + (f"\n{r.exc_text}" if r.exc_text else "")
                            for r in self._caplog.records)
        return "".join(self._seen) + "\n" + records


def mail_text(smtp, message) -> str:
    return smtp.text(message)


# ----------------------------------------------------------------------------- what is left behind


def tmp_leftovers(root: Path) -> list[str]:
    """Temp files/dirs our writers create (``.tmp-*``, the writer's ``.tmp-lock`` included)
    anywhere under ``root``: a committed backup holds none (the lock goes with the commit)."""
    return sorted(str(p.relative_to(root)) for p in Path(root).rglob(".tmp-*"))


def backup_dirs(root: Path) -> dict[str, bool]:
    """Every backup directory under a local store root -> whether it holds a manifest."""
    out = {}
    for d in Path(root).rglob("*"):
        if d.is_dir() and d.name.count(".") == 3 and d.name[-1] == "Z":
            out[d.name] = (d / "manifest.json").exists()
    return out


def keys_of(store, prefix: str = "") -> list[str]:
    return [i.key for i in store.list(prefix)]


def complete_ids(store) -> list[str]:
    """Backup ids a store shows as complete (manifest present), the catalog's view."""
    from backup_dr.core.catalog import Catalog

    return [e.backup_id for e in Catalog([store]).list()]


def all_ids(store) -> list[str]:
    from backup_dr.core.catalog import Catalog

    return [e.backup_id for e in Catalog([store]).list(include_incomplete=True)]


# ----------------------------------------------------------------------------- fault injection


class FaultThread:
    """Polls ``when()`` every ``every`` seconds and runs ``then()`` once it is true.

    Used to kill a server at the right moment of a run that executes in this process
    (``dag.test()`` runs tasks in-process, so the fault must come from another thread).
    """

    def __init__(self, when: Callable[[], bool], then: Callable[[], None], *, every: float = 0.01, timeout: float = 120.0,
                 repeat: bool = False):
        self.when, self.then, self.every, self.timeout, self.repeat = when, then, every, timeout, repeat
        self.fired = 0
        self.error: BaseException | None = None
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True, name="fault-injector")

    def _run(self) -> None:
        deadline = time.monotonic() + self.timeout
        while not self._stop.is_set() and time.monotonic() < deadline:
            try:
                if self.when():
                    self.then()
                    self.fired += 1
                    if not self.repeat:
                        return
            except Exception as e:  # noqa: BLE001 - reported by the test through .error
                self.error = e
                return
            time.sleep(self.every)

    def __enter__(self) -> "FaultThread":
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join(10)


class GrowingTmpFile:
    """True once a writer's temp file under ``root`` holds at least ``min_bytes`` (mid-write);
    ``seen`` keeps the size observed, for the test's message."""

    def __init__(self, root: Path, min_bytes: int):
        self.root, self.min_bytes, self.seen = Path(root), min_bytes, 0

    def __call__(self) -> bool:
        for p in self.root.rglob(".tmp-*"):
            try:
                size = p.stat().st_size if p.is_file() else 0
            except FileNotFoundError:
                continue
            if size >= self.min_bytes:
                self.seen = size
                return True
        return False


class ProgressWatch:
    """The bytes every in-process :class:`backup_dr.core.progress.Progress` has counted so far,
    by label (``replicate <id> to s3``, ``collection db.coll``, ...), through the progress
    listener hook the CLI's progress bar uses. Tells a fault thread how far a transfer got."""

    def __init__(self):
        self.bytes: dict[str, int] = {}
        self.lines: list[str] = []
        self.seen = 0

    def _on(self, progress, final: bool) -> None:
        self.bytes[progress.label] = progress.bytes
        if final:
            self.lines.append(progress.line(final=True))

    def at_least(self, label_part: str, nbytes: int) -> Callable[[], bool]:
        """A condition true once a transfer whose label contains ``label_part`` counted
        ``nbytes``; ``self.seen`` keeps the count at that moment."""

        def check() -> bool:
            for label, count in list(self.bytes.items()):
                if label_part in label and count >= nbytes:
                    self.seen = count
                    return True
            return False

        return check

    def __enter__(self) -> "ProgressWatch":
        from backup_dr.core.progress import add_listener

        add_listener(self._on)
        return self

    def __exit__(self, *exc) -> None:
        from backup_dr.core.progress import remove_listener

        remove_listener(self._on)


def bytes_received(pid: int) -> int:
    """Bytes a process has read so far (``rchar`` of /proc/<pid>/io: sockets included)."""
    for line in Path(f"/proc/{pid}/io").read_text().splitlines():
        if line.startswith("rchar:"):
            return int(line.split()[1])
    raise RuntimeError(f"no rchar for pid {pid}")


def mongo_conn(server, **extra) -> str:
    return json.dumps({"conn_type": "mongo", "host": "127.0.0.1", "port": server.port,
                       "extra": {"directConnection": True, **extra}})


# ----------------------------------------------------------------------------- fixtures


@pytest.fixture
def output(capfd, caplog) -> Output:
    caplog.set_level("INFO")
    return Output(capfd, caplog)


@pytest.fixture
def backup_stack(airflow_db, local_store_root, s3_bucket, gcs_bucket, sinks):
    """The stores and alert sinks of a backup DAG run (each test brings its own source server)."""
    return {"local": local_store_root, "s3": s3_bucket, "gcs": gcs_bucket, "smtp": sinks[0], "slack": sinks[1]}


@pytest.fixture
def policy_stores(backup_stack):
    """The policy's stores for this test's buckets and local dir, opened like the CLI opens them."""
    from backup_dr.core.policy import default_policy_path, load_policy
    from backup_dr.core.stores.factory import open_stores

    policy = load_policy(default_policy_path())
    return open_stores(policy.stores.values())


@pytest.fixture
def bulky_mongo(tmp_path, monkeypatch):
    """A private SecantusDB holding the sample database plus ~40 MB of incompressible blobs
    (a dump takes about a second: long enough to be killed in the middle)."""
    with MongoServer(tmp_path / "mongo") as server:
        client = server.client()
        sample_data.seed_mongo(client)
        for batch in range(8):
            client[sample_data.DATABASE].contents.insert_many(
                [{"slug": f"blob-{batch}-{i}", "blob": Binary(os.urandom(100_000))} for i in range(50)])
        client.close()
        monkeypatch.setenv("AIRFLOW_CONN_MONGO_KOREA_PUBLIC_DATA",
                           mongo_conn(server, serverSelectionTimeoutMS=1500, connectTimeoutMS=1500))
        yield server



# ----------------------------------------------------------------------------- restore targets

APP = "restore-under-test"


class TestCommandsMongo(MongoServer):
    """A SecantusDB with mongod's test commands on (``configureFailPoint``)."""

    def command(self):
        return super().command() + ["--enable-test-commands"]


@pytest.fixture
def target(tmp_path, monkeypatch):
    """A production-like restore target and its ``mongo_dr_target`` connection (clients named APP):
    other data than the backup, a JSON-schema validator, edited documents, a capped collection
    and a collated one the backup does not touch."""
    with TestCommandsMongo(tmp_path / "target") as server:
        client = server.client()
        db = client[sample_data.DATABASE]
        sample_data.seed_mongo(client, {"announcements": 700, "businesses": 400, "contents": 90, "statistics": 60}, seed=99)
        db.command("collMod", "businesses", validator={"$jsonSchema": {"bsonType": "object", "required": ["business_number"]}})
        db.announcements.update_many({}, {"$set": {"edited_in_production": True}})
        db.create_collection("audit", capped=True, size=1 << 20)
        db.audit.insert_many([{"_id": i, "event": f"login {i}"} for i in range(50)])
        db.create_collection("지역", collation={"locale": "ko", "strength": 2})
        db["지역"].insert_many([{"_id": i, "name": n} for i, n in enumerate(["서울", "부산", "대구"])])
        monkeypatch.setenv("AIRFLOW_CONN_MONGO_DR_TARGET", json.dumps({
            "conn_type": "mongo", "host": "127.0.0.1", "port": server.port,
            "extra": {"directConnection": True, "appname": APP}}))
        yield server, client
        client.admin.command("configureFailPoint", "failCommand", mode="off")
        client.close()


@pytest.fixture
def backup_id(backup_stack, seeded_mongo):
    """A critical_data backup of the session's sample database, made by its DAG an hour ago."""
    from datetime import datetime, timedelta, timezone

    from tests.dags.conftest import run_dag

    when = datetime.now(timezone.utc).replace(microsecond=0) - timedelta(hours=1)
    dr, states = run_dag("backup_critical_data", logical_date=when, run_after=when)
    assert str(dr.state) == "success", states
    return xcom(dr, "backup_mongodb")["backup_id"]


def run_cli(*args: str, timeout: float = 180, env: dict[str, str] | None = None):
    """``python -m backup_dr ARGS`` in a child process with this test's environment (the same
    ``AIRFLOW_CONN_*`` / ``BACKUP_DR_*`` the DAGs use), as an operator would type it."""
    import subprocess
    import sys

    full = {**os.environ, **(env or {}), "PYTHONPATH": str(ROOT / "plugins")}
    return subprocess.run([sys.executable, "-m", "backup_dr", *args], env=full, capture_output=True, text=True,
                          timeout=timeout, cwd=ROOT)


def raw_snapshot(db, collections=None) -> dict:
    """Every document's raw BSON by _id, every index and the collection options, per collection:
    what "byte for byte as before" compares."""
    from bson.codec_options import CodecOptions
    from bson.raw_bson import RawBSONDocument

    raw = CodecOptions(document_class=RawBSONDocument)
    out = {}
    infos = {c["name"]: c for c in db.list_collections()}
    for name in sorted(collections or infos):
        coll = db.get_collection(name, codec_options=raw)
        docs = {repr(d["_id"]): bytes(d.raw) for d in coll.find({})}
        indexes = sorted(repr(sorted((k, v) for k, v in ix.items() if k not in ("v", "ns"))) for ix in db[name].list_indexes())
        options = repr(sorted((infos.get(name) or {}).get("options", {}).items()))
        out[name] = {"count": len(docs), "docs": docs, "indexes": indexes, "options": options}
    return out


class AuthSmtpSink(SmtpSink):
    """An SMTP server that requires AUTH (``login`` / ``password``) and keeps what it gets."""

    def __init__(self, login: str = "alerts", password: str = "the-right-smtp-pw"):
        super().__init__()
        self.refused: list[str] = []
        self.login, self.password = login.encode(), password.encode()

    def start(self) -> "AuthSmtpSink":
        from aiosmtpd.controller import Controller
        from aiosmtpd.handlers import Message
        from aiosmtpd.smtp import AuthResult

        sink = self

        class _Keep(Message):
            def handle_message(self, message):
                sink.messages.append(message)

        def authenticator(server, session, envelope, mechanism, auth_data):
            login, password = getattr(auth_data, "login", None), getattr(auth_data, "password", None)
            ok = login == sink.login and password == sink.password
            if not ok:
                sink.refused.append(mechanism)
            return AuthResult(success=ok, handled=False)

        self._controller = Controller(_Keep(), hostname="127.0.0.1", port=self.port, authenticator=authenticator,
                                      auth_required=True, auth_require_tls=False)
        self._controller.start()
        return self
