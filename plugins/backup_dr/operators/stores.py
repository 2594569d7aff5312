"""Store operators: fan a finished local backup out to the other stores, and prune by retention.

Usage (the factory maps replication over the class's stores, one task instance per store)::

    ReplicateOperator.partial(task_id="replicate_mongodb", backup=XComArg(dump)).expand(store=["s3", "gcs"])
    PruneOperator(task_id="prune", backup_class="critical_data")
"""

from __future__ import annotations

from typing import Any, Sequence

from airflow.sdk import BaseOperator, Context

from backup_dr.core.artifacts.layout import BackupId
from backup_dr.core.artifacts.reader import load_manifest
from backup_dr.hooks import local_store, open_store
from backup_dr.operators._common import get_policy, translate_errors


class ReplicateOperator(BaseOperator):
    """Upload one backup to one store, verify every byte client-side (read back + sha256), then
    write its manifest there LAST. Idempotent: a retry finishes or confirms the same copy.

    :param backup: the backup task's XCom result (a dict with ``backup_id``) or a backup id (templated)
    :param store: policy store name to copy to (templated; mapped by the factory)
    """

    template_fields: Sequence[str] = ("backup", "store")
    ui_color = "#e8eef8"
    #: ``map_index_template`` for instances mapped over ``store``: the UI shows "s3", "gcs", not 0, 1
    STORE_LABEL = "{{ task.store }}"

    def __init__(self, *, backup: dict | str, store: str, policy_path: str | None = None, **kwargs) -> None:
        super().__init__(**kwargs)
        self.backup = backup
        self.store = store
        self.policy_path = policy_path

    def execute(self, context: Context) -> dict[str, Any]:
        from backup_dr.core.replicate import replicate

        policy = get_policy(self.policy_path)
        backup_id = self.backup["backup_id"] if isinstance(self.backup, dict) else str(self.backup)
        bid = BackupId.parse(backup_id)
        with translate_errors():
            local = local_store(policy, bid.backup_class)
            manifest = load_manifest(local, bid)
            dest = open_store(policy.stores[self.store])
            result = replicate(local, manifest, dest)
        self.log.info("replicated %s to %s (%s): %s", backup_id, self.store, dest.describe(), result)
        return {"backup_id": backup_id, "store": self.store, **{k: v for k, v in result.items() if k != "files"}}


class PruneOperator(BaseOperator):
    """Apply a class's retention in every store it uses: plan first (logged, every decision with
    its reason), then delete unless ``dry_run``. Never deletes the newest verified backup of a
    source nor a full backup a kept PITR chain needs; Object-Locked objects are reported and skipped.

    :param backup_class: policy class (templated)
    :param dry_run: only log the plan (templated)
    """

    template_fields: Sequence[str] = ("backup_class", "dry_run")
    ui_color = "#f8efe8"

    def __init__(self, *, backup_class: str, dry_run: bool = False, policy_path: str | None = None, **kwargs) -> None:
        super().__init__(**kwargs)
        self.backup_class = backup_class
        self.dry_run = dry_run
        self.policy_path = policy_path

    def execute(self, context: Context) -> dict[str, Any]:
        from backup_dr.core.retention import PrunePlan, execute_prune, plan_prune

        policy = get_policy(self.policy_path)
        cls = policy.classes[self.backup_class]
        with translate_errors():
            stores = {name: open_store(policy.stores[name]) for name in cls.stores}
            plan = plan_prune(stores, policy)
            mine = PrunePlan(now=plan.now, grace=plan.grace,
                             decisions=[d for d in plan.decisions if BackupId.parse(d.backup_id).backup_class == cls.name])
            self.log.info("%s", mine.render())
            summary = mine.to_dict()["summary"]
            if self.dry_run in (True, "True", "true"):
                return {"dry_run": True, "summary": summary}
            result = execute_prune(mine, stores)
        return {"dry_run": False, "summary": summary, "deleted": len(result.get("deleted", [])),
                "locked": result.get("locked", []), "failed": result.get("failed", [])}
