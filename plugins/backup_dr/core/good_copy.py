"""THE good-copy picker: which backup, and which store's copy of it, a restore reads.

One implementation for the CLI, the restore operators, the DR steps (MongoDB, Redis, files)
and point-in-time recovery; four copies of this logic had drifted (one had no fallback).

* **Which backup**: the one whose data was captured last, at or before the time asked for
  (:meth:`backup_dr.core.catalog.Catalog.newest`; never by slot, so a late run is never
  used for a time it postdates). A backup whose every copy is bad is NOT silently replaced
  by an older one: that would change the recovery point behind the operator's back; the
  error says so and names the way out.
* **Which copy**: complete copies in the policy's store order, copies known good first,
  never-checked next, copies whose last check FAILED last (records can be stale: a
  repaired copy still gets its turn).
* **One download per copy**: the restore itself fetches the copy verified against the
  manifest (:func:`backup_dr.core.artifacts.reader.fetch_verified`) before touching the
  target, and raises :class:`IntegrityError` / :class:`NotFoundError` for a bad or
  missing copy. :func:`with_good_copy` runs the restore on the first copy and on the next
  one only when that happens: nothing is hashed twice, nothing was changed by a failed
  attempt, and the result says which copy was used and why others were skipped.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Callable, Mapping, TypeVar

from backup_dr.core.artifacts.manifest import Manifest
from backup_dr.core.artifacts.reader import load_manifest
from backup_dr.core.catalog import Catalog, CatalogEntry
from backup_dr.core.errors import IntegrityError, NotFoundError
from backup_dr.core.policy_model import Policy
from backup_dr.core.stores.base import Store

log = logging.getLogger(__name__)

T = TypeVar("T")


@dataclass
class Attempts:
    """Which copy a restore used, and every copy skipped on the way with the reason."""

    used: str | None = None
    skipped: list[dict[str, str]] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return {"store": self.used, "fell_back_from": self.skipped}


def store_order(policy: Policy, backup_class: str | None = None) -> list[str]:
    """Store names by preference: the class's own order (local first, then the remote copies, as
    the policy lists them), then every other store of the policy."""
    first = list(policy.classes[backup_class].stores) if backup_class in policy.classes else []
    for cls in policy.classes.values():
        first += [n for n in cls.stores if n not in first]
    return first + sorted(n for n in policy.stores if n not in first)


def copy_order(entry: CatalogEntry, preference: list[str], available: Mapping[str, Any] | None = None) -> list[str]:
    """The complete copies of ``entry`` to try, best first (module docstring), among ``available``."""
    names = [n for n in preference if n in entry.complete_in and (available is None or n in available)]
    names += [n for n in entry.complete_in if n not in names and (available is None or n in available)]

    def rank(name: str) -> int:
        ok = (entry.verification(name) or {}).get("ok")
        return 0 if ok is True else 2 if ok is False else 1

    return sorted(names, key=rank)


def describe_copies(entry: CatalogEntry, order: list[str]) -> list[dict[str, Any]]:
    """What is known of each copy before anything is read (for the pick step's report)."""
    out = []
    for name in order:
        rec = entry.verification(name) or {}
        out.append({"store": name, "verified": rec.get("ok"), "method": rec.get("method"), "checked_at": rec.get("checked_at")})
    return out


def newest_backup(catalog: Catalog, backup_class: str, source: str, kind: str, *, before: datetime | None = None,
                  what: str | None = None) -> CatalogEntry:
    """The backup to restore: captured last (at or before ``before``); NotFoundError naming what was searched."""
    entry = catalog.newest(backup_class, source, kind, before=before)
    if entry is None:
        when = f" captured at or before {before.isoformat().replace('+00:00', 'Z')}" if before else ""
        raise NotFoundError(f"no complete {kind} backup of {what or f'{backup_class}/{source}'}{when} in "
                            f"{', '.join(catalog.stores) or 'any store'}",
                            hint="`python -m backup_dr list` shows what exists and when each backup's data was captured")
    return entry


def with_good_copy(entry: CatalogEntry, stores: Mapping[str, Store], order: list[str],
                   action: Callable[[Store, Manifest], T], *, scrub: Callable[[str], str] = lambda s: s,
                   reference: Manifest | None = None) -> tuple[T, Attempts]:
    """Run ``action(store, manifest)`` on the first copy in ``order`` that turns out good.

    ``action`` must verify the bytes before changing anything (every core restore does) and
    raise IntegrityError/NotFoundError for a bad copy; the next copy is tried then. With
    ``reference``, a store whose manifest lists other files is skipped too.
    :raises IntegrityError: no copy in ``order`` was usable (every reason in ``detail``).
    """
    attempts = Attempts()
    for i, name in enumerate(order):
        store = stores[name]
        try:
            manifest = load_manifest(store, entry.bid)
            if reference is not None and _files(manifest) != _files(reference):
                raise IntegrityError(f"manifest.json in store {name!r} lists other files than the reference copy")
            result = action(store, reference or manifest)
        except (IntegrityError, NotFoundError) as e:
            reason = scrub(e.message)
            attempts.skipped.append({"store": name, "reason": reason})
            rest = order[i + 1:]
            log.warning("the copy of %s in store %s is not usable (%s); %s", entry.backup_id, name, reason,
                        f"falling back to store {rest[0]}" if rest else "no other store holds a complete copy")
            continue
        attempts.used = name
        if attempts.skipped:
            log.warning("used the copy of %s in store %s because the copy in %s failed verification", entry.backup_id, name,
                        ", ".join(s["store"] for s in attempts.skipped))
        return result, attempts
    raise IntegrityError(
        f"no store holds a usable copy of {entry.backup_id} (tried: {', '.join(order) or 'none'})",
        detail="; ".join(f"{s['store']}: {s['reason']}" for s in attempts.skipped) or "no complete copy",
        hint=f"`python -m backup_dr verify {entry.backup_id}` shows every copy's state; restoring an older backup "
             "instead is a different recovery point: choose it explicitly by its id",
    )


def _files(m: Manifest) -> set[tuple[str, int, str]]:
    return {(f.name, f.size, f.sha256) for f in m.files}
