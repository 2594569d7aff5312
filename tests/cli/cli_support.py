"""Helpers for the CLI tests: backup histories made by the real job functions, and the CLI run
as a subprocess with a minimal environment and Airflow made unimportable.

The environment of every CLI run holds only PATH, PYTHONPATH=<repo>/plugins (plus a
directory whose ``sitecustomize`` blocks and records any ``airflow`` import),
``BACKUP_DR_*``, the ``AIRFLOW_CONN_*`` variables of the stores/targets and, for the GCS
emulator, ``STORAGE_EMULATOR_HOST``. No AIRFLOW_HOME, no Airflow configuration.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta, timezone
from pathlib import Path

from bson.codec_options import CodecOptions
from bson.raw_bson import RawBSONDocument

from backup_dr.core.artifacts.layout import BackupId, kind_for
from backup_dr.core.artifacts.writer import ArtifactWriter
from backup_dr.core.policy_model import Policy
from backup_dr.core.replicate import replicate_all
from backup_dr.core.stores.factory import open_store
from backup_dr.core.stores.local import LocalStore

REPO = Path(__file__).resolve().parents[2]
PLUGINS = REPO / "plugins"
POLICY = REPO / "include" / "policy.yaml"

_BLOCKER = '''\
import os, sys

class _BlockAirflow:
    """The break-glass CLI must run with Airflow gone: record and refuse any airflow import."""

    def find_spec(self, name, path=None, target=None):
        if name == "airflow" or name.startswith("airflow."):
            with open(os.environ["BACKUP_DR_TEST_AIRFLOW_MARK"], "a") as f:
                f.write(name + "\\n")
            raise ImportError("airflow is blocked in the break-glass CLI tests: " + name)
        return None

sys.meta_path.insert(0, _BlockAirflow())
'''


def blocker_dir(tmp: Path) -> Path:
    d = tmp / "airflow-blocker"
    d.mkdir(parents=True, exist_ok=True)
    (d / "sitecustomize.py").write_text(_BLOCKER)
    return d


@dataclass
class Cli:
    """Runs ``python -m backup_dr`` with exactly ``env`` (plus PATH/PYTHONPATH)."""

    env: dict[str, str]
    tmp: Path
    cwd: Path | None = None

    @property
    def airflow_mark(self) -> Path:
        return Path(self.env["BACKUP_DR_TEST_AIRFLOW_MARK"])

    def full_env(self, extra: dict[str, str] | None = None) -> dict[str, str]:
        env = {"PATH": "/usr/bin:/bin", "PYTHONPATH": f"{blocker_dir(self.tmp)}:{PLUGINS}", **self.env, **(extra or {})}
        return {k: v for k, v in env.items() if v is not None}

    def run(self, *args: str, extra_env: dict[str, str] | None = None, importtime: bool = False,
            timeout: float = 180) -> subprocess.CompletedProcess:
        cmd = [sys.executable] + (["-X", "importtime"] if importtime else []) + ["-m", "backup_dr", *args]
        return subprocess.run(cmd, env=self.full_env(extra_env), capture_output=True, text=True, timeout=timeout,
                              cwd=self.cwd or self.tmp)

    def json(self, *args: str, expect: int = 0, **kw) -> dict:
        out = self.run(*args, "--json", **kw)
        assert out.returncode == expect, f"exit {out.returncode} (expected {expect})\nstdout:\n{out.stdout}\nstderr:\n{out.stderr}"
        return json.loads(out.stdout)

    def ok(self, *args: str, **kw) -> subprocess.CompletedProcess:
        out = self.run(*args, **kw)
        assert out.returncode == 0, f"exit {out.returncode}\nstdout:\n{out.stdout}\nstderr:\n{out.stderr}"
        return out

    def with_env(self, **changes: str | None) -> "Cli":
        env = {**self.env, **changes}
        return Cli({k: v for k, v in env.items() if v is not None}, self.tmp, self.cwd)


@dataclass
class History:
    """A set of stores (local dir + S3 bucket + GCS bucket) named like the policy's, with backups in them."""

    policy: Policy
    root: Path
    s3_bucket: str
    gcs_bucket: str
    stores: dict = field(default_factory=dict)
    ids: dict[str, str] = field(default_factory=dict)

    @classmethod
    def create(cls, policy: Policy, root: Path, s3_server, gcs_server) -> "History":
        s3_bucket, gcs_bucket = f"cli-{uuid.uuid4().hex[:12]}", f"cli-{uuid.uuid4().hex[:12]}"
        s3_server.client().create_bucket(Bucket=s3_bucket)
        gcs_server.client().create_bucket(gcs_bucket)
        (root / "backups").mkdir(parents=True)
        h = cls(policy, root, s3_bucket, gcs_bucket)
        h.stores = {
            "local": LocalStore(root / "backups", name="local"),
            "s3": open_store(replace(policy.stores["s3"], bucket=s3_bucket)),
            "gcs": open_store(replace(policy.stores["gcs"], bucket=gcs_bucket)),
        }
        return h

    @property
    def local(self) -> LocalStore:
        return self.stores["local"]

    def env(self) -> dict[str, str]:
        return {
            "BACKUP_DR_POLICY": str(POLICY),
            "BACKUP_DR_LOCAL_PATH": str(self.root / "backups"),
            "BACKUP_DR_S3_BUCKET": self.s3_bucket,
            "BACKUP_DR_GCS_BUCKET": self.gcs_bucket,
            "BACKUP_DR_APP_DIR": str(self.root / "app"),
            "BACKUP_DR_TEST_AIRFLOW_MARK": str(self.root / "airflow-imports.txt"),
            "AIRFLOW_CONN_BACKUP_S3": os.environ["AIRFLOW_CONN_BACKUP_S3"],
            "AIRFLOW_CONN_BACKUP_GCS": os.environ["AIRFLOW_CONN_BACKUP_GCS"],
            "STORAGE_EMULATOR_HOST": os.environ["STORAGE_EMULATOR_HOST"],
        }

    def cli(self, **conns: str) -> Cli:
        """A Cli with this history's stores and ``AIRFLOW_CONN_<ID>`` for each ``conn_id=json``."""
        extra = {f"AIRFLOW_CONN_{k.upper()}": v for k, v in conns.items()}
        return Cli({**self.env(), **extra}, self.root)

    def _writer(self, cls_name: str, source, *, age: timedelta, metadata_only: bool = False) -> ArtifactWriter:
        cls = self.policy.classes[cls_name]
        when = datetime.now(timezone.utc).replace(microsecond=0) - age
        bid = BackupId.new(cls_name, source.name, kind_for(source, metadata_only=metadata_only), when)
        return ArtifactWriter(self.local, bid, source_type=source.type, retention=cls.retention, run_after=when)

    def backdate(self, manifest, age: timedelta):
        """:func:`backdate` on this history's local store."""
        return backdate(self.local, manifest, age)

    def replicate(self, cls_name: str, manifest) -> None:
        targets = [self.stores[n] for n in self.policy.classes[cls_name].stores if n != "local"]
        replicate_all(self.local, manifest, targets)

    def mongo(self, client, *, cls_name: str = "critical_data", age: timedelta = timedelta(hours=1), key: str = "mongo"):
        from backup_dr.core.mongo.backup import backup_mongodb

        source = self.policy.sources["mongodb"]
        job = next(j for j in self.policy.classes[cls_name].jobs if j.source == "mongodb")
        m = backup_mongodb(client, source, job, self._writer(cls_name, source, age=age))
        self.replicate(cls_name, m)
        self.ids[key] = m.backup_id
        return m

    def redis(self, conn, *, age: timedelta = timedelta(hours=2), key: str = "redis"):
        from backup_dr.core.redis.backup import backup_redis

        source = self.policy.sources["redis_cache"]
        m = backup_redis(conn, source, self._writer("operational_data", source, age=age))
        self.replicate("operational_data", m)
        self.ids[key] = m.backup_id
        return m

    def files(self, app: Path, *, source_name: str = "app_config", cls_name: str = "configuration",
              age: timedelta = timedelta(hours=3), key: str = "files", taken_then: bool = False):
        """``taken_then``: the backup's data is ``age`` old too (:meth:`backdate`), not just its slot."""
        from backup_dr.core.files import backup_files

        source = replace(self.policy.sources[source_name], path=str(app / source_name.removeprefix("app_")))
        m = backup_files(source, self._writer(cls_name, source, age=age))
        if taken_then:
            m = self.backdate(m, age)
        self.replicate(cls_name, m)
        self.ids[key] = m.backup_id
        return m

    def git(self, app: Path, *, age: timedelta = timedelta(hours=4), key: str = "git"):
        from backup_dr.core.gitbundle import backup_git

        source = replace(self.policy.sources["app_repository"], path=str(app / "repo"))
        m = backup_git(source, self._writer("application_code", source, age=age))
        self.replicate("application_code", m)
        self.ids[key] = m.backup_id
        return m

    def flip_byte(self, store_name: str, backup_id: str, name: str | None = None, offset: int = 100) -> str:
        """Corrupt one byte of a data file in one store (bit rot); returns the file name."""
        bid = BackupId.parse(backup_id)
        store = self.stores[store_name]
        from backup_dr.core.artifacts.reader import load_manifest

        entry = load_manifest(store, bid).files[0] if name is None else load_manifest(store, bid).file(name)
        data = bytearray(store.get_bytes(bid.key(entry.name)))
        data[offset] ^= 0x01
        if isinstance(store, LocalStore):
            store.path(bid.key(entry.name)).write_bytes(bytes(data))
        else:
            store.put_bytes(bid.key(entry.name), bytes(data))
        return entry.name


