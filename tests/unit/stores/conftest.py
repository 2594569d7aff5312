"""Fixtures for retention / catalog unit tests: the synthetic history of :mod:`synthetic_history`."""

from __future__ import annotations

import pytest
from synthetic_history import RDBS, SLICES, FULLS, HOUR, write

from backup_dr.core.artifacts.layout import BackupId
from backup_dr.core.stores.local import LocalStore
from backup_dr.core.verify import record_verification


@pytest.fixture
def history(tmp_path) -> tuple[LocalStore, dict[str, list[BackupId]]]:
    store = LocalStore(tmp_path / "backups", name="local")
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
