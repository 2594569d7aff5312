"""The engine registry: one :class:`~.base.SourceEngine` per policy source type.

    engine_for(policy.sources["mongodb"]).artifact_kind(src)   # a Source, a Manifest or a type name
    ENGINES["postgresql"].drill(manifest, store, workdir, scratch)

Callers (operators, CLI, drill, health, UI, DAG factory) dispatch through here and never
compare a source's type with a name; a new source type is one engine module and one line
below. Importing this is cheap: every adapter imports its core package on first use.
"""

from __future__ import annotations

from typing import Any

from backup_dr.core.engines.base import BackupRequest, Connector, SourceEngine
from backup_dr.core.engines.files import FilesEngine, GitEngine
from backup_dr.core.engines.mongodb import MongoEngine
from backup_dr.core.engines.postgresql import PostgresEngine
from backup_dr.core.engines.redis import RedisEngine
from backup_dr.core.errors import RestoreRefused

ENGINES: dict[str, SourceEngine] = {e.type: e for e in (
    MongoEngine(),
    RedisEngine(),
    FilesEngine(),
    GitEngine(),
    PostgresEngine(),
)}


def engine_for(what: Any) -> SourceEngine:
    """The engine of a policy source, a manifest (its ``source_type``) or a type name."""
    kind = what if isinstance(what, str) else getattr(what, "source_type", None) or getattr(what, "type", None)
    try:
        return ENGINES[kind]
    except KeyError:
        raise RestoreRefused(f"no engine for source type {kind!r}",
                            hint=f"known source types: {', '.join(ENGINES)}; a newer backup_dr wrote it?") from None


def engine_for_journal(name: str) -> SourceEngine | None:
    """The engine whose restores write journal records of engine ``name`` (None: unknown)."""
    return next((e for e in ENGINES.values() if name in e.journal_engines), None)


def engine_labels(attr: str, value: Any = True) -> str:
    """How messages name the engines whose ``attr`` is ``value`` (``MongoDB``, ``MongoDB / PostgreSQL``)."""
    return " / ".join(e.label for e in ENGINES.values() if getattr(e, attr) == value) or "no"


def types_restored_by(command: str) -> tuple[str, ...]:
    """Source types whose backups ``restore <command>`` restores (``files`` also clones git bundles)."""
    return tuple(t for t, e in ENGINES.items() if command in e.restore_commands)


def sources_of(policy: Any, *types: str) -> list[str]:
    """Names of the policy's sources handled by the engines of ``types``, in policy order."""
    wanted = {id(ENGINES[t]) for t in types}
    return [n for n, src in policy.sources.items() if id(engine_for(src)) in wanted]


def class_source(policy: Any, class_name: str, source_type: str) -> str:
    """The first source of ``source_type`` a class backs up in full (not a schema-only job):
    what a type's restore operator restores when told only the class."""
    names = set(sources_of(policy, source_type))
    for job in policy.classes[class_name].jobs:
        if job.source in names and not job.metadata_only:
            return job.source
    raise RestoreRefused(f"class {class_name!r} backs up no {source_type} source",
                         hint="name the source explicitly (source=...)")


__all__ = ["ENGINES", "BackupRequest", "Connector", "SourceEngine", "class_source", "engine_for", "engine_for_journal", "engine_labels",
           "sources_of", "types_restored_by"]
