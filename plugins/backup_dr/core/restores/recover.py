"""Rolling back an interrupted restore from its journal record, by the engine that wrote it.

One entry point for the CLI (``restore rollback``) and the DR DAG (``interrupted_restore:
rollback``), so both undo a dead restore the same way. Connections are given as callables
(``conn_id -> client / ConnInfo``) because the CLI resolves them from the environment and
the operators from Airflow; ``conn_id`` defaults to the one the record names.
"""

from __future__ import annotations

from contextlib import AbstractContextManager
from typing import Any, Callable

from backup_dr.core.connections import ConnInfo
from backup_dr.core.engines import ENGINES, Connector, SourceEngine, engine_for_journal
from backup_dr.core.errors import RestoreRefused
from backup_dr.core.restores.journal import JournalDir, JournalEntry



def target_conn_id(entry: JournalEntry, override: str | None) -> str:
    conn_id = override or entry.target.get("conn_id")
    if not conn_id:
        raise RestoreRefused(f"the journal record {entry.id} names no connection for {entry.label}",
                             hint="name the target's connection id with --to CONN_ID")
    return conn_id


def journal_engine(entry: JournalEntry) -> SourceEngine:
    """The engine that wrote ``entry``; a record of an engine this release lacks is refused."""
    engine = engine_for_journal(entry.engine)
    if engine is None:
        raise RestoreRefused(f"journal record {entry.id} is of an unknown engine {entry.engine!r}",
                             hint=f"known: {', '.join(journal_engines())}; a newer backup_dr wrote it?")
    return engine


def roll_back(journal: JournalDir, entry: JournalEntry, *, mongo_client: Callable[[str], AbstractContextManager],
              redis_conn: Callable[[str], ConnInfo], conn_id: str | None = None,
              secrets: list[str] | None = None) -> dict[str, Any]:
    """Put the target of ``entry`` back as it was before that restore; the record goes after validation."""
    if entry.alive:
        raise RestoreRefused(f"the restore of journal record {entry.id} is still running ({entry.describe()})",
                             hint="wait for it: a running restore rolls itself back if it fails")
    engine = journal_engine(entry)
    connector = Connector(conn_info=redis_conn, mongo_client=mongo_client)
    target = target_conn_id(entry, conn_id) if engine.journal_needs_conn else None
    return engine.roll_back_interrupted(journal, entry, connector, target, secrets=secrets)


def journal_engines() -> list[str]:
    """Every journal engine name a restore of this release writes."""
    return [name for e in ENGINES.values() for name in e.journal_engines]
