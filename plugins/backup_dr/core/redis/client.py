"""Redis connection details from a :class:`ConnInfo`, for redis-py and for the raw replication socket.

An Airflow ``redis`` connection is read the way RedisHook reads it (login = ACL user,
password, ``extra``: ``db``, ``ssl``, ``ssl_cert_reqs``, ``ssl_ca_certs``, ``ssl_certfile``,
``ssl_keyfile``, ``ssl_check_hostname``), so the same connection id works for the hook and
for this core. Every error raised here names the connection id and ``host:port`` and never
the password (messages from redis-py are passed through :func:`redact`).
"""

from __future__ import annotations

import socket
import ssl
from dataclasses import dataclass, field
from typing import Any

from backup_dr.core.connections import ConnInfo, redact
from backup_dr.core.errors import BackupDRError, ConnectionConfigError, SourceError

DEFAULT_PORT = 6379
#: INFO sections recorded in manifests (no section holds a password; values are redacted anyway)
INFO_SECTIONS = ("server", "persistence", "replication", "memory", "keyspace")


@dataclass(frozen=True)
class RedisTarget:
    conn_id: str
    host: str
    port: int
    username: str | None
    password: str | None = field(repr=False)
    db: int
    ssl: bool
    ssl_args: dict[str, Any]

    @property
    def where(self) -> str:
        return f"redis connection {self.conn_id!r} ({self.host}:{self.port})"

    @property
    def user(self) -> str:
        return self.username or "default"


def target(conn: ConnInfo) -> RedisTarget:
    extra = conn.extra or {}
    password = conn.password
    if password is not None and str(password).lower() in ("", "none", "false"):  # as RedisHook does
        password = None
    try:
        db = int(extra.get("db") or 0)
    except (TypeError, ValueError):
        raise ConnectionConfigError(f"redis connection {conn.conn_id!r}: extra.db must be an integer, got {extra.get('db')!r}") from None
    ssl_args = {k: v for k, v in extra.items() if k.startswith("ssl_")}
    return RedisTarget(conn.conn_id, conn.host or "localhost", int(conn.port or DEFAULT_PORT), conn.login or None,
                       password, db, _truthy(extra.get("ssl")), ssl_args)


def _truthy(value) -> bool:
    return value is True or str(value).lower() in ("1", "true", "yes", "on")


def _ssl_context(t: RedisTarget) -> ssl.SSLContext:
    ctx = ssl.create_default_context(cafile=t.ssl_args.get("ssl_ca_certs"))
    reqs = str(t.ssl_args.get("ssl_cert_reqs", "required")).lower()
    if reqs == "none":
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
    elif reqs == "optional":
        ctx.verify_mode = ssl.CERT_OPTIONAL
    if "ssl_check_hostname" in t.ssl_args and ctx.verify_mode != ssl.CERT_NONE:
        ctx.check_hostname = _truthy(t.ssl_args["ssl_check_hostname"])
    if t.ssl_args.get("ssl_certfile"):
        ctx.load_cert_chain(t.ssl_args["ssl_certfile"], t.ssl_args.get("ssl_keyfile"))
    return ctx


def open_socket(t: RedisTarget, timeout: float) -> socket.socket:
    """A connected (TLS-wrapped if configured) socket; SourceError if the server is unreachable."""
    try:
        sock = socket.create_connection((t.host, t.port), timeout=timeout)
    except OSError as e:
        raise SourceError(f"{t.where}: cannot connect: {e.strerror or e}", hint="is the server up and reachable from this worker?") from e
    try:
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        if t.ssl:
            sock = _ssl_context(t).wrap_socket(sock, server_hostname=t.host)
    except (OSError, ssl.SSLError) as e:
        sock.close()
        raise SourceError(f"{t.where}: TLS handshake failed: {e}") from e
    return sock


def redis_client(conn: ConnInfo, *, timeout: float = 30.0, db: int | None = None):
    """A redis-py client for ordinary commands (INFO, BGSAVE, CONFIG GET, ...)."""
    import redis
    from redis.backoff import NoBackoff
    from redis.retry import Retry

    t = target(conn)
    # no silent retries with backoff inside redis-py (a wrong password would take seconds to
    # report): the task's own retries handle transient failures
    kw: dict[str, Any] = {"retry": Retry(NoBackoff(), 0)}
    if t.ssl:
        kw["ssl"] = True
        kw.update(t.ssl_args)
    return redis.Redis(host=t.host, port=t.port, username=t.username, password=t.password,
                       db=t.db if db is None else db, socket_timeout=timeout, socket_connect_timeout=min(timeout, 10.0), **kw)


def translate(conn: ConnInfo, exc: Exception, action: str) -> BackupDRError:
    """A redis-py exception as the project's error: config problems are not retryable, I/O is."""
    import redis.exceptions as rx

    t = target(conn)
    text = redact(str(exc), conn.secrets)
    if isinstance(exc, rx.AuthenticationError) or "WRONGPASS" in text or "NOAUTH" in text or "invalid password" in text:
        return auth_error(t, text)
    if isinstance(exc, rx.NoPermissionError) or text.startswith("NOPERM") or "no permissions" in text:
        return ConnectionConfigError(
            f"{t.where}: user {t.user!r} may not {action}",
            detail=text,
            hint=f"grant the command to the user (ACL SETUSER {t.user} +<command>) or use a connection with more rights",
        )
    if isinstance(exc, (rx.ConnectionError, rx.TimeoutError, OSError)):
        return SourceError(f"{t.where}: {action} failed: {text}", hint="a network or server hiccup; the task retries")
    return SourceError(f"{t.where}: {action} failed: {text}")


def auth_error(t: RedisTarget, reply: str) -> ConnectionConfigError:
    if "NOAUTH" in reply or "Authentication required" in reply or (t.password is None and not t.username):
        return ConnectionConfigError(
            f"{t.where}: the server requires a password and the connection has none",
            hint=f"set the password (and login, for an ACL user) of Airflow connection {t.conn_id!r}",
        )
    return ConnectionConfigError(
        f"{t.where}: authentication failed for user {t.user!r}",
        detail="the server rejected the user name / password pair (WRONGPASS)",
        hint=f"check the login and password of Airflow connection {t.conn_id!r} (and that the ACL user is 'on')",
    )


def server_info(r, conn: ConnInfo) -> dict[str, dict[str, Any]]:
    """The INFO sections worth keeping in a manifest, with any secret value redacted.

    Raises :class:`ConnectionConfigError` when the user may not run INFO (callers that can
    live without it catch that).
    """
    import redis.exceptions as rx

    out: dict[str, dict[str, Any]] = {}
    for section in INFO_SECTIONS:
        try:
            values = r.info(section)
        except rx.RedisError as e:
            raise translate(conn, e, f"run INFO {section}") from None
        out[section] = {k: (redact(v, conn.secrets) if isinstance(v, str) else v) for k, v in values.items()}
    return out


def keyspace_counts(info_keyspace: dict[str, Any]) -> tuple[dict[str, int], dict[str, int]]:
    """({"db0": keys}, {"db0": expires}) from redis-py's parsed INFO keyspace."""
    keys, expires = {}, {}
    for name, value in sorted(info_keyspace.items()):
        if name.startswith("db") and isinstance(value, dict):
            keys[name] = int(value.get("keys", 0))
            expires[name] = int(value.get("expires", 0))
    return keys, expires
