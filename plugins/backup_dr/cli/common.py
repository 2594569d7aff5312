"""What every command shares: stores from the policy, connections from the environment,
backup lookup (id or ``latest``), secret scrubbing and human formatting.

Why it is tolerant of missing stores: in a disaster some stores are gone or their
credentials are not at hand. A command uses every store it can open, says which ones it
could not and why, and only refuses when the user explicitly named a store it cannot
open, or when no store at all is left.
"""

from __future__ import annotations

import logging
import os
import re
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Iterable

from backup_dr.core.artifacts.layout import BackupId, kind_for
from backup_dr.core.catalog import Catalog, CatalogEntry
from backup_dr.core.connections import ConnInfo, conn_from_env, redact
from backup_dr.core.durations import format_duration
from backup_dr.core.engines import engine_for, sources_of, types_restored_by
from backup_dr.core.errors import BackupDRError, ConnectionConfigError, NotFoundError
from backup_dr.core.good_copy import store_order
from backup_dr.core.policy_model import Policy
from backup_dr.core.stores.base import Store
from backup_dr.core.stores.factory import open_store
from backup_dr.core.stores.local import LocalStore

log = logging.getLogger("backup_dr.cli")

#: Every secret of every connection this process resolved: scrubbed from errors and logs.
SECRETS: list[str] = []


class UsageError(BackupDRError):
    """Bad arguments or a choice the CLI must not guess (exit code 2)."""


def scrub(text: str) -> str:
    return redact(text, SECRETS)


def check_hint(policy: Policy) -> str:
    """The command that lists every problem of this very file (pasteable: the path is absolute)."""
    import shlex

    return f"fix the policy (`python -m backup_dr policy check --policy {shlex.quote(str(policy.path))}` lists every problem)"


def invalid_in_policy(policy: Policy, section: str, name: str | None, what: str) -> UsageError | None:
    """The refusal for a command that needs an entry the lenient load dropped, naming its ROOT
    problem (``classes.critical_data.schedule: ...``), or None when the entry is not broken."""
    roots = policy.root_causes(f"{section}.{name}") if name else []
    if not roots:
        return None
    return UsageError(f"{what} {name!r} is invalid in the policy, and this command needs it",
                      detail="; ".join(f"{p}: {r}" for p, r in roots),
                      hint=check_hint(policy))


def unknown_in_policy(policy: Policy, section: str, name: str, what: str) -> UsageError:
    """``unknown store 'gsc' (did you mean 'gcs'?)``, or the root problem when the entry is broken."""
    from backup_dr.core.policy_fields import unknown_name

    defined = set({"stores": policy.stores, "sources": policy.sources, "classes": policy.classes}[section]) | set(policy.broken(section))
    return invalid_in_policy(policy, section, name, what) or UsageError(unknown_name(what, name, defined))


_URI = re.compile(r"^(?P<scheme>[A-Za-z][A-Za-z0-9+.\-]*)://")
_EXAMPLE_ID = {"mongodb": "mongo_new", "mongodb+srv": "mongo_new", "redis": "redis_new", "rediss": "redis_new"}


def refuse_uri(value: str, flag: str | None = None) -> None:
    """A connection id, never a URI: a URI's password on the command line is in every user's
    ``ps`` and in the shell history. The message shows only the scheme, never the value."""
    m = _URI.match(value)
    if m is None and "@" not in value:
        return
    scheme = m["scheme"] if m else "mongodb"
    example = _EXAMPLE_ID.get(scheme.lower(), "target_new")
    raise UsageError(
        f"{flag + ' takes' if flag else 'expected'} a connection id, not a URI ('{scheme}://…'): a URI with credentials on the command line "
        "is visible to every user of this machine (ps, /proc) and stays in the shell history",
        hint=f"define the target as a connection and pass its id: export AIRFLOW_CONN_{example.upper()}="
             f"'{scheme}://USER:PASSWORD@HOST:PORT/' (or an entry \"{example}\" in the JSON file named by "
             f"$BACKUP_DR_CONNECTIONS_FILE), then {flag + ' ' + example if flag else 'use the id ' + example}")


def resolve_conn(conn_id: str, *, flag: str | None = None) -> ConnInfo:
    """A connection from ``AIRFLOW_CONN_<ID>`` / ``$BACKUP_DR_CONNECTIONS_FILE``; its secrets are
    remembered so no message of this process can show them. A URI is refused (:func:`refuse_uri`)."""
    refuse_uri(conn_id, flag)
    conn = conn_from_env(conn_id)
    SECRETS.extend(s for s in conn.secrets if s and s not in SECRETS)
    return conn


# ----------------------------------------------------------------------------- stores


