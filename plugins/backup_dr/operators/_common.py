"""What every operator shares: the policy, connections, stores, error translation, XCom shape.

Operators stay thin: resolve Airflow Connections (reusing the provider hooks for
credentials), call :mod:`backup_dr.core`, and return a small dict for XCom. Core errors
are translated at this boundary: a non-retryable one (bad policy, corrupt data, refused
restore) becomes ``AirflowFailException`` so ``retries`` do not hammer a lost cause; a
transient one propagates unchanged so they do.
"""

from __future__ import annotations

import functools
import logging
import os
from contextlib import contextmanager
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Iterator

from backup_dr.core.artifacts.manifest import Manifest
from backup_dr.core.connections import ConnInfo, redact
from backup_dr.core.crypto.keys import set_connection_resolver
from backup_dr.core.engines import Connector
from backup_dr.core.errors import BackupDRError, ConnectionConfigError, TransientError
from backup_dr.core.policy import default_policy_path, load_policy
from backup_dr.core.policy_model import Policy, StoreSpec
from backup_dr.core.stores.base import Store
from backup_dr.core.stores.local import LocalStore

log = logging.getLogger(__name__)


@functools.lru_cache(maxsize=4)
def _cached_policy(path: str, mtime: float, env_key: tuple) -> Policy:
    return load_policy(path, strict=False)


def get_policy(path: str | os.PathLike | None = None) -> Policy:
    """The policy as the DAGs saw it (lenient: broken entries are dropped and reported)."""
    p = Path(path or default_policy_path())
    env_key = tuple(sorted((k, v) for k, v in os.environ.items() if k.startswith("BACKUP_DR_")))
    return _cached_policy(str(p), p.stat().st_mtime, env_key)


def conn_info(conn_id: str) -> ConnInfo:
    """An Airflow Connection as a core ConnInfo (the same shape the CLI reads from env)."""
    from airflow.sdk import BaseHook
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
# or secrets backend), for the backup operators and for every restore/verify/drill operator
# alike, so it is installed once here, where all of them import from.
set_connection_resolver(conn_info)


def open_store(spec: StoreSpec) -> Store:
    """Build a store; S3 and GCS clients come from the provider hooks (all their auth methods)."""
    from backup_dr.core.stores.factory import open_store as core_open_store

    if spec.type == "local":
        return core_open_store(spec)
    if spec.type == "s3":
        from airflow.providers.amazon.aws.hooks.s3 import S3Hook

        conn = conn_info(spec.conn_id)
        client = _hook_client(spec, "an S3", lambda: S3Hook(aws_conn_id=spec.conn_id).get_conn())
        return core_open_store(spec, conn, client=client)
    if spec.type == "gcs":
        from airflow.providers.google.cloud.hooks.gcs import GCSHook

        conn = conn_info(spec.conn_id)
        client = _hook_client(spec, "a GCS", lambda: GCSHook(gcp_conn_id=spec.conn_id).get_conn())
        return core_open_store(spec, conn, client=client)
    raise ConnectionConfigError(f"store {spec.name!r} has unknown type {spec.type!r}")


def _hook_client(spec: StoreSpec, what: str, build):
    """A provider hook's client; a connection it cannot use (a keyfile that is not a key, a
    malformed extra) is a ConnectionConfigError naming the connection, not retried, and never
    quoting the credential (the vendor's text may hold part of it: only its type is kept)."""
    try:
        return build()
    except BackupDRError:
        raise
    except Exception as e:  # noqa: BLE001 - vendor exception zoo; translated, never swallowed
        raise ConnectionConfigError(
            f"store {spec.name!r}: Airflow connection {spec.conn_id!r} cannot build {what} client ({type(e).__name__})",
            hint=f"check the credentials and extras of connection {spec.conn_id!r} "
                 "(GCS: keyfile_dict must be the whole JSON key file of a service account)",
        ) from None


def local_store(policy: Policy, class_name: str | None = None) -> LocalStore:
    """The staging store: the first store of the class (validated to be local), else any local one."""
    names = policy.classes[class_name].stores if class_name else [n for n, s in policy.stores.items() if s.type == "local"]
    spec = policy.stores[names[0]]
    store = open_store(spec)
    assert isinstance(store, LocalStore), f"store {spec.name} is not local"
    return store


def mongo_client(conn_id: str, **options):
    """A MongoClient built by MongoHook's connection parsing (extras such as authSource, tls,
    replicaSet pass through to MongoClient); ``options`` (e.g. readPreference) are added."""
    from airflow.providers.mongo.hooks.mongo import MongoHook

    hook = MongoHook(mongo_conn_id=conn_id)
    hook.extras.update(options)
    return hook.get_conn()


#: how the engines reach a connection from inside a task: Airflow Connections and MongoHook
CONNECTOR = Connector(conn_info=lambda conn_id: conn_info(conn_id), mongo_client=lambda conn_id, **o: mongo_client(conn_id, **o))


def run_after(context: dict) -> datetime:
    """The run's ``run_after`` (manual/API runs have no logical_date)."""
    dag_run = context.get("dag_run")
    value = getattr(dag_run, "run_after", None) or getattr(dag_run, "logical_date", None) or datetime.now(timezone.utc)
    return value if value.tzinfo else value.replace(tzinfo=timezone.utc)


def manifest_summary(manifest: Manifest, **extra: Any) -> dict[str, Any]:
    """The small XCom result of a backup task (never the data itself)."""
    return {
        "backup_id": manifest.backup_id,
        "backup_class": manifest.backup_class,
        "source": manifest.source,
        "kind": manifest.kind,
        "files": [f.name for f in manifest.files],
        "size_bytes": manifest.total_size,
        "counts": manifest.counts,
        "consistent_point": manifest.consistent_point,
        "finished_at": manifest.finished_at,
        **extra,
    }


@contextmanager
def translate_errors(*secrets: str | None, conn_id: str | None = None) -> Iterator[None]:
    """Map core errors to Airflow semantics, scrubbing any secret from the message.

    ``conn_id``: the connection the block uses; a :class:`ConnectionConfigError` that does not
    name it yet (the core sees a client, not a connection) is prefixed with it, so the person
    reading the alert knows which connection to fix."""
    from airflow.sdk.exceptions import AirflowFailException

    try:
        yield
    except BackupDRError as e:
        text = str(e)
        if conn_id and isinstance(e, ConnectionConfigError) and repr(conn_id) not in text:
            text = f"Airflow connection {conn_id!r}: {text}"
        message = redact(text, [s for s in secrets if s])
        leaked = message != text  # then the original must not be chained into the log either
        if e.retryable:
            if not leaked:
                raise
            raise TransientError(message) from None
        if leaked:
            raise AirflowFailException(message) from None
        raise AirflowFailException(message) from e
