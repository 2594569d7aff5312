"""Restore operators for use in your own DAGs (the DR scenario DAGs compose the same core calls).

    MongoRestoreOperator(task_id="restore", backup_id="latest", backup_class="critical_data",
                         target_conn_id="mongo_dr_target", drop=True)
    RedisRestoreOperator(task_id="restore_cache", backup_id="latest", backup_class="operational_data",
                         mode="load", target_conn_id="redis_dr_target", replace=True)

Both read only bytes whose sha256 matches the manifest, from the first store holding a good
copy (:mod:`backup_dr.core.good_copy`: a corrupt copy is skipped with the reason logged, the
copy is downloaded once, by the restore itself; the result names the copy used), and refuse
a non-empty target unless told to overwrite it. A failed MongoDB restore is rolled back from
its safety backup, also when Airflow stops it (execution_timeout, "mark failed": SIGTERM); one
whose worker was killed outright is found by its journal record (``python -m backup_dr restore status``).
"""

from __future__ import annotations

from typing import Any, Sequence

from airflow.sdk import BaseOperator, Context
from airflow.sdk.exceptions import AirflowFailException

from backup_dr.core.artifacts.layout import BackupId
from backup_dr.core.engines import class_source
from backup_dr.core.good_copy import with_good_copy
from backup_dr.core.restores.journal import JournalDir
from backup_dr.core.restores.workdirs import sweep_stale, work_dir
from backup_dr.operators._common import conn_info, get_policy, local_store, mongo_client, open_store, translate_errors


def _truthy(value: Any) -> bool:
    return value is True or str(value).strip().lower() in ("true", "1", "yes", "on")


def _pick(policy, backup_class: str, source: str | None, kind: str, backup_id: str):
    """(entry, stores, copy order) for an id or ``latest`` (the backup captured last), through
    the one good-copy picker; the restore then verifies the copy as it fetches it (one download)."""
    from backup_dr.core.catalog import Catalog
    from backup_dr.core.good_copy import copy_order, newest_backup, store_order

    cls = policy.classes[backup_class]
    stores = {n: open_store(policy.stores[n]) for n in cls.stores}
    catalog = Catalog(stores)
    if backup_id in ("", "latest", None):
        if source is None:
            raise AirflowFailException("backup_id 'latest' needs the source name")
        entry = newest_backup(catalog, cls.name, source, kind)
    else:
        entry = catalog.find(BackupId.parse(backup_id))
    if entry is None:
        raise AirflowFailException(f"no complete backup {backup_id!r} of {backup_class}/{source or '?'} in {', '.join(stores)}")
    return entry, stores, copy_order(entry, store_order(policy, cls.name), stores)


class MongoRestoreOperator(BaseOperator):
    """Safe MongoDB restore: safety backup of the target, restore with drop, validate, roll back
    on any failure.

    :param backup_id: a backup id or ``latest`` (templated)
    :param backup_class: policy class (templated)
    :param target_conn_id: Airflow connection of the MongoDB to restore into (templated)
    :param source: policy source (for ``latest``; default the class's MongoDB source) (templated)
    :param target_db: restore under another database name (templated)
    :param collections: restore only these collections (templated)
    :param drop: allow overwriting collections that exist in the target (templated)
    """

    template_fields: Sequence[str] = ("backup_id", "backup_class", "target_conn_id", "source", "target_db", "collections", "drop")
    ui_color = "#fbe9e7"

    def __init__(self, *, backup_id: str, backup_class: str, target_conn_id: str, source: str | None = None,
                 target_db: str | None = None, collections: list[str] | None = None, drop: Any = False,
                 policy_path: str | None = None, **kwargs) -> None:
        super().__init__(**kwargs)
        self.backup_id, self.backup_class, self.target_conn_id = backup_id, backup_class, target_conn_id
        self.source, self.target_db, self.collections, self.drop = source, target_db, collections, drop
        self.policy_path = policy_path

    def execute(self, context: Context) -> dict[str, Any]:
        from backup_dr.core.mongo.backup import restore_mongodb
        from backup_dr.core.mongo.interrupted import Journaling

        policy = get_policy(self.policy_path)
        cls = policy.classes[self.backup_class]
        source = self.source or class_source(policy, cls.name, "mongodb")
        secrets = conn_info(self.target_conn_id).secrets
        local = local_store(policy, cls.name)
        sweep_stale()  # download dirs a killed earlier attempt left behind
        with translate_errors(*secrets, conn_id=self.target_conn_id), work_dir("backup-dr-restore-") as work:
            entry, stores, order = _pick(policy, cls.name, source, "full", self.backup_id)
            self.log.info("restoring %s into %s; copies in order: %s", entry.backup_id, self.target_conn_id, ", ".join(order))
            with mongo_client(self.target_conn_id) as client:
                result, attempts = with_good_copy(entry, stores, order, lambda store, m: restore_mongodb(
                    client, store, m, workdir=work, safety_dir=str(local.root),
                    target_db=self.target_db or None, collections=list(self.collections or []) or None,
                    drop=_truthy(self.drop), secrets=secrets,
                    journaling=Journaling(dir=local.root, conn_id=self.target_conn_id)))
        out = result.as_dict() if hasattr(result, "as_dict") else {}
        return {"backup_id": entry.backup_id, "target": self.target_conn_id,
                **{k: v for k, v in out.items() if isinstance(v, (str, int, float, bool, dict, list, type(None)))},
                **attempts.as_dict()}


