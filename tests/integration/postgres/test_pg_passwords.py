"""Passwords: against a private cluster that demands them (scram-sha-256), the whole cycle
works while the password never appears on a command line, in the worker's environment, in a
manifest, a log or an error, and a wrong password is a clear, non-retryable error."""

from __future__ import annotations

import json
import logging
import tempfile
from pathlib import Path

import pytest

from backup_dr.core.errors import ConnectionConfigError
from backup_dr.core.postgres import PostgresSource
from backup_dr.core.postgres.backup import backup_postgres
from backup_dr.core.postgres.drill import drill_postgres
from backup_dr.core.postgres.restore import restore_postgres
from tests.security.conftest import ArgvSampler

from pg_support import PrivateCluster, conninfo, execute, seed_shop

PASSWORD = "S3cr3t-PG-71c2:with\\colon"
pytestmark = pytest.mark.skipif(not PrivateCluster.available(), reason="needs PostgreSQL 15's initdb (Debian postgresql-15)")


@pytest.fixture(scope="module")
def cluster():
    with PrivateCluster(user="bdr_app", password=PASSWORD) as server:  # own dir in /tmp: the postgres user must reach it
        yield server


def app_conn(cluster, database, password=PASSWORD):
    return conninfo(database, port=cluster.port, user="bdr_app", password=password, conn_id="pg_app",
                    application_name="backup-dr-test")


def pgpass_dirs() -> set[str]:
    return {p.name for p in Path(tempfile.gettempdir()).glob("backup-dr-pgpass-*")}


def test_backup_drill_and_restore_with_a_password_nobody_else_can_see(cluster, store, new_writer, tmp_path, monkeypatch,
                                                                       caplog):
    kw = {"port": cluster.port, "user": "bdr_app", "password": PASSWORD}
    execute("postgres", "CREATE DATABASE shop", "CREATE DATABASE restored", **kw)
    seed_shop("shop", **kw)
    # whatever the worker's environment says, only the connection decides
    monkeypatch.setenv("PGPASSWORD", "wrong-from-the-environment")
    monkeypatch.setenv("PGHOST", "192.0.2.1")
    monkeypatch.setenv("PGUSER", "nobody")
    caplog.set_level(logging.DEBUG)
    leftovers = pgpass_dirs()
    with ArgvSampler({"pg": PASSWORD}) as sampler:
        manifest = backup_postgres(app_conn(cluster, "shop"), PostgresSource("shop", "pg_app"), new_writer())
        drill = drill_postgres(app_conn(cluster, "postgres"), store, manifest, workdir=tmp_path / "d")
        result = restore_postgres(app_conn(cluster, "restored"), store, manifest, workdir=tmp_path / "w",
                                  safety_dir=tmp_path / "safety")
    assert drill["ok"] and result.tables == 4
    assert sampler.samples > 0 and sampler.hits == [], sampler.hits
    assert "pg_dump" in " ".join(sampler.commands) and "pg_restore" in " ".join(sampler.commands)
    assert PASSWORD not in manifest.to_json().decode() and PASSWORD not in json.dumps(drill) + repr(result)
    assert PASSWORD not in caplog.text and "pg_dump --format=custom" in caplog.text
    assert pgpass_dirs() == leftovers  # each child's 0600 PGPASSFILE is gone with it


def test_a_wrong_password_is_a_clear_error_that_never_shows_it(cluster, new_writer):
    wrong = "S3cr3t-WRONG-9e1d"
    writer = new_writer()
    with pytest.raises(ConnectionConfigError, match=r"PostgreSQL refused the credentials of connection 'pg_app' "
                                                    r"\(bdr_app@127\.0\.0\.1:\d+/postgres\)") as e:
        backup_postgres(app_conn(cluster, "postgres", password=wrong), PostgresSource("x", "pg_app"), writer)
    assert not e.value.retryable and "correct the login/password of connection 'pg_app'" in e.value.hint
    assert wrong not in str(e.value) and PASSWORD not in str(e.value) and not writer.directory.exists()