RAW = CodecOptions(document_class=RawBSONDocument)


def snapshot_db(client, database: str, collections: list[str] | None = None) -> dict:
    """Every document's raw BSON by _id, and every index (minus server-specific fields), per collection."""
    db = client[database]
    out = {}
    for name in sorted(collections or db.list_collection_names()):
        coll = db.get_collection(name, codec_options=RAW)
        docs = {repr(d["_id"]): bytes(d.raw) for d in coll.find({})}
        indexes = sorted(repr(sorted((k, v) for k, v in ix.items() if k not in ("v", "ns"))) for ix in db[name].list_indexes())
        out[name] = {"count": len(docs), "docs": docs, "indexes": indexes}
    return out


def tree(path: Path) -> dict[str, bytes | str]:
    """Relative path -> bytes (files) or a marker (dirs, symlinks) of a directory tree."""
    out: dict[str, bytes | str] = {}
    for p in sorted(path.rglob("*")):
        rel = str(p.relative_to(path))
        if p.is_symlink():
            out[rel] = f"-> {os.readlink(p)}"
        elif p.is_dir():
            out[rel] = "<dir>"
        else:
            out[rel] = p.read_bytes()
    return out


def redis_fingerprint(r) -> dict:
    """Every key of db 0 with its type, value and whether it has a TTL."""
    out = {}
    for key in r.scan_iter(count=1000):
        kind = r.type(key).decode()
        value = {"string": lambda: r.get(key), "hash": lambda: sorted(r.hgetall(key).items()),
                 "list": lambda: r.lrange(key, 0, -1), "set": lambda: sorted(r.smembers(key)),
                 "zset": lambda: r.zrange(key, 0, -1, withscores=True)}[kind]()
        out[key] = (kind, value, r.ttl(key) > 0)
    return out