class RedisRestoreOperator(BaseOperator):
    """Restore a Redis backup. Modes:

    * ``scratch``: load it into a fresh local redis-server, check it against the manifest, stop it
      (a verification);
    * ``load``: copy every key into the running server of ``target_conn_id`` (any server) over the
      network (``DUMP``/``RESTORE``, TTLs kept); refuses a non-empty target unless ``replace``,
      which makes the WHOLE target equal the backup (safety copy first, compared afterwards);
    * ``data_dir``: the seed's procedure made safe, for a worker on the Redis host: safety copy,
      files placed with the previous owner/mode, restart via ``restart_command``, key counts
      checked, rollback on failure (the AOF-enabled empty-restart trap handled).

    :param backup_id: a backup id or ``latest`` (templated)
    :param backup_class: policy class (templated)
    :param mode: scratch | load | data_dir (templated)
    :param target_conn_id: the Redis to load into / restart (templated; not for scratch)
    :param source: policy source (templated; default the class's Redis source)
    :param replace: ``load`` mode: replace all of the target's data (templated)
    :param data_dir: ``data_dir`` mode: the target server's data directory (templated; default the source's)
    :param restart_command: ``data_dir`` mode: argv restarting the target (default the source's)
    """

    template_fields: Sequence[str] = ("backup_id", "backup_class", "mode", "target_conn_id", "source", "replace", "data_dir")
    ui_color = "#fbe9e7"

    def __init__(self, *, backup_id: str, backup_class: str, mode: str = "scratch", target_conn_id: str | None = None,
                 source: str | None = None, replace: Any = False, data_dir: str | None = None,
                 restart_command: list[str] | None = None, policy_path: str | None = None, **kwargs) -> None:
        super().__init__(**kwargs)
        self.backup_id, self.backup_class, self.mode = backup_id, backup_class, mode
        self.target_conn_id, self.source, self.replace, self.policy_path = target_conn_id, source, replace, policy_path
        self.data_dir, self.restart_command = data_dir, restart_command

    def execute(self, context: Context) -> dict[str, Any]:
        from backup_dr.core.artifacts.layout import kind_for

        policy = get_policy(self.policy_path)
        cls = policy.classes[self.backup_class]
        name = self.source or class_source(policy, cls.name, "redis")
        src = policy.sources[name]
        if self.mode not in ("scratch", "load", "data_dir"):
            raise AirflowFailException(f"mode {self.mode!r} is not one of scratch, load, data_dir")
        if self.mode != "scratch" and not self.target_conn_id:
            raise AirflowFailException(f"mode {self.mode!r} needs target_conn_id")
        secrets = conn_info(self.target_conn_id).secrets if self.target_conn_id else []
        with translate_errors(*secrets, conn_id=self.target_conn_id):
            entry, stores, order = _pick(policy, cls.name, name, kind_for(src), self.backup_id)
            self.log.info("restoring %s (%s mode); copies in order: %s", entry.backup_id, self.mode, ", ".join(order))
            if self.mode == "scratch":
                from backup_dr.core.redis.verify import verify_rdb_restore

                restore = lambda store, m: verify_rdb_restore(store, m)  # noqa: E731
            elif self.mode == "load":
                from backup_dr.core.redis.load import load_into_server

                local = local_store(policy, cls.name)
                restore = lambda store, m: load_into_server(  # noqa: E731
                    conn_info(self.target_conn_id), store, m, replace=_truthy(self.replace),
                    safety_store=local, journal=JournalDir(local.root))
            else:
                from dataclasses import replace

                from backup_dr.core.redis.restore import restore_data_dir

                target_src = replace(src, data_dir=self.data_dir or src.data_dir,
                                     restart_command=tuple(self.restart_command or src.restart_command))
                restore = lambda store, m: restore_data_dir(  # noqa: E731
                    conn_info(self.target_conn_id), target_src, store, m, journal=JournalDir(local_store(policy, cls.name).root))
            result, attempts = with_good_copy(entry, stores, order, restore)
        return {"backup_id": entry.backup_id, "mode": self.mode,
                **{k: v for k, v in result.items() if isinstance(v, (str, int, float, bool, dict, list, type(None)))},
                **attempts.as_dict()}
