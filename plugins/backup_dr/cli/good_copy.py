"""Restore from a store holding a GOOD copy, falling back to the next store when one is bad.

Every core restore function hashes the backup's bytes against the manifest BEFORE it
touches the target (:func:`backup_dr.core.artifacts.reader.fetch_verified`), and raises
:class:`IntegrityError` / :class:`NotFoundError` when the copy is corrupt or incomplete.
That makes falling back safe: a failed attempt changed nothing, so the next store is
tried, and the operator is told which copy was bad and which one was used.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any, Callable

from backup_dr.cli.common import Stores, UsageError, scrub, store_order
from backup_dr.core.artifacts.manifest import Manifest
from backup_dr.core.artifacts.reader import load_manifest
from backup_dr.core.catalog import CatalogEntry
from backup_dr.core.errors import IntegrityError, NotFoundError
from backup_dr.core.policy_model import Policy
from backup_dr.core.stores.base import Store

log = logging.getLogger("backup_dr.cli")


@dataclass
class Attempts:
    used: str | None = None
    skipped: list[dict[str, str]] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return {"store": self.used, "fell_back_from": self.skipped}


def attempt_order(entry: CatalogEntry, stores: Stores, preferred: str | None, policy: Policy) -> list[str]:
    """Stores to try: the named one only; else complete copies in the class's store order,
    copies whose latest verification record FAILED last."""
    if preferred is not None:
        if preferred not in stores.opened:
            raise UsageError(f"--from-store {preferred!r} is not an available store",
                             hint=f"available: {', '.join(stores.opened)}")
        if preferred not in entry.complete_in:
            raise NotFoundError(f"store {preferred!r} holds no complete copy of {entry.backup_id}",
                                hint=f"complete copies: {', '.join(entry.complete_in) or 'none'}")
        return [preferred]
    names = [n for n in store_order(policy, entry.bid.backup_class) if n in entry.complete_in and n in stores.opened]
    return sorted(names, key=lambda n: (entry.verification(n) or {}).get("ok") is False)


def with_good_copy(entry: CatalogEntry, stores: Stores, preferred: str | None, policy: Policy,
                   restore: Callable[[Store, Manifest], Any]) -> tuple[Any, Attempts]:
    """Run ``restore(store, manifest)`` against the first store whose copy verifies."""
    attempts = Attempts()
    order = attempt_order(entry, stores, preferred, policy)
    for i, name in enumerate(order):
        store = stores.opened[name]
        try:
            manifest = load_manifest(store, entry.bid)
            result = restore(store, manifest)
        except (IntegrityError, NotFoundError) as e:
            reason = scrub(e.message)
            attempts.skipped.append({"store": name, "reason": reason})
            rest = order[i + 1:]
            log.warning("the copy of %s in store %s is not usable (%s); %s", entry.backup_id, name, reason,
                        f"falling back to store {rest[0]}" if rest else "no other store holds a complete copy")
            continue
        attempts.used = name
        if attempts.skipped:
            log.warning("restored from store %s because the copy in %s failed verification", name,
                        ", ".join(s["store"] for s in attempts.skipped))
        return result, attempts
    if preferred is not None:  # only the named copy was tried: other stores may well hold a good one
        raise IntegrityError(
            f"no store holds a usable copy of {entry.backup_id} among those tried (--from-store {preferred})",
            detail="; ".join(f"{s['store']}: {s['reason']}" for s in attempts.skipped) or "no complete copy",
            hint=f"run it again without --from-store: the restore then uses the first other store whose copy verifies "
                 f"(`python -m backup_dr verify {entry.backup_id}` names the stores with a good copy)",
        )
    raise IntegrityError(
        f"no store holds a usable copy of {entry.backup_id}",
        detail="; ".join(f"{s['store']}: {s['reason']}" for s in attempts.skipped) or "no complete copy",
        hint="`python -m backup_dr verify <id>` shows every copy's state; restore an older backup instead",
    )
