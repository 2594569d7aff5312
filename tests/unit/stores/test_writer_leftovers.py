"""The artifact writer's lock file never survives a commit, and still stops interleaved attempts."""

from __future__ import annotations

from datetime import datetime, timezone

import pytest

from backup_dr.core.artifacts.layout import BackupId
from backup_dr.core.artifacts.writer import ArtifactWriter
from backup_dr.core.errors import StoreError
from backup_dr.core.stores.local import LocalStore

WHEN = datetime(2026, 11, 26, 8, tzinfo=timezone.utc)


def _writer(store: LocalStore) -> ArtifactWriter:
    return ArtifactWriter(store, BackupId.new("critical_data", "mongodb", "full", WHEN), source_type="mongodb")


def test_a_committed_backup_holds_no_lock_or_temp_file(tmp_path):
    store = LocalStore(tmp_path / "backups")
    w = _writer(store)
    w.begin()
    with w.open_file("data.bin") as out:
        out.write(b"x" * 1000)
    w.commit(counts={"c": 1})
    assert sorted(p.name for p in w.directory.iterdir()) == ["data.bin", "manifest.json"]

    late = _writer(store)  # a zombie attempt waking up after the commit
    with pytest.raises(StoreError, match="completed meanwhile"):
        late.begin()
    assert sorted(p.name for p in w.directory.iterdir()) == ["data.bin", "manifest.json"]


def test_two_attempts_still_cannot_interleave(tmp_path):
    store = LocalStore(tmp_path / "backups")
    first, second = _writer(store), _writer(store)
    first.begin()
    with pytest.raises(StoreError, match="being written by another attempt"):
        second.begin()
    with first.open_file("data.bin") as out:
        out.write(b"y")
    first.commit()
    assert not [p for p in first.directory.iterdir() if p.name.startswith(".tmp-")]
