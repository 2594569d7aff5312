"""Point-in-time recovery operators: archive an oplog slice, alert on a chain gap, restore to a time.

Usage (the ``pitr_oplog_archive`` DAG wires the first three; see dag_factory.pitr)::

    archive = OplogArchiveOperator(task_id="archive_oplog_mongodb", source="mongodb")
    SliceReplicateOperator.partial(task_id="replicate_slice_mongodb", backup=XComArg(archive)).expand(store=["s3"])
    PitrGapAlertOperator(task_id="alert_gap_mongodb", result=XComArg(archive))
    PointInTimeRestoreOperator(task_id="restore", target_conn_id="mongo_scratch", at="2026-11-26T14:30:00+09:00")
"""

from __future__ import annotations

import tempfile
from datetime import datetime
from typing import Any, Sequence

from airflow.sdk import BaseOperator, Context
from airflow.sdk.exceptions import AirflowSkipException

from backup_dr.hooks import SourceHook, local_store, open_available, open_store
from backup_dr.operators._common import get_policy, run_after, translate_errors
from backup_dr.operators.stores import ReplicateOperator


class OplogArchiveOperator(BaseOperator):
    """Archive the next oplog slice of a source: from the end of the previous slice (or the newest
    full backup's end point) up to the majority-committed position, into the class's staging
    store, manifest last. Detects gaps (the oplog rolled over; a slice missing from the stores).

    Returns the slice summary: ``backup_id`` (None when no slice could be written), ``gap``,
    ``new_gap`` (alert), ``needs_full_backup`` and ``trigger_run_id`` (for the full backup run),
    ``gaps`` (each with its reason and marker key), ``message``.

    :param source: policy source with a ``pitr`` entry (templated)
    :param mongo_conn_id: override the source's connection id (templated)
    """

    template_fields: Sequence[str] = ("source", "mongo_conn_id")
    ui_color = "#e8f4f8"

    def __init__(self, *, source: str, mongo_conn_id: str | None = None, policy_path: str | None = None, **kwargs) -> None:
        super().__init__(**kwargs)
        self.source = source
        self.mongo_conn_id = mongo_conn_id
        self.policy_path = policy_path

    def execute(self, context: Context) -> dict[str, Any]:
        from backup_dr.core.pitr import archive_slice, pitr_spec

        policy = get_policy(self.policy_path)
        with translate_errors():
            spec = pitr_spec(policy, self.source)
        src = policy.sources[spec.source]
        cls = policy.classes[spec.backup_class]
        hook = SourceHook(self.mongo_conn_id or src.conn_id)
        with translate_errors(*hook.secrets, conn_id=hook.source_conn_id):
            local = local_store(policy, cls.name)
            names = dict.fromkeys([*spec.stores, cls.stores[0]])
            stores = {n: open_store(policy.stores[n]) for n in names if n != local.name}
            with hook.mongo_client(readPreference=src.read_preference) as client:
                result = archive_slice(client, policy, spec.source, local, stores, run_after(context), secrets=hook.secrets)
        if result.gap:
            self.log.error("PITR GAP for %s/%s: %s", cls.name, spec.source, result.message or "; ".join(g["reason"] for g in result.gaps))
        else:
            self.log.info("%s", result.message)
        return result.as_dict()


class SliceReplicateOperator(ReplicateOperator):
    """:class:`ReplicateOperator` for a slice that may not exist: a run that found a gap (or no
    full backup to chain from) wrote no slice, and this task is then skipped, not failed."""

    def execute(self, context: Context) -> dict[str, Any]:
        if not isinstance(self.backup, dict) or not self.backup.get("backup_id"):
            raise AirflowSkipException(f"no slice to replicate this run: {(self.backup or {}).get('message', 'none')}")
        return super().execute(context)


class PitrGapAlertOperator(BaseOperator):
    """Email + Slack alert for a NEW gap in a PITR chain (each gap is alerted once: its marker
    in the stores says it was seen). A gap that was already alerted is only logged.

    :param result: the :class:`OplogArchiveOperator` result (templated / XComArg)
    """

    template_fields: Sequence[str] = ("result",)
    ui_color = "#f8e8e8"

    def __init__(self, *, result: dict | str, policy_path: str | None = None, **kwargs) -> None:
        super().__init__(**kwargs)
        self.result = result
        self.policy_path = policy_path

    def execute(self, context: Context) -> dict[str, Any]:
        from backup_dr.alerts import send_alert

        r = self.result if isinstance(self.result, dict) else {}
        new = [g for g in r.get("gaps") or [] if g.get("new")]
        label = f"{r.get('backup_class')}/{r.get('source')}"
        if not new:
            self.log.warning("%s: %s (no new gap: already alerted when it was found)", label, r.get("message"))
            return {"alerted": False, "gaps": len(r.get("gaps") or [])}
        policy = get_policy(self.policy_path)
        lines = [f"{g['kind']}: {g['reason']} (marker {g['marker']})" for g in new]
        lines.append("Point-in-time recovery cannot cross this gap: restores to a time after it need a full backup taken after it.")
        if r.get("needs_full_backup"):
            lines.append(f"A full backup of class {r.get('backup_class')} is being triggered (run id {r.get('trigger_run_id')}); "
                         "a new chain of slices starts at its end point.")
        lines.append("The health report (ops_backup_health) shows the restorable window per source.")
        sent = send_alert(policy.alerts, "critical", f"PITR GAP: {label} oplog chain broken", lines, context)
        return {"alerted": True, "routes": sent, "gaps": [g["marker"] for g in new]}


