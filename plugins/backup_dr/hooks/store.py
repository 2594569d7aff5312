"""``BackupStoreHook``: a policy store opened from its Airflow connection, the CLI's way.

Why not S3Hook / GCSHook: the break-glass CLI must open the very same stores with Airflow
gone, and two builders drift (the CLI's once refused ``role_arn`` while S3Hook accepted it).
So the hook resolves the Airflow connection — metadata DB, ``AIRFLOW_CONN_*`` or a secrets
backend — into a core :class:`~backup_dr.core.connections.ConnInfo` and hands it to the one
core builder (:func:`backup_dr.core.stores.factory.open_store`), which reads an ``aws``
connection as the provider's AwsBaseHook does (keys, region, ``endpoint_url``,
``service_config``, ``role_arn`` + ``assume_role_kwargs`` through STS) and a
``google_cloud_platform`` one as GCSHook does (keyfile_dict, key_path, anonymous, ADC).
"""

from __future__ import annotations

import dataclasses
import logging
from functools import cached_property
from typing import Any, Mapping

from airflow.sdk import BaseHook

from backup_dr.core.errors import BackupDRError
from backup_dr.core.policy_model import Policy, StoreSpec
from backup_dr.core.stores.base import Store
from backup_dr.core.stores.local import LocalStore
from backup_dr.hooks.source import conn_info

log = logging.getLogger(__name__)


class BackupStoreHook(BaseHook):
    """One store of the policy (``stores.<name>``): local directory, S3 bucket or GCS bucket.

    :param store: the store's name in the policy, or its ``StoreSpec``
    :param policy: the policy to look the name up in (default: the one the DAGs load)
    :param store_conn_id: use this connection instead of ``stores.<name>.conn_id``

    The constructor only records its arguments; the connection is read and the client built
    on the first :meth:`get_conn`, and reused after. Example::

        with BackupStoreHook("s3") as store:
            store.put_bytes("backup-dr-v1/_probe", b"ok")
    """

    conn_name_attr = "store_conn_id"
    default_conn_name = "aws_default"
    conn_type = "aws"  # an S3 store's; a GCS store takes a google_cloud_platform connection
    hook_name = "Backup DR store (local / S3 / GCS)"

    def __init__(self, store: str | StoreSpec, *, policy: Policy | None = None, store_conn_id: str | None = None, **kwargs):
        super().__init__(**kwargs)
        self.store = store
        self.policy = policy
        self.store_conn_id = store_conn_id

    @cached_property
    def spec(self) -> StoreSpec:
        """The store's policy entry (with ``store_conn_id`` applied)."""
        if isinstance(self.store, StoreSpec):
            spec = self.store
        else:
            from backup_dr.core.errors import PolicyError

            policy = self.policy or _default_policy()
            if self.store not in policy.stores:
                raise PolicyError([(f"stores.{self.store}", f"no such store; the policy has: {', '.join(policy.stores) or 'none'}")])
            spec = policy.stores[self.store]
        return dataclasses.replace(spec, conn_id=self.store_conn_id) if self.store_conn_id else spec

    def get_conn(self) -> Store:
        """The opened :class:`~backup_dr.core.stores.base.Store` (built once per hook)."""
        return self._store

    @cached_property
    def _store(self) -> Store:
        from backup_dr.core.stores.factory import open_store as core_open_store

        spec = self.spec
        conn = conn_info(spec.conn_id) if spec.type != "local" and spec.conn_id else None
        self.log.debug("opening store %s (%s) with connection %s", spec.name, spec.type, spec.conn_id)
        return core_open_store(spec, conn)

    def __enter__(self) -> Store:
        return self.get_conn()

    def __exit__(self, *exc) -> None:
        client = getattr(self.__dict__.get("_store"), "client", None)
        close = getattr(client, "close", None)
        if callable(close):
            close()
        self.__dict__.pop("_store", None)

    def test_connection(self) -> tuple[bool, str]:
        """Provider-style check: list one key under the store's prefix (reads only)."""
        try:
            next(iter(self.get_conn().list()), None)
        except BackupDRError as e:
            return False, str(e)
        return True, f"listed {self.get_conn().describe()}"

    @classmethod
    def get_ui_field_behaviour(cls) -> dict[str, Any]:
        """The ``aws`` connection fields the store reads (Airflow shows these only for registered
        providers; kept here as the one description of what an S3 store connection holds)."""
        return {
            "hidden_fields": ["host", "schema", "port"],
            "relabeling": {"login": "AWS Access Key ID", "password": "AWS Secret Access Key"},
            "placeholders": {
                "extra": '{"region_name": "ap-northeast-2", "endpoint_url": "https://s3.example", '
                         '"role_arn": "arn:aws:iam::123456789012:role/backup-writer", '
                         '"assume_role_kwargs": {"ExternalId": "..."}, '
                         '"service_config": {"sts": {"endpoint_url": "https://sts.example"}, "s3": {"addressing_style": "path"}}}',
            },
        }


def _default_policy() -> Policy:
    from backup_dr.operators._common import get_policy  # same adapter layer; imported late (it imports us)

    return get_policy()


def open_store(spec: StoreSpec) -> Store:
    """Shorthand for ``BackupStoreHook(spec).get_conn()``."""
    return BackupStoreHook(spec).get_conn()


def local_store(policy: Policy, class_name: str | None = None) -> LocalStore:
    """The staging store: the first store of the class (validated to be local), else any local one."""
    names = policy.classes[class_name].stores if class_name else [n for n, s in policy.stores.items() if s.type == "local"]
    store = BackupStoreHook(names[0], policy=policy).get_conn()
    assert isinstance(store, LocalStore), f"store {names[0]} is not local"
    return store


def open_available(specs: Mapping[str, StoreSpec], *, local_first: bool = False) -> tuple[dict[str, Store], dict[str, str]]:
    """Every store that opens, and why each other one did not (``{name: message}``): a restore can
    use any good copy and a health report lists an unreachable store as a finding, so one broken
    connection must not stop either. ``local_first``: local stores come first (restore preference)."""
    items = sorted(specs.items(), key=lambda kv: kv[1].type != "local") if local_first else list(specs.items())
    stores: dict[str, Store] = {}
    unavailable: dict[str, str] = {}
    for name, spec in items:
        try:
            stores[name] = open_store(spec)
        except BackupDRError as e:
            unavailable[name] = e.message
            log.warning("store %s cannot be opened, going on without it: %s", name, e.message)
    return stores, unavailable
