"""One PostgreSQL connection description for the driver AND the stock tools.

:class:`PgConn` turns a :class:`~backup_dr.core.connections.ConnInfo` (an Airflow ``postgres``
connection, or ``AIRFLOW_CONN_<ID>`` for the CLI) into libpq parameters once, so ``psycopg2``,
``pg_dump`` and ``pg_restore`` always reach the same server as the same user with the same TLS
settings. The password never goes on a command line: the tools get it from a 0600
``PGPASSFILE`` in a private temporary directory that is removed when the child is done, and
every ``PG*`` variable inherited from the worker is dropped from the child's environment so
nothing but the connection decides where it connects.
"""

from __future__ import annotations

import logging
import os
import shutil
import tempfile
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from typing import Any, Iterator

from backup_dr.core.connections import ConnInfo, redact
from backup_dr.core.errors import ConnectionConfigError, SourceError

log = logging.getLogger(__name__)

#: libpq keywords a connection extra may set, and the environment variable the tools read.
LIBPQ_ENV = {
    "sslmode": "PGSSLMODE", "sslrootcert": "PGSSLROOTCERT", "sslcert": "PGSSLCERT", "sslkey": "PGSSLKEY",
    "sslcrl": "PGSSLCRL", "sslcompression": "PGSSLCOMPRESSION", "gssencmode": "PGGSSENCMODE",
    "channel_binding": "PGCHANNELBINDING", "connect_timeout": "PGCONNECT_TIMEOUT", "application_name": "PGAPPNAME",
    "options": "PGOPTIONS", "target_session_attrs": "PGTARGETSESSIONATTRS", "client_encoding": "PGCLIENTENCODING",
    "krbsrvname": "PGKRBSRVNAME", "service": "PGSERVICE",
}
#: libpq keywords without an environment variable: the driver uses them, the tools cannot.
DRIVER_ONLY = frozenset({"keepalives", "keepalives_idle", "keepalives_interval", "keepalives_count", "tcp_user_timeout"})
#: extras the Airflow postgres provider reads for itself; they mean nothing to libpq.
PROVIDER_EXTRAS = frozenset({"cursor", "sqlalchemy_scheme", "sqlalchemy_query", "enable_log_db_messages", "aws_conn_id",
                             "region_name", "cluster-identifier", "azure_conn_id", "redshift", "redshift-serverless"})

#: Session settings under which every table is rendered to text for hashing, whatever the
#: server's or the database's defaults (a KST TimeZone must not change a hash).
STABLE_SETTINGS = {
    "TimeZone": "UTC", "DateStyle": "ISO, YMD", "IntervalStyle": "postgres", "extra_float_digits": "1",
    "bytea_output": "hex", "lc_monetary": "C", "xmloption": "content",
}


@dataclass(frozen=True)
class PgConn:
    """Where and as whom to connect; ``repr`` never shows the password."""

    conn_id: str
    database: str
    host: str | None = None
    port: int | None = None
    user: str | None = None
    password: str | None = field(default=None, repr=False)
    params: dict[str, str] = field(default_factory=dict)  # other libpq keywords (sslmode, ...)

    @classmethod
    def from_conninfo(cls, conn: ConnInfo, database: str | None = None) -> "PgConn":
        """Validate the connection's extras; ``database`` overrides the connection's schema field."""
        db = database or conn.schema
        if not db:
            raise ConnectionConfigError(
                f"connection {conn.conn_id!r} names no database",
                hint="set the connection's schema field (or the source's database) to the database to back up")
        if conn.extra.get("iam"):
            raise ConnectionConfigError(
                f"connection {conn.conn_id!r} asks for IAM authentication, which pg_dump cannot do",
                hint="give the connection a database user with a password (or a client certificate via sslcert/sslkey)")
        params, unknown = {}, []
        for key, value in conn.extra.items():
            if key in PROVIDER_EXTRAS or value is None:
                continue
            if key in LIBPQ_ENV or key in DRIVER_ONLY:
                params[key] = str(value).lower() if isinstance(value, bool) else str(value)
            else:
                unknown.append(key)
        if unknown:
            raise ConnectionConfigError(
                f"connection {conn.conn_id!r} has extra field(s) libpq does not know: {', '.join(sorted(unknown))}",
                hint=f"remove them, or use libpq's names ({', '.join(sorted(LIBPQ_ENV))})")
        return cls(conn.conn_id, db, conn.host, conn.port, conn.login, conn.password, params)

    def on_database(self, database: str) -> "PgConn":
        """The same server and user, another database (a scratch copy, the maintenance db)."""
        return replace(self, database=database)

    @property
    def secrets(self) -> list[str]:
        return [self.password] if self.password else []

    def describe(self) -> str:
        """``user@host:port/database`` for messages (never the password)."""
        return f"{self.user or '(default user)'}@{self.host or '(local socket)'}:{self.port or 5432}/{self.database}"

    def scrub(self, text: str) -> str:
        return redact(text, self.secrets)

    def driver_kwargs(self) -> dict[str, Any]:
        kw: dict[str, Any] = {"dbname": self.database, "connect_timeout": "10", **self.params}
        for key, value in (("host", self.host), ("port", self.port), ("user", self.user), ("password", self.password)):
            if value is not None:
                kw[key] = value
        return kw

    def connect(self, *, what: str = "connect"):
        """A psycopg2 connection (autocommit) with :data:`STABLE_SETTINGS` applied."""
        import psycopg2

        try:
            db = psycopg2.connect(**self.driver_kwargs())
        except psycopg2.Error as e:
            raise connect_error(self, e, what) from None
        db.autocommit = True
        with db.cursor() as cur:
            for name, value in STABLE_SETTINGS.items():
                cur.execute("SELECT set_config(%s, %s, false)", (name, value))
        return db

    @contextmanager
    def tool_env(self, *, options: str | None = None) -> Iterator[dict[str, str]]:
        """The environment for ``pg_dump``/``pg_restore``/``psql``: the worker's, minus every
        inherited ``PG*`` variable, plus this connection (password in a 0600 PGPASSFILE)."""
        env = {k: v for k, v in os.environ.items() if not k.startswith("PG")}
        for key, value in (("PGHOST", self.host), ("PGPORT", self.port), ("PGUSER", self.user)):
            if value is not None:
                env[key] = str(value)
        env["PGDATABASE"] = self.database
        for key, value in self.params.items():
            if key in LIBPQ_ENV:
                env[LIBPQ_ENV[key]] = value
        if options:
            env["PGOPTIONS"] = f"{env.get('PGOPTIONS', '')} {options}".strip()
        tmp = tempfile.mkdtemp(prefix="backup-dr-pgpass-")  # 0700
        try:
            if self.password is not None:
                path = os.path.join(tmp, "pgpass")
                fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
                with os.fdopen(fd, "w", encoding="utf-8") as f:
                    f.write(f"*:*:*:{_pgpass_escape(self.user or '*')}:{_pgpass_escape(self.password)}\n")
                env["PGPASSFILE"] = path
            else:
                env["PGPASSFILE"] = os.path.join(tmp, "none")  # never the worker's ~/.pgpass (a missing file is fine)
            yield env
        finally:
            shutil.rmtree(tmp, ignore_errors=True)


