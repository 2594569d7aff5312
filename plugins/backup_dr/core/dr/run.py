"""What every DR step needs: the run (policy, scenario, params, earlier results) and its access.

The steps never build a connection themselves: :class:`DrRun` carries the callables that do
(Airflow Connections and provider hooks in the operators, ``AIRFLOW_CONN_<ID>`` / the
connections file in the CLI), so the logic is the same code in both and only the access
differs. The per-source-type choices of a scenario (which source the database restore is of,
which one the cache is) are made in ONE place, :func:`database_source` / :func:`cache_source`.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable, Mapping

from backup_dr.core.connections import ConnInfo
from backup_dr.core.engines import engine_for
from backup_dr.core.errors import BackupDRError
from backup_dr.core.policy_model import BackupClass, Policy, Scenario
from backup_dr.core.stores.base import Store
from backup_dr.core.stores.local import LocalStore
from backup_dr.core.times import TimeRule, UserTime, is_blank, parse_user_time


class DrStepFailed(BackupDRError):
    """A DR step found the recovery not good (validation, health, webhook refusal): not retried."""


# ----------------------------------------------------------------------------- source types (the one dispatch)



def database_source(policy: Policy, cls: BackupClass):
    """The scenario's database: the class's first full (not metadata-only) MongoDB job's source."""
    for job in cls.jobs:
        src = policy.sources[job.source]
        if engine_for(src).dr_role == "database" and not job.metadata_only:
            return src
    raise BackupDRError(f"class {cls.name!r} backs up no database source in full",
                        hint="a DR scenario's backup_class must hold a full MongoDB backup job")


def cache_source(policy: Policy):
    """The policy's Redis source (the cache a full-infrastructure recovery reloads), or None."""
    return next((s for s in policy.sources.values() if engine_for(s).dr_role == "cache"), None)


# ----------------------------------------------------------------------------- params


def truthy(value: Any) -> bool:
    """A DAG param / flag as a bool (rendered templates arrive as strings)."""
    return value is True or str(value).strip().lower() in ("true", "1", "yes", "on")


def typed_time(policy: Policy, text: Any, what: str, *, allow_timestamp: bool = False) -> UserTime | None:
    """A DR param / form / flag time by the one rule (:mod:`backup_dr.core.times`); None when unset."""
    if is_blank(text):
        return None
    return parse_user_time(str(text), TimeRule.of(policy), what=what, allow_timestamp=allow_timestamp)


# ----------------------------------------------------------------------------- the run


@dataclass
class DrRun:
    """One DR run as the steps see it.

    :param stores: ``stores(names)`` -> the named stores that could be opened, by name.
    :param local: ``local(class_name)`` -> the local store for safety backups and journals.
    :param conn: ``conn(conn_id)`` -> :class:`ConnInfo` (secrets never logged).
    :param mongo: ``mongo(conn_id, **client_options)`` -> a MongoClient the caller closes.
    :param result: ``result(kind)`` -> what an earlier step of that kind returned ({} if none).
    :param rerun_hint: how to re-run with another ``interrupted_restore`` (DAG param or CLI flag).
    """

    policy: Policy
    scenario: Scenario
    stores: Callable[[Iterable[str]], Mapping[str, Store]]
    local: Callable[[str | None], LocalStore]
    conn: Callable[[str], ConnInfo]
    mongo: Callable[..., Any]
    result: Callable[[str], dict]
    log: logging.Logger | logging.LoggerAdapter = field(default_factory=lambda: logging.getLogger("backup_dr.dr"))
    target_conn_id: str | None = None
    redis_target_conn_id: str | None = None
    dry_run: bool = True
    drop: bool = False
    interrupted_restore: str = "fail"
    point_in_time: str | None = None
    incident_time: str | None = None
    run_id: str | None = None
    rerun_hint: str = "run again with interrupted_restore=rollback or interrupted_restore=resume"

    def __post_init__(self):
        self.dry_run = truthy(self.dry_run)
        self.drop = truthy(self.drop)
        self.target_conn_id = self.target_conn_id or self.scenario.target_conn_id or self.source.conn_id
        self.redis_target_conn_id = (None if is_blank(self.redis_target_conn_id) else self.redis_target_conn_id) \
            or self.scenario.redis_target_conn_id

    @property
    def backup_class(self) -> BackupClass:
        return self.policy.classes[self.scenario.backup_class]

    @property
    def source(self):
        return database_source(self.policy, self.backup_class)

    def class_stores(self) -> dict[str, Store]:
        return dict(self.stores(self.backup_class.stores))

    def all_stores(self) -> dict[str, Store]:
        return dict(self.stores(self.policy.stores))

    def incident(self) -> UserTime | None:
        return typed_time(self.policy, self.incident_time, "incident_time")

    def database(self) -> str:
        """The database restored: the picked backup's, else the source's."""
        return self.result("pick_backup").get("database") or self.source.database
