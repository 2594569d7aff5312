"""What every operator shares: the policy, error translation, the XCom shape.

Operators stay thin: they get clients and stores from the hooks (:mod:`backup_dr.hooks`, the
only connection code of the Airflow layer), call :mod:`backup_dr.core`, and return a small
dict for XCom. Core errors are translated at this boundary: a non-retryable one (bad policy,
corrupt data, refused restore) becomes ``AirflowFailException`` so ``retries`` do not hammer
a lost cause; a transient one propagates unchanged so they do.
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
from backup_dr.core.connections import redact
from backup_dr.core.engines import Connector
from backup_dr.core.errors import BackupDRError, ConnectionConfigError, TransientError
from backup_dr.core.policy import default_policy_path, load_policy
from backup_dr.core.policy_model import Policy
# the connection helpers live in the hooks; re-exported for the operators that import them from here
from backup_dr.hooks import conn_info, local_store, mongo_client, open_store  # noqa: F401

log = logging.getLogger(__name__)


@functools.lru_cache(maxsize=4)
def _cached_policy(path: str, mtime: float, env_key: tuple) -> Policy:
    return load_policy(path, strict=False)


def get_policy(path: str | os.PathLike | None = None) -> Policy:
    """The policy as the DAGs saw it (lenient: broken entries are dropped and reported)."""
    p = Path(path or default_policy_path())
    env_key = tuple(sorted((k, v) for k, v in os.environ.items() if k.startswith("BACKUP_DR_")))
    return _cached_policy(str(p), p.stat().st_mtime, env_key)


#: how the engines reach a connection from inside a task: Airflow Connections, through the hooks
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
