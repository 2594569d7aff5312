"""Fixtures for retention / catalog unit tests: the synthetic history of :mod:`synthetic_history`."""

from __future__ import annotations

import pytest
from synthetic_history import RDBS, SLICES, FULLS, HOUR, write

from backup_dr.core.artifacts.layout import BackupId
from backup_dr.core.stores.local import LocalStore
from backup_dr.core.verify import record_verification


def build_history(root) -> tuple[LocalStore, dict[str, list[BackupId]]]:
    store = LocalStore(root, name="local")
    fulls = [write(store, "critical_data", "mongodb", "full", t) for t in FULLS]
    slices, prev = [], None
    for t in SLICES:
        prev = write(store, "critical_data", "mongodb", "oplog", t, start=t - 23 * HOUR, end=t + HOUR,
                     previous_id=str(prev) if prev else None)
        slices.append(prev)
    rdbs = [write(store, "operational_data", "redis_cache", "rdb", t) for t in RDBS]
    for bid, ok in ((rdbs[-1], False), (rdbs[-3], True), (rdbs[-5], True)):
        record_verification(store, bid, {"ok": ok, "kind": "drill" if ok else "verify"})
    return store, {"full": fulls, "oplog": slices, "rdb": rdbs}


@pytest.fixture
def history(tmp_path):
    """A fresh history per test (retention tests delete from it)."""
    return build_history(tmp_path / "backups")


@pytest.fixture(scope="module")
def shared_history(tmp_path_factory):
    """One history for a module of read-only tests (the catalog never writes)."""
    return build_history(tmp_path_factory.mktemp("history") / "backups")