def _truthy(value: Any) -> bool:
    return value is True or str(value).strip().lower() in ("true", "1", "yes")


class PointInTimeRestoreOperator(BaseOperator):
    """Restore a MongoDB source to a point in time: the newest full backup at or before ``at``
    (safety backup of the target, restore, validate), then the oplog slices up to ``at``; any
    failure rolls the target back. A time outside the restorable window fails before the target
    is touched, with the window in the message.

    ``at`` is ISO 8601 with an offset, meaning that WHOLE second (``2026-11-26T14:30:00+09:00``
    replays every write made up to 14:30:00.999), or without one when the policy says so
    (``defaults.naive_times: policy_timezone``: read in ``defaults.timezone``), or
    ``Timestamp(t, i)`` for an exact oplog entry (:func:`backup_dr.core.times.parse_user_time`).
    The instant it resolved to is logged and returned before the target is touched.

    :param target_conn_id: MongoDB connection to restore into (templated)
    :param at: the time or oplog position (templated)
    :param target_db: database to restore into (templated); default the source's database
    :param drop: replace existing collections (templated); without it a non-empty target is refused
    :param source: policy source (templated)
    :param backup_class: class whose backups to use (templated); default the source's pitr entry
    :param collections: restore only these (templated)
    """

    template_fields: Sequence[str] = ("target_conn_id", "target_db", "at", "drop", "source", "backup_class", "collections")
    ui_color = "#fde8d8"

    def __init__(self, *, target_conn_id: str, at: str | datetime, target_db: str | None = None, drop: bool | str = False,
                 source: str = "mongodb", backup_class: str | None = None, collections: list[str] | None = None,
                 policy_path: str | None = None, **kwargs) -> None:
        super().__init__(**kwargs)
        self.target_conn_id = target_conn_id
        self.at = at
        self.target_db = target_db
        self.drop = drop
        self.source = source
        self.backup_class = backup_class
        self.collections = collections
        self.policy_path = policy_path

    def _open_stores(self, policy) -> dict[str, Any]:
        """Every store that opens (local first): a restore uses any good copy, so one store whose
        connection is missing or broken must not stop it (the catalog reports what it skipped)."""
        from backup_dr.core.errors import ConnectionConfigError

        stores, _ = open_available(policy.stores, local_first=True)
        if not stores:
            raise ConnectionConfigError("no backup store could be opened", hint="check the store connections of the policy")
        return stores

    def execute(self, context: Context) -> dict[str, Any]:
        from backup_dr.core.pitr import restore_to_time
        from backup_dr.core.times import TimeRule, parse_user_time

        policy = get_policy(self.policy_path)
        hook = SourceHook(self.target_conn_id)
        with translate_errors(*hook.secrets):
            typed = parse_user_time(self.at, TimeRule.of(policy), what="at", allow_timestamp=True) if isinstance(self.at, str) else None
            at = typed.at if typed else self.at
            if typed:
                self.log.info("restore time %s", typed.echo())
            stores = self._open_stores(policy)
            safety = local_store(policy).root
            with hook.mongo_client() as client, tempfile.TemporaryDirectory(prefix="backup-dr-pitr-") as workdir:
                result = restore_to_time(client, stores, policy, self.source, at, target_db=self.target_db or None,
                                         collections=list(self.collections) if self.collections else None,
                                         drop=_truthy(self.drop), workdir=workdir, safety_dir=safety, secrets=hook.secrets,
                                         backup_class=self.backup_class or None)
        out = {**result.as_dict(), **({"typed_time": typed.as_dict()} if typed else {})}
        self.log.info("restored %s/%s into %s to %s: base %s + %d slice(s), %d entries replayed", result.backup_class,
                      result.source, result.target_db, result.requested, result.base_backup, len(result.slices),
                      result.replayed_entries)
        return out
