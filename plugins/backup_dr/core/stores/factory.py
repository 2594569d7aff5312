"""Build a :class:`Store` from a policy ``StoreSpec`` (or a URL), failing loudly on anything unknown.

This is the one builder of store clients. The Airflow layer (:class:`backup_dr.hooks.BackupStoreHook`)
passes a :class:`ConnInfo` made from the Airflow connection; the break-glass CLI passes one read
from ``AIRFLOW_CONN_<ID>`` (or nothing: then it is read here) — so an S3 connection with keys,
``endpoint_url`` or ``role_arn`` behaves the same in both (tests needing a specially configured
client construct ``S3Store`` / ``GCSStore`` directly).
"""

from __future__ import annotations

from typing import Callable, Iterable
from urllib.parse import urlsplit

from backup_dr.core.connections import ConnInfo, conn_from_env
from backup_dr.core.errors import ConnectionConfigError, PolicyError
from backup_dr.core.policy_model import StoreSpec
from backup_dr.core.stores.base import Store
from backup_dr.core.stores.local import LocalStore

STORE_TYPES = ("local", "s3", "gcs")


def open_store(spec: StoreSpec, conn: ConnInfo | None = None) -> Store:
    """The store a policy entry describes, its client built from ``conn`` (the one way, CLI and hooks).

    :param conn: the store's connection; read from the environment (``AIRFLOW_CONN_<ID>``) when omitted.
    """
    if spec.type == "local":
        if not spec.path:
            raise PolicyError([(f"stores.{spec.name}.path", "a local store needs an absolute path")])
        return LocalStore(spec.path, name=spec.name)
    if spec.type not in STORE_TYPES:
        raise PolicyError([(f"stores.{spec.name}.type", f"unknown store type {spec.type!r}; known: {', '.join(STORE_TYPES)}")])
    if not spec.bucket:
        raise PolicyError([(f"stores.{spec.name}.bucket", f"an {spec.type} store needs a bucket")])
    if conn is None:
        if not spec.conn_id:
            raise ConnectionConfigError(f"store {spec.name!r} names no conn_id", hint=f"set stores.{spec.name}.conn_id in the policy")
        conn = conn_from_env(spec.conn_id)
    if spec.type == "s3":
        from backup_dr.core.stores import s3

        return s3.S3Store(s3.client_from_conn(conn), spec.bucket, prefix=spec.prefix, name=spec.name,
                          conn_id=conn.conn_id, object_lock=spec.object_lock, secrets=conn.secrets)
    from backup_dr.core.stores import gcs

    return gcs.GCSStore(gcs.client_from_conn(conn), spec.bucket, prefix=spec.prefix, name=spec.name,
                        conn_id=conn.conn_id, secrets=conn.secrets, retry_deadline=(conn.extra or {}).get("retry_deadline"))


def open_stores(specs: Iterable[StoreSpec], resolve: Callable[[str], ConnInfo] = conn_from_env) -> dict[str, Store]:
    """Every store of a class (policy order), connections resolved by ``resolve``."""
    out: dict[str, Store] = {}
    for spec in specs:
        conn = resolve(spec.conn_id) if spec.type != "local" and spec.conn_id else None
        out[spec.name] = open_store(spec, conn)
    return out


def spec_from_url(url: str, *, name: str | None = None, conn_id: str | None = None) -> StoreSpec:
    """A StoreSpec from ``/path``, ``file:///path``, ``s3://bucket/prefix`` or ``gs://bucket/prefix`` (break-glass CLI)."""
    parts = urlsplit(url)
    scheme = parts.scheme or "file"
    if scheme == "file":
        return StoreSpec(name=name or "local", type="local", path=parts.path or url)
    kind = {"s3": "s3", "gs": "gcs", "gcs": "gcs"}.get(scheme)
    if kind is None:
        raise ConnectionConfigError(f"store URL {url!r} has an unknown scheme {scheme!r}",
                                    hint="use /path, file:///path, s3://bucket/prefix or gs://bucket/prefix")
    if not parts.netloc:
        raise ConnectionConfigError(f"store URL {url!r} names no bucket")
    return StoreSpec(name=name or kind, type=kind, bucket=parts.netloc, prefix=parts.path.strip("/"), conn_id=conn_id)