def _pgpass_escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace(":", "\\:")


@contextmanager
def translate(pg: PgConn, what: str, cls: type = SourceError, hint: str | None = None) -> Iterator[None]:
    """Turn a driver error inside the block into ``cls`` (default: retryable SourceError),
    naming what was being done and the server, with secrets redacted."""
    import psycopg2

    try:
        yield
    except psycopg2.OperationalError as e:
        if getattr(e, "pgcode", None) is None:  # no SQLSTATE: the connection itself failed (libpq's text
            raise connect_error(pg, e, what) from None  # is redacted into the new error; not chained)
        raise cls(f"{what} failed on {pg.describe()}", detail=pg.scrub(str(e).strip()), hint=hint) from e
    except psycopg2.Error as e:
        if getattr(e, "pgcode", None) == "42501":  # insufficient_privilege: retrying will not help
            raise privilege_error(pg, pg.scrub(str(e).strip()), what) from e
        raise cls(f"{what} failed on {pg.describe()}", detail=pg.scrub(str(e).strip()), hint=hint) from e


def privilege_error(pg: PgConn, text: str, what: str) -> ConnectionConfigError:
    return ConnectionConfigError(
        f"{what}: login {pg.user!r} may not read everything it must back up or restore in {pg.describe()}",
        detail=text,
        hint=f"GRANT pg_read_all_data TO {pg.user} (PostgreSQL 14+; older: SELECT on every table and USAGE on every "
             "schema) for backups; restores need the owner of the objects or a superuser")


def connect_error(pg: PgConn, e: Exception, what: str) -> Exception:
    """A driver's (or a tool's) connection failure as the project's error, secrets redacted."""
    text = pg.scrub(str(e).strip())
    low = text.lower()
    if "authentication failed" in low or "no password supplied" in low or "password authentication" in low:
        return ConnectionConfigError(f"PostgreSQL refused the credentials of connection {pg.conn_id!r} ({pg.describe()})",
                                     detail=text, hint=f"correct the login/password of connection {pg.conn_id!r}")
    if "does not support ssl" in low:
        return ConnectionConfigError(
            f"{what}: connection {pg.conn_id!r} asks for TLS (sslmode={pg.params.get('sslmode')}), which the server does "
            f"not offer ({pg.describe()})", detail=text,
            hint="enable ssl on the server, or set the connection's sslmode extra to what the server supports")
    if "does not exist" in low and ("database" in low or "role" in low):
        return ConnectionConfigError(f"{what}: {pg.describe()} does not exist", detail=text,
                                     hint=f"check connection {pg.conn_id!r} (login and schema/database) or create the database")
    return SourceError(f"{what}: cannot reach PostgreSQL at {pg.describe()} (connection {pg.conn_id!r})", detail=text,
                       hint="check that the server is up and reachable from this worker; the task will retry")