@dataclass
class Stores:
    """The stores a command could open (policy order) and why the others could not be."""

    opened: dict[str, Store] = field(default_factory=dict)
    unavailable: dict[str, str] = field(default_factory=dict)

    def warn_unavailable(self) -> None:
        for name, why in self.unavailable.items():
            log.warning("store %s is not used: %s", name, why)


def open_policy_stores(policy: Policy, names: Iterable[str] | None = None) -> Stores:
    """Open the policy's stores (all, or ``names``). A named store that cannot be opened is an
    error; an unnamed one is reported in ``unavailable``. No store at all is an error."""
    wanted = list(dict.fromkeys(names or ()))
    unknown = [n for n in wanted if n not in policy.stores]
    if unknown:
        raise unknown_in_policy(policy, "stores", unknown[0], "store")
    out = Stores()
    for name in store_order(policy):
        spec = policy.stores[name]
        if wanted and name not in wanted:
            continue
        try:
            if spec.type == "local":
                if not spec.path or not Path(spec.path).is_dir():
                    raise NotFoundError(f"local store directory {spec.path} does not exist on this machine",
                                        hint="set BACKUP_DR_LOCAL_PATH to where the local backups are, if they survived")
                out.opened[name] = open_store(spec)
            else:
                if not spec.conn_id:
                    raise ConnectionConfigError(f"store {name!r} names no conn_id", hint=f"set stores.{name}.conn_id in the policy")
                out.opened[name] = open_store(spec, resolve_conn(spec.conn_id, flag=f"stores.{name}.conn_id"))
        except BackupDRError as e:
            if name in wanted:
                raise
            out.unavailable[name] = scrub(e.message)
    if not out.opened:
        reasons = "; ".join(f"{n}: {why}" for n, why in out.unavailable.items())
        raise ConnectionConfigError(f"no backup store could be opened ({reasons})",
                                    hint="define the stores' connections (AIRFLOW_CONN_<ID> or $BACKUP_DR_CONNECTIONS_FILE)")
    out.warn_unavailable()
    return out


def local_store(policy: Policy) -> LocalStore | None:
    """The policy's first local store, if its directory exists here."""
    for spec in policy.stores.values():
        if spec.type == "local" and spec.path and Path(spec.path).is_dir():
            return LocalStore(spec.path, name=spec.name)
    return None


def warn_catalog_errors(catalog: Catalog) -> dict[str, str]:
    errors = {n: scrub(e) for n, e in catalog.errors.items()}
    for name, why in errors.items():
        log.warning("store %s could not be listed; its backups are not shown: %s", name, why)
    return errors


# ----------------------------------------------------------------------------- backups


def parse_backup_id(text: str) -> BackupId:
    try:
        return BackupId.parse(text)
    except ValueError as e:
        raise UsageError(str(e), hint="`python -m backup_dr list` shows the ids of every backup") from None


def find_backup(catalog: Catalog, text: str) -> CatalogEntry:
    """The backup ``text`` names, complete in at least one store; a clear NotFoundError otherwise."""
    bid = parse_backup_id(text)
    entry = catalog.find(bid)
    if entry is not None:
        return entry
    partial = [e for e in catalog.list(bid.backup_class, bid.source, bid.kind, after=bid.stamp, before=bid.stamp,
                                       include_incomplete=True) if e.bid == bid]
    where = f"incomplete (no manifest) in {', '.join(partial[0].copies)}" if partial else "in none of them"
    raise NotFoundError(f"backup {bid} is not complete in any reachable store ({', '.join(catalog.stores)}): {where}",
                        hint="`python -m backup_dr list` shows what exists; a store left out for missing credentials may hold it")


def source_for(policy: Policy, source: str | None, command: str, what: str) -> str:
    """The policy source ``restore <command>`` uses: the named one (checked), or the only one it restores."""
    types = types_restored_by(command)
    names = sources_of(policy, *types)
    if source is not None:
        src = policy.sources.get(source)
        if src is None:
            raise unknown_in_policy(policy, "sources", source, "source")
        if source not in names:
            raise UsageError(f"source {source!r} is a {src.type} source; {what} needs a {' or '.join(types)} source")
        return source
    if len(names) == 1:
        return names[0]
    if not names:
        broken = policy.broken("sources")
        raise UsageError(f"the policy has no valid {' or '.join(types)} source",
                         detail="; ".join(f"{p}: {r}" for n in broken for p, r in broken[n]) or None,
                         hint=check_hint(policy) if broken else None)
    raise UsageError(f"the policy has {len(names)} {' / '.join(types)} sources ({', '.join(names)}); say which with --source")


