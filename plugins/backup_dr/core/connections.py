"""Connection details without Airflow: the same ``AIRFLOW_CONN_<ID>`` format, read by the core.

The Airflow operators turn an Airflow ``Connection`` into a :class:`ConnInfo`; the break-glass
CLI builds one from the very same ``AIRFLOW_CONN_<ID>`` environment variable (JSON or URI
form) or from a JSON file of connections, so a restore with Airflow gone uses the same
connection ids as the policy. ``repr`` and ``str`` never show the password.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, quote, unquote, urlsplit

from backup_dr.core.errors import ConnectionConfigError

_ENV_FILE = "BACKUP_DR_CONNECTIONS_FILE"


@dataclass(frozen=True)
class ConnInfo:
    conn_id: str
    conn_type: str = ""
    host: str | None = None
    port: int | None = None
    login: str | None = None
    password: str | None = field(default=None, repr=False)
    schema: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    def __repr__(self) -> str:
        return f"ConnInfo(conn_id={self.conn_id!r}, conn_type={self.conn_type!r}, host={self.host!r}, port={self.port!r}, login={self.login!r}, password={'***' if self.password else None})"

    __str__ = __repr__

    @property
    def secrets(self) -> list[str]:
        """Values that must never appear in logs or messages."""
        out = [self.password] if self.password else []
        for key in ("aws_secret_access_key", "aws_session_token", "keyfile_dict", "webhook_token", "key", "token"):
            v = self.extra.get(key)
            if isinstance(v, str) and v:
                out.append(v)
        keys = self.extra.get("keys")  # an encryption keyring: {"k1": "<base64 key>", ...}
        if isinstance(keys, dict):
            out += [v for v in keys.values() if isinstance(v, str) and v]
        return out


def _from_uri(conn_id: str, uri: str) -> ConnInfo:
    parts = urlsplit(uri)
    extra: dict[str, Any] = dict(parse_qsl(parts.query))
    if "__extra__" in extra:
        extra = json.loads(extra["__extra__"])
    return ConnInfo(
        conn_id=conn_id,
        conn_type=parts.scheme.replace("-", "_"),
        host=unquote(parts.hostname) if parts.hostname else None,
        port=parts.port,
        login=unquote(parts.username) if parts.username else None,
        password=unquote(parts.password) if parts.password else None,
        schema=unquote(parts.path.lstrip("/")) or None,
        extra=extra,
    )


def _from_mapping(conn_id: str, data: dict) -> ConnInfo:
    extra = data.get("extra") or {}
    if isinstance(extra, str):
        extra = json.loads(extra) if extra.strip() else {}
    port = data.get("port")
    return ConnInfo(
        conn_id=conn_id,
        conn_type=str(data.get("conn_type", "")),
        host=data.get("host"),
        port=int(port) if port not in (None, "") else None,
        login=data.get("login"),
        password=data.get("password"),
        schema=data.get("schema"),
        extra=extra,
    )


def parse_conn(conn_id: str, value: str) -> ConnInfo:
    """Parse the value of an ``AIRFLOW_CONN_<ID>`` variable (JSON object or URI)."""
    text = value.strip()
    try:
        if text.startswith("{"):
            return _from_mapping(conn_id, json.loads(text))
        return _from_uri(conn_id, text)
    except (ValueError, TypeError) as e:
        raise ConnectionConfigError(
            f"connection {conn_id!r} is not valid JSON or a connection URI",
            detail=type(e).__name__,  # never the text: it holds the secret
            hint=f"set AIRFLOW_CONN_{conn_id.upper()} to JSON like "
            '{"conn_type": "mongo", "host": "...", "login": "...", "password": "..."}',
        ) from None


def conn_from_env(conn_id: str) -> ConnInfo:
    """Resolve a connection without Airflow: env var first, then ``$BACKUP_DR_CONNECTIONS_FILE``."""
    value = os.environ.get(f"AIRFLOW_CONN_{conn_id.upper()}")
    if value:
        return parse_conn(conn_id, value)
    path = os.environ.get(_ENV_FILE)
    if path and Path(path).is_file():
        data = json.loads(Path(path).read_text())
        if conn_id in data:
            entry = data[conn_id]
            return parse_conn(conn_id, entry) if isinstance(entry, str) else _from_mapping(conn_id, entry)
    raise ConnectionConfigError(
        f"connection {conn_id!r} is not defined",
        hint=f"set AIRFLOW_CONN_{conn_id.upper()} (JSON or URI), or list it in the JSON file named by ${_ENV_FILE}",
    )


_MONGO_TYPES = ("mongo", "mongodb", "")  # "": a CLI connections-file entry that names no type


def check_mongo_conn(conn: ConnInfo) -> None:
    """Refuse a connection of another system (a Redis or S3 id given where MongoDB is meant)."""
    if conn.conn_type == "mongodb+srv":
        raise ConnectionConfigError(f"connection {conn.conn_id!r} has conn_type 'mongodb+srv'",
                                    hint='use conn_type "mongo" with "srv": true in the extras (as MongoHook requires)')
    if conn.conn_type not in _MONGO_TYPES:
        raise ConnectionConfigError(f"connection {conn.conn_id!r} is a {conn.conn_type!r} connection; a MongoDB target needs conn_type 'mongo'",
                                    hint="name a mongo connection, or fix the connection's conn_type")


def _mongo_parts(conn: ConnInfo) -> tuple[str, dict[str, Any]]:
    """The URI without options, and the client options, from a ``mongo`` connection, as MongoHook
    reads it: extras are client options, ``srv`` picks ``mongodb+srv``, ``allow_insecure`` with
    ``tls``/``ssl`` accepts an invalid certificate. One reading for the operators and the CLI."""
    check_mongo_conn(conn)
    srv = str(conn.extra.get("srv", "false")).lower() == "true"
    if srv and conn.port:
        raise ConnectionConfigError(f"connection {conn.conn_id!r} sets srv and a port; an SRV (seed list) URI has no port",
                                    hint="leave the port empty, or drop \"srv\" from the extras")
    scheme = "mongodb+srv" if srv else "mongodb"
    cred = ""
    if conn.login:
        cred = quote(conn.login, safe="")
        if conn.password:
            cred += ":" + quote(conn.password, safe="")
        cred += "@"
    host = conn.host or "127.0.0.1"
    hostport = host if (conn.port is None or "," in host) else f"{host}:{conn.port}"
    opts = {k: v for k, v in conn.extra.items() if k not in ("srv", "allow_insecure")}
    tls = any(str(conn.extra.get(k, "false")).lower() == "true" for k in ("tls", "ssl"))
    if tls and str(conn.extra.get("allow_insecure", "false")).lower() == "true":
        opts["tlsAllowInvalidCertificates"] = True  # as MongoHook: the operators and the CLI accept the same server
    return f"{scheme}://{cred}{hostport}/{conn.schema or ''}", opts


def mongo_uri(conn: ConnInfo) -> str:
    """A ``mongodb://`` URI from a ``mongo`` connection, the extras as URI options (for tools and
    child processes that take a URI; in process use :func:`mongo_client_from`)."""
    base, opts = _mongo_parts(conn)
    query = "&".join(f"{k}={quote(str(v).lower() if isinstance(v, bool) else str(v), safe='')}" for k, v in opts.items())
    return base + (f"?{query}" if query else "")


def mongo_client_from(conn: ConnInfo, **options):
    """A MongoClient (not yet connected; the caller closes it) for a ``mongo`` connection.

    The one client builder: the operators' SourceHook feeds it the Airflow connection, the CLI
    its ``AIRFLOW_CONN_*`` ConnInfo. Extras are passed as client options with their JSON types
    (as MongoHook does); ``options`` (e.g. ``readPreference``, timeouts) win over the extras.
    """
    import pymongo

    base, opts = _mongo_parts(conn)
    given = {k.lower() for k in options}  # pymongo options are case-insensitive: one spelling each
    return pymongo.MongoClient(base, **{k: v for k, v in opts.items() if k.lower() not in given}, **options)


def redact(text: str, secrets: list[str]) -> str:
    """Replace every secret value in a message with ``***`` (for errors raised by drivers)."""
    for s in secrets:
        if s:
            text = text.replace(s, "***")
            text = text.replace(quote(s, safe=""), "***")
    return text
