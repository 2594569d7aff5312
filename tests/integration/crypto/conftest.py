"""Fixtures for the encryption integration tests: a key connection in the environment (as the
CLI and Airflow's env secrets backend read it), writers of encrypted classes, real servers."""

from __future__ import annotations

import base64
import itertools
import json
import os
import subprocess
import sys
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest

from backup_dr.core.artifacts.layout import BackupId
from backup_dr.core.artifacts.writer import ArtifactWriter
from backup_dr.core.connections import conn_from_env
from backup_dr.core.crypto.keys import BackupEncryption, load_keyring, set_connection_resolver
from backup_dr.core.policy_model import Retention
from backup_dr.core.stores.local import LocalStore

KEY_CONN = "backup_encryption_key"
STAMP0 = datetime(2026, 11, 26, 8, 0, tzinfo=timezone.utc)
RETENTION = Retention(keep_within=timedelta(days=90), text="3 months")


def key_env_value(active: str | None = None, **keys: bytes) -> str:
    extra = {"keys": {k: base64.b64encode(v).decode() for k, v in keys.items()}}
    if active:
        extra["active"] = active
    return json.dumps({"conn_type": "generic", "extra": extra})


@pytest.fixture(autouse=True)
def env_resolver():
    """Key connections from the environment, whatever another test installed."""
    previous = set_connection_resolver(conn_from_env)
    yield
    set_connection_resolver(previous)


@pytest.fixture
def keys(monkeypatch):
    """Two random master keys; ``keys.use(active, *ids)`` puts that keyring in the key connection."""

    class Keys:
        k1, k2 = os.urandom(32), os.urandom(32)

        def use(self, active: str | None, *ids: str) -> None:
            monkeypatch.setenv(f"AIRFLOW_CONN_{KEY_CONN.upper()}",
                               key_env_value(active, **{i: getattr(self, i) for i in ids}))

        @property
        def texts(self) -> list[str]:
            return [base64.b64encode(k).decode() for k in (self.k1, self.k2)]

    k = Keys()
    k.use("k1", "k1")
    return k


@pytest.fixture
def store(tmp_path) -> LocalStore:
    return LocalStore(tmp_path / "backups", name="local")


@pytest.fixture
def enc_writer(store):
    """``enc_writer(source, kind, source_type, backup_class=..., chunk_size=...)``: a writer of an encrypted
    class, keyed from the key connection as it is at the time of the call."""
    counter = itertools.count()

    def make(source: str, kind: str, source_type: str, *, backup_class: str = "critical_data",
             chunk_size: int = 1024 * 1024, target: LocalStore | None = None) -> ArtifactWriter:
        enc = BackupEncryption.from_keyring(load_keyring(KEY_CONN), chunk_size)
        when = STAMP0 + timedelta(minutes=next(counter))
        return ArtifactWriter(target or store, BackupId.new(backup_class, source, kind, when), source_type=source_type,
                              retention=RETENTION, encryption=enc)

    return make


REPO = Path(__file__).resolve().parents[3]
_CLI = "import sys; sys.modules['airflow'] = None; from backup_dr.cli.main import main; raise SystemExit(main(sys.argv[1:]))"


@pytest.fixture
def run_cli(tmp_path):
    """``run_cli(*args, env={...})``: the break-glass CLI in a subprocess with Airflow unimportable and
    only PATH, PYTHONPATH and the given variables (BACKUP_DR_*, AIRFLOW_CONN_*) in its environment."""

    def run(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess:
        full = {"PATH": "/usr/bin:/bin", "PYTHONPATH": str(REPO / "plugins"), "HOME": str(tmp_path),
                "BACKUP_DR_POLICY": str(REPO / "include" / "policy.yaml"), **env}
        return subprocess.run([sys.executable, "-c", _CLI, *args], env=full, capture_output=True, text=True, timeout=180,
                              cwd=tmp_path)

    return run


@pytest.fixture
def key_var():
    """``key_var()``: the key connection variable as the test has set it now, for a CLI subprocess."""
    var = f"AIRFLOW_CONN_{KEY_CONN.upper()}"
    return lambda: {var: os.environ[var]} if var in os.environ else {}