def backup_arg(args, policy, catalog, command: str, what: str):
    """The backup ``args.backup`` names: an id, or ``latest`` (the newest full backup of ``--source``,
    else of the only source ``restore <command>`` restores; ``--class`` when several classes have one)."""
    if args.backup == "latest":
        source = source_for(policy, args.source, command, what)
        return newest_backup(policy, catalog, source, (kind_for(policy.sources[source]),), args.backup_class)
    entry = find_backup(catalog, args.backup)
    if args.source and args.source != entry.bid.source:
        raise UsageError(f"backup {entry.backup_id} is of source {entry.bid.source!r}, not {args.source!r}")
    return entry


def check_restorable(manifest, command: str, what: str) -> None:
    """Refuse a backup ``restore <command>`` does not restore, naming the command that does."""
    types = types_restored_by(command)
    if manifest.source_type not in types:
        try:
            other = engine_for(manifest).restore_commands[0]
        except BackupDRError:
            other = "<kind>"
        raise UsageError(f"backup {manifest.backup_id} is a {manifest.source_type} backup; {what} restores "
                         f"{' / '.join(types)} backups", hint=f"use: python -m backup_dr restore {other} {manifest.backup_id} ...")


def newest_backup(policy: Policy, catalog: Catalog, source: str, kinds: tuple[str, ...],
                  backup_class: str | None) -> CatalogEntry:
    """``latest``: the newest complete backup of ``source`` (of one of ``kinds``).

    Several classes may back up one source (critical collections every 4 h, statistics
    daily): when more than one of them has a backup, the CLI does not guess which data set
    is meant and asks for ``--class``.
    """
    src = policy.sources[source]
    classes = [c.name for c in policy.classes.values()
               for j in c.jobs if j.source == source and kind_for(src, metadata_only=j.metadata_only) in kinds]
    # an invalid class still has backups: never let `latest` silently pick another class's data set
    broken = policy.broken("classes")
    classes = list(dict.fromkeys(classes + sorted(broken)))
    if backup_class is not None:
        if backup_class not in policy.classes and backup_class not in broken:
            raise unknown_in_policy(policy, "classes", backup_class, "class")
        if backup_class not in classes:
            raise UsageError(f"class {backup_class!r} does not back up source {source!r} as {'/'.join(kinds)}",
                             hint=f"classes that do: {', '.join(classes) or 'none'}")
        classes = [backup_class]
    found: dict[str, CatalogEntry] = {}
    for cls in classes:
        for kind in kinds:
            entry = catalog.newest(cls, source, kind)
            if entry is not None and (cls not in found or entry.captured_at > found[cls].captured_at):
                found[cls] = entry
    if not found:
        raise NotFoundError(f"no complete {'/'.join(kinds)} backup of {source!r} in any reachable store "
                            f"(classes searched: {', '.join(classes) or 'none'}; stores: {', '.join(catalog.stores)})",
                            hint="`python -m backup_dr list` shows what exists")
    if len(found) > 1:
        listing = "; ".join(f"{c}: {e.backup_id}" for c, e in found.items())
        raise UsageError(f"source {source!r} has backups in {len(found)} classes ({listing}): `latest` is ambiguous",
                         hint="say which with --class (classes back up different collections: run once per class to restore all)")
    cls, entry = next(iter(found.items()))
    if cls in broken:
        log.warning("class %s is invalid in the policy (%s); its newest backup %s is used anyway: a restore needs only "
                    "the stores and the backup's manifest", cls, "; ".join(f"{p}: {r}" for p, r in broken[cls]), entry.backup_id)
    return entry


# ----------------------------------------------------------------------------- formatting


def fmt_bytes(n: int | None) -> str:
    if n is None:
        return "-"
    for unit in ("B", "KB", "MB", "GB", "TB"):
        if abs(n) < 1000 or unit == "TB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1000
    return f"{n} B"


def fmt_time(dt: datetime | str | None) -> str:
    if dt is None:
        return "-"
    if isinstance(dt, str):
        return dt
    return dt.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def fmt_age(dt: datetime | None, now: datetime | None = None) -> str:
    if dt is None:
        return "-"
    delta = (now or datetime.now(timezone.utc)) - dt
    return f"{format_duration(delta)} ago" if delta >= timedelta(0) else f"in {format_duration(-delta)}"


def workdir_arg(path: str | None) -> str | None:
    """``--workdir``: where downloaded copies are verified before a restore (needs room for them)."""
    if path is None:
        return None
    p = Path(path)
    if not p.is_dir():
        raise UsageError(f"--workdir {path} is not a directory")
    if not os.access(p, os.W_OK):
        raise UsageError(f"--workdir {path} is not writable")
    return str(p)
