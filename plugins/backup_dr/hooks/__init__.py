"""Airflow hooks: the only place the Airflow layer turns connection ids into clients and stores.

* :class:`~backup_dr.hooks.store.BackupStoreHook` — a policy store (local, S3, GCS) opened from
  its Airflow connection through the same core builders the break-glass CLI uses, so an S3
  connection (keys, ``endpoint_url``, ``role_arn``) behaves identically in both.
* :class:`~backup_dr.hooks.source.SourceHook` — the connection of a backed-up or restored
  system (MongoDB and Redis through the core client builders the CLI uses too).

Operators hold no connection code: they build a hook in ``execute`` and call the core.
The hooks are importable only with Airflow present; the core and CLI never import them.
"""

from backup_dr.hooks.source import SourceHook, conn_info, mongo_client  # noqa: F401
from backup_dr.hooks.store import BackupStoreHook, local_store, open_available, open_store  # noqa: F401
