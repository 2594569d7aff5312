"""Restore targets from connection ids: a MongoClient from the core builder the operators use too.

Targets are always connection ids (``--to mongo_new_primary``), never URIs: a URI with a
password on the command line is visible to every user of the machine in ``ps``.
"""

from __future__ import annotations

from contextlib import contextmanager
from typing import Iterator

from backup_dr.core.connections import ConnInfo, check_mongo_conn, mongo_client_from
from backup_dr.core.mongo.mongo_errors import translate

__all__ = ["check_mongo_conn", "mongo_client", "new_mongo_client"]


def new_mongo_client(conn: ConnInfo, *, timeout_ms: int = 15000, **options):
    """A MongoClient for ``conn`` (not yet connected; the caller closes it). The connection's own
    timeouts win over ``timeout_ms``; ``options`` (e.g. a probe's short timeouts) win over both."""
    given = {k.lower() for k in conn.extra}
    defaults = {k: timeout_ms for k in ("serverSelectionTimeoutMS", "connectTimeoutMS") if k.lower() not in given}
    return mongo_client_from(conn, **{**defaults, **options})


@contextmanager
def mongo_client(conn: ConnInfo, *, timeout_ms: int = 15000) -> Iterator:
    """A connected client (pinged, so an unreachable server fails here with a clear message)."""
    where = f"MongoDB connection {conn.conn_id!r} ({conn.host or '127.0.0.1'}:{conn.port or 27017})"
    with translate(where, secrets=conn.secrets):
        client = new_mongo_client(conn, timeout_ms=timeout_ms)
        try:
            client.admin.command("ping")
        except BaseException:
            client.close()
            raise
    try:
        yield client
    finally:
        client.close()