def mongo_conn_json(server) -> str:
    return json.dumps({"conn_type": "mongo", "host": "127.0.0.1", "port": server.port, "extra": {"directConnection": True}})


def backdate(local, manifest, age: timedelta):
    """Make a just-made local backup look as if it had been TAKEN ``age`` ago (its slot already
    is): every time in its manifest moves back by ``age`` — started, finished, the capture
    point, the expiry — and so does the manifest file's mtime. Call before replicating."""
    def shift(text):
        return (datetime.fromisoformat(text.replace("Z", "+00:00")) - age).isoformat().replace("+00:00", "Z")

    cp = dict(manifest.consistent_point)
    for k, v in cp.items():
        if isinstance(v, dict) and "t" in v:
            cp[k] = {**v, "t": int(v["t"] - age.total_seconds())}
        elif isinstance(v, str) and k in ("end_time", "time", "start_time"):
            cp[k] = shift(v)
    retention = dict(manifest.retention)
    if retention.get("expires_at"):
        retention["expires_at"] = shift(retention["expires_at"])
    old = replace(manifest, started_at=shift(manifest.started_at), finished_at=shift(manifest.finished_at),
                  consistent_point=cp, retention=retention)
    path = local.path(old.id.manifest_key)
    path.write_bytes(old.to_json())
    stamp = old.finished.timestamp()
    os.utime(path, (stamp, stamp))
    return old
