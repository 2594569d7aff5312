"""``--from-store`` and the CLI's words around the one good-copy picker (:mod:`backup_dr.core.good_copy`).

The core tries the complete copies best first and falls back to the next when a copy is
bad (a failed attempt changed nothing: every restore verifies the bytes before touching
the target). Here: a named ``--from-store`` is the only copy tried, and errors say so.
"""

from __future__ import annotations

from typing import Any, Callable

from backup_dr.cli.common import Stores, UsageError, scrub
from backup_dr.core.artifacts.manifest import Manifest
from backup_dr.core.catalog import CatalogEntry
from backup_dr.core.errors import IntegrityError, NotFoundError
from backup_dr.core.good_copy import Attempts, copy_order, store_order
from backup_dr.core.good_copy import with_good_copy as core_with_good_copy
from backup_dr.core.policy_model import Policy
from backup_dr.core.stores.base import Store

__all__ = ["Attempts", "attempt_order", "with_good_copy"]


def attempt_order(entry: CatalogEntry, stores: Stores, preferred: str | None, policy: Policy) -> list[str]:
    """Stores to try: the named one only; else the core's order (policy order, known-bad copies last)."""
    if preferred is not None:
        if preferred not in stores.opened:
            raise UsageError(f"--from-store {preferred!r} is not an available store",
                             hint=f"available: {', '.join(stores.opened)}")
        if preferred not in entry.complete_in:
            raise NotFoundError(f"store {preferred!r} holds no complete copy of {entry.backup_id}",
                                hint=f"complete copies: {', '.join(entry.complete_in) or 'none'}")
        return [preferred]
    return copy_order(entry, store_order(policy, entry.bid.backup_class), stores.opened)


def with_good_copy(entry: CatalogEntry, stores: Stores, preferred: str | None, policy: Policy,
                   restore: Callable[[Store, Manifest], Any]) -> tuple[Any, Attempts]:
    """Run ``restore(store, manifest)`` against the first store whose copy verifies."""
    order = attempt_order(entry, stores, preferred, policy)
    try:
        return core_with_good_copy(entry, stores.opened, order, restore, scrub=scrub)
    except IntegrityError as e:
        if preferred is None:
            raise
        raise IntegrityError(  # only the named copy was tried: other stores may well hold a good one
            f"no store holds a usable copy of {entry.backup_id} among those tried (--from-store {preferred})",
            detail=e.detail,
            hint=f"run it again without --from-store: the restore then uses the first other store whose copy verifies "
                 f"(`python -m backup_dr verify {entry.backup_id}` names the stores with a good copy)",
        ) from None
