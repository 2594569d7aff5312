"""The catalog over the 200-backup history: right answers, with one listing per store and lazy reads."""

from __future__ import annotations

from contextlib import contextmanager

from synthetic_history import DAY, FULLS, HOUR, NOW, RDBS, write

from backup_dr.core.catalog import Catalog, data_point
from backup_dr.core.stores.local import LocalStore


class CountingStore(LocalStore):
    """The real local store, counting the calls that cost a round trip on S3/GCS."""

    def __init__(self, root):
        super().__init__(root, name="local")
        self.lists = self.reads = 0

    def list(self, prefix=""):
        self.lists += 1
        return super().list(prefix)

    @contextmanager
    def open(self, key):
        self.reads += 1
        with super().open(key) as f:
            yield f


def test_list_is_one_listing_and_no_manifest_reads(shared_history):
    store = CountingStore(shared_history[0].root)
    entries = Catalog([store]).list("critical_data", "mongodb", "full")
    assert [e.bid for e in entries] == list(reversed(shared_history[1]["full"]))  # newest first
    assert (store.lists, store.reads) == (1, 0)
    assert all(e.complete_in == ["local"] and e.size > 0 for e in entries)

    everything = Catalog([store]).list()
    assert len(everything) == 200 and store.lists == 2 and store.reads == 0
    stamps = [e.bid.stamp for e in everything]
    assert stamps == sorted(stamps, reverse=True) and everything[0].bid.stamp == NOW


def test_newest_verified_reads_only_the_records_it_needs(shared_history):
    store = CountingStore(shared_history[0].root)
    catalog = Catalog([store])
    newest = catalog.newest("operational_data", "redis_cache", "rdb")
    assert newest.bid.stamp == RDBS[-1] and store.reads == 1  # one manifest: no other can have newer data
    store.reads = 0
    good = catalog.newest("operational_data", "redis_cache", "rdb", verified_only=True)
    assert good.bid.stamp == RDBS[-3] and good.verification("local")["kind"] == "drill"
    assert store.reads <= 6  # 3 manifests + their records, not 20
    assert catalog.newest("critical_data", "mongodb", verified_only=True) is None


def test_newest_before_a_time_uses_the_consistent_point(shared_history):
    store = CountingStore(shared_history[0].root)
    catalog = Catalog([store])
    target = FULLS[70] + HOUR / 2  # full 70 is taken but its data ends at +1h: not usable yet
    found = catalog.newest("critical_data", "mongodb", before=target)
    assert found.bid.stamp == FULLS[69]
    assert data_point(found.manifest(), "end")[0] <= target.timestamp()
    assert store.lists == 1 and store.reads == 2  # two manifests, not eighty
    assert catalog.newest("critical_data", "mongodb", before=FULLS[0]) is None


def test_find_lists_only_that_backup(shared_history):
    store = CountingStore(shared_history[0].root)
    bid = shared_history[1]["oplog"][42]
    entry = Catalog([store]).find(str(bid))
    assert entry.bid == bid and store.lists == 1 and store.reads == 0
    assert entry.manifest().previous_id == str(shared_history[1]["oplog"][41])
    row = entry.to_dict(with_verification=False)
    assert row["slot"] == bid.stamp.isoformat().replace("+00:00", "Z")
    assert row["taken_at"] == (bid.stamp + HOUR).isoformat().replace("+00:00", "Z")  # the data's end point, not the slot
    assert Catalog([store]).find("critical_data.mongodb.full.20990101T000000Z") is None


def test_a_late_run_is_newest_by_its_data_and_never_chosen_for_a_time_it_postdates(tmp_path):
    """Slot 19:00 ran late and dumped at 22:15; slot 20:00 ran on time. The 19:00 backup holds the
    newest data (chosen as newest), but a point in time before 22:15 can only use the 20:00 one."""
    store = LocalStore(tmp_path / "b", name="local")
    day = NOW - 3 * DAY
    on_time = write(store, "critical_data", "mongodb", "full", day.replace(hour=20), end=day.replace(hour=20, minute=1))
    late = write(store, "critical_data", "mongodb", "full", day.replace(hour=19), end=day.replace(hour=22, minute=15))
    catalog = Catalog([store])
    assert catalog.newest("critical_data", "mongodb").bid == late
    assert catalog.newest("critical_data", "mongodb", before=day.replace(hour=22)).bid == on_time
    assert catalog.newest("critical_data", "mongodb", before=day.replace(hour=22, minute=15)).bid == late
    assert catalog.newest("critical_data", "mongodb", before=day.replace(hour=19, minute=30)) is None
    assert catalog.find(str(late)).captured_at == day.replace(hour=22, minute=15)
