"""The source-engine protocol: what every caller needs from a source type, in one place.

Why one protocol: the operators, the CLI, the drill, health and the UI used to ask
``if src.type == "mongodb"`` in about twenty places, and those places drifted apart. Each
source type is now one :class:`SourceEngine` (found by :func:`backup_dr.core.engines.engine_for`)
adapting its core package (``core/mongo``, ``core/redis``, ``core/files``, ``core/gitbundle``,
``core/postgres``); callers ask the engine, never the type name. The adapters are thin on
purpose: the working logic stays in the packages, only the dispatch moved here.

Connections are the caller's business (Airflow Connections in the operators, environment
or connections file in the CLI): they hand in a :class:`Connector`, and the engine takes
what it needs from it. Nothing here imports Airflow.
"""

from __future__ import annotations

from contextlib import AbstractContextManager
from dataclasses import dataclass
from typing import Any, Callable, ClassVar

from backup_dr.core.artifacts.manifest import Manifest
from backup_dr.core.artifacts.writer import ArtifactWriter
from backup_dr.core.connections import ConnInfo
from backup_dr.core.errors import RestoreRefused
from backup_dr.core.policy_model import Job, Policy
from backup_dr.core.stores.base import Store


@dataclass(frozen=True)
class Connector:
    """How the caller reaches a connection.

    :param conn_info: conn id -> :class:`ConnInfo` (credentials included)
    :param mongo_client: ``(conn_id, **client_options)`` -> a context-managed MongoClient
        (both build it with ``connections.mongo_client_from`` from a ConnInfo)
    """

    conn_info: Callable[[str], ConnInfo]
    mongo_client: Callable[..., AbstractContextManager]


@dataclass(frozen=True)
class BackupRequest:
    """What one backup task asks of an engine beyond the source: the job's options and the
    run's facts (deploy ref/image for git, a connection override, the task's time budget)."""

    job: Job | None = None
    conn_id: str | None = None
    timeout: float = 3600.0
    deploy: dict[str, str] | None = None
    now: Any = None


class SourceEngine:
    """One source type. Subclasses set the class attributes and implement what applies.

    :cvar type: the policy's ``sources.<name>.type``
    :cvar label: how messages name it (``MongoDB``)
    :cvar restore_commands: ``python -m backup_dr restore <command> ...`` restores its backups; the
        first is the one error hints name
    :cvar backup_operator: ``"module:Class"`` of the Airflow backup operator (a string: core
        stays free of Airflow; the DAG factory imports it)
    :cvar scratch_field: the ``ops.drill_scratch.<field>`` naming the scratch server a drill
        restores into; None when the drill needs none (a temp dir, a local redis-server)
    :cvar journal_engines: how its restores name themselves in the restore journal (one engine
        may restore in several ways: Redis network load vs data dir)
    :cvar scratch_separate_server: the scratch must be another server than every source of
        this type (MongoDB restores whole databases); False when the drill creates a fresh
        database of its own and drops it (PostgreSQL)
    :cvar dr_role: what the DR scenarios (:mod:`backup_dr.core.dr`) recover it as: ``"database"``
        (restore, point in time, safety backup, validate), ``"cache"`` (reloaded) or ``"files"``
        (a ``restore_files`` step puts the archive back at its path); None: not at all
    :cvar pitr: the policy may give it a ``pitr`` entry (a change stream archived between backups)
    :cvar partial_jobs: a job may back up some collections only (``collections``) or only the
        schema (``metadata_only``)
    """

    type: ClassVar[str]
    label: ClassVar[str]
    restore_commands: ClassVar[tuple[str, ...]]
    backup_operator: ClassVar[str] = "backup_dr.operators.backup:SourceBackupOperator"
    scratch_field: ClassVar[str | None] = None
    scratch_separate_server: ClassVar[bool] = False
    #: the restore-journal ``engine`` names its restores record (:mod:`backup_dr.core.restores.journal`)
    journal_engines: ClassVar[tuple[str, ...]] = ()
    dr_role: ClassVar[str | None] = None
    pitr: ClassVar[bool] = False
    partial_jobs: ClassVar[bool] = False
    #: rolling such a record back connects to its target (a directory swap does not)
    journal_needs_conn: ClassVar[bool] = True
    #: the journal names whose interrupted restore is resumed by running it again over the
    #: half-written target, taking the record (and its safety backup) over; the others (a swap of
    #: whole files: nothing half-written to build on) are rolled back first, then run again
    journal_takeover: ClassVar[tuple[str, ...]] = ()

    # -- naming
    def artifact_kind(self, source: Any, *, metadata_only: bool = False) -> str:
        """The artifact kind (``full``, ``rdb``, ...) this source's backups carry in their ids."""
        raise NotImplementedError


    def target(self, source: Any) -> str:
        """What the source protects, for documentation and the UI (a database, a path, a conn id)."""
        return getattr(source, "database", None) or getattr(source, "path", None) or getattr(source, "conn_id", "")

    def job_options(self, job: Job) -> dict[str, Any]:
        """Extra keyword arguments of this engine's backup operator for one policy job."""
        return {}

    # -- backup
    def backup(self, source: Any, writer: ArtifactWriter, connector: Connector, request: BackupRequest) -> Manifest:
        raise NotImplementedError(f"no backup for source type {self.type!r}")

    # -- verify by restore
    def scratch_conn_id(self, policy: Policy, given: str | None = None) -> str | None:
        """The scratch connection of a drill: ``given``, else the policy's ``ops.drill_scratch``."""
        if self.scratch_field is None:
            return None
        conn_id = given or policy.ops.drill_scratch.get(self.scratch_field)
        if not conn_id:
            raise RestoreRefused(f"a {self.label} drill needs a scratch server (ops.drill_scratch.{self.scratch_field})",
                                 hint=f"set ops.drill_scratch.{self.scratch_field} in the policy (or pass --scratch-conn)")
        return conn_id

    def drill(self, manifest: Manifest, store: Store, workdir: str, scratch: Callable[[], Any] | None) -> dict[str, Any]:
        """Restore into a scratch target and check it: ``{ok, restore_seconds, problems, details}``
        (+ ``fetch_seconds`` where known). ``scratch()`` opens the scratch target (see :meth:`open_scratch`)."""
        raise RestoreRefused(f"no scratch restore for source type {self.type!r}")

    def open_scratch(self, connector: Connector, conn_id: str | None) -> Callable[[], Any] | None:
        """The opener :meth:`drill` is handed for ``conn_id`` (lazy: nothing connects yet)."""
        return None

    # -- restore (safety copy of the target, restore, validate, roll back on failure)
    def restore(self, conn: ConnInfo, store: Store, manifest: Manifest, *, workdir: str, safety_dir: str,
                target_db: str | None = None, replace: bool = False) -> Any:
        """Restore onto the target of ``conn``; engines whose restore takes more than this (MongoDB
        collections and PITR, Redis load vs data dir, files into a directory) expose their own
        entry points to their CLI command and operators."""
        raise RestoreRefused(f"restore {self.label} backups with `python -m backup_dr restore {self.restore_commands[0]}`")

    # -- interrupted restores
    def roll_back_interrupted(self, journal: Any, entry: Any, connector: Connector, conn_id: str | None,
                              secrets: list[str] | None = None) -> dict[str, Any]:
        """Put the target of a dead restore's journal ``entry`` back (``conn_id``: its target)."""
        raise RestoreRefused(f"a {self.label} restore keeps no journal to roll back from")
