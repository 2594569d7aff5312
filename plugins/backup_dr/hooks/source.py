"""Connections of the systems being backed up or restored into (MongoDB, Redis, webhooks, keys).

Why a hook of our own: the operators need the same connection as two things — a core
:class:`~backup_dr.core.connections.ConnInfo` (what the core reads: Redis, the encryption
keyring, webhooks, the secrets to scrub from messages) and, for MongoDB, a client built from
that ConnInfo by the core's one builder (:func:`~backup_dr.core.connections.mongo_client_from`,
which reads the extras as the provider's MongoHook does: ``srv``, ``tls``/``ssl``,
``allow_insecure``, ``authSource``, ``replicaSet``...), so the CLI and the operators connect
alike. Following provider conventions the constructor only stores the id; the connection is
read on first use.
"""

from __future__ import annotations

from functools import cached_property

from airflow.sdk import BaseHook

from backup_dr.core.connections import ConnInfo, mongo_client_from
from backup_dr.core.crypto.keys import set_connection_resolver
from backup_dr.core.errors import ConnectionConfigError


def conn_info(conn_id: str) -> ConnInfo:
    """An Airflow Connection as a core ConnInfo (the same shape the CLI reads from ``AIRFLOW_CONN_*``)."""
    from airflow.sdk.exceptions import AirflowNotFoundException

    try:
        c = BaseHook.get_connection(conn_id)
    except AirflowNotFoundException as e:
        raise ConnectionConfigError(
            f"Airflow connection {conn_id!r} is not defined",
            hint=f"create it in Admin > Connections or set AIRFLOW_CONN_{conn_id.upper()}",
        ) from e
    return ConnInfo(
        conn_id=conn_id, conn_type=c.conn_type or "", host=c.host, port=c.port, login=c.login,
        password=c.password, schema=c.schema, extra=c.extra_dejson or {},
    )


# Encrypted backups name the connection holding their master key; the core resolves it from
# the environment by default. In Airflow it must come from Airflow's connections (metadata DB
# or secrets backend), for every operator alike, so it is installed once, where they all import.
set_connection_resolver(conn_info)


class SourceHook(BaseHook):
    """A backup source's or restore target's connection (``mongo`` or ``redis``).

    :param source_conn_id: the Airflow connection id (the policy's ``sources.<name>.conn_id``)

    Example::

        hook = SourceHook("mongo_korea_public_data")
        with translate_errors(*hook.secrets, conn_id=hook.source_conn_id), hook.mongo_client() as client:
            ...
    """

    conn_name_attr = "source_conn_id"
    default_conn_name = "mongo_default"
    conn_type = "mongo"
    hook_name = "Backup DR source (MongoDB / Redis)"

    def __init__(self, source_conn_id: str = default_conn_name, **kwargs):
        super().__init__(**kwargs)
        self.source_conn_id = source_conn_id

    @cached_property
    def info(self) -> ConnInfo:
        """The connection as the core reads it (resolved once, on first use)."""
        return conn_info(self.source_conn_id)

    def get_conn(self) -> ConnInfo:
        return self.info

    @property
    def secrets(self) -> list[str]:
        """What must never appear in a log line or error raised while using this connection."""
        return self.info.secrets

    def mongo_client(self, **options):
        """A MongoClient from the connection (the core builder the CLI uses too); ``options``
        (e.g. ``readPreference``, timeouts) win over the connection's extras. Close it (``with``)."""
        return mongo_client_from(self.info, **options)

    def redis_client(self, **kwargs):
        """A redis-py client from the connection (login = ACL user), as the CLI builds it."""
        from backup_dr.core.redis.client import redis_client

        return redis_client(self.info, **kwargs)


def mongo_client(conn_id: str, **options):
    """Shorthand for ``SourceHook(conn_id).mongo_client(**options)``."""
    return SourceHook(conn_id).mongo_client(**options)
