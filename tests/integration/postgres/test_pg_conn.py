"""One connection description for the driver and the stock tools: extras, environment, passfile."""

from __future__ import annotations

import stat
import subprocess
from pathlib import Path

import pytest

from backup_dr.core.errors import ConnectionConfigError
from backup_dr.core.postgres import PostgresSource
from backup_dr.core.postgres.backup import backup_postgres
from backup_dr.core.postgres.conn import PgConn

from pg_support import conninfo


def test_libpq_extras_reach_the_tools_and_unknown_ones_are_refused():
    pg = PgConn.from_conninfo(conninfo("airflow", sslmode="verify-full", sslrootcert="/etc/ssl/ca.pem",
                                       keepalives_idle=30, cursor="dictcursor", connect_timeout=5))
    assert pg.driver_kwargs()["sslmode"] == "verify-full" and pg.driver_kwargs()["keepalives_idle"] == "30"
    with pg.tool_env() as env:
        assert (env["PGSSLMODE"], env["PGSSLROOTCERT"], env["PGCONNECT_TIMEOUT"]) == ("verify-full", "/etc/ssl/ca.pem", "5")
        assert "cursor" not in " ".join(env) and not any("KEEPALIVES" in k for k in env)  # driver-only / provider-only
    with pytest.raises(ConnectionConfigError, match=r"extra field\(s\) libpq does not know: ssl_mode") as e:
        PgConn.from_conninfo(conninfo("airflow", ssl_mode="require"))
    assert "sslmode" in e.value.hint
    with pytest.raises(ConnectionConfigError, match="IAM authentication, which pg_dump cannot do"):
        PgConn.from_conninfo(conninfo("airflow", iam=True))
    with pytest.raises(ConnectionConfigError, match="names no database"):
        PgConn.from_conninfo(conninfo(None))


def test_the_tools_environment_holds_only_this_connection(monkeypatch):
    monkeypatch.setenv("PGPASSWORD", "from-the-worker")
    monkeypatch.setenv("PGSERVICEFILE", "/home/someone/.pg_service.conf")
    password = "pa:ss\\word"
    pg = PgConn.from_conninfo(conninfo("airflow", user="airflow", password=password))
    with pg.tool_env() as env:
        assert not any(k in env for k in ("PGPASSWORD", "PGSERVICEFILE"))
        assert (env["PGHOST"], env["PGPORT"], env["PGUSER"], env["PGDATABASE"]) == ("127.0.0.1", "5432", "airflow", "airflow")
        passfile = Path(env["PGPASSFILE"])
        assert stat.S_IMODE(passfile.stat().st_mode) == 0o600 and stat.S_IMODE(passfile.parent.stat().st_mode) == 0o700
        assert passfile.read_text() == "*:*:*:airflow:pa\\:ss\\\\word\n"  # libpq's escaping of ':' and '\'
        assert password not in " ".join(env.values())
    assert not passfile.exists() and not passfile.parent.exists()


def test_tls_demanded_of_a_server_without_it_is_a_configuration_error(store, new_writer, pg_conn):
    ssl = subprocess.run(["psql", "-h", "127.0.0.1", "-U", "postgres", "-Atc", "SHOW ssl"], capture_output=True, text=True)
    if ssl.stdout.strip() != "off":
        pytest.skip("the machine's PostgreSQL has TLS on; this test needs one without")
    writer = new_writer()
    with pytest.raises(ConnectionConfigError, match=r"connection 'pg_test' asks for TLS .* which the server does not offer") as e:
        backup_postgres(pg_conn("postgres", sslmode="require"), PostgresSource("x", "pg_test"), writer)
    assert not e.value.retryable and "sslmode" in e.value.hint and not writer.directory.exists()
