"""The one good-copy picker (core/good_copy.py) over three real local stores holding one backup."""

from __future__ import annotations

import pytest
from synthetic_history import NOW, write

from backup_dr.core.artifacts.reader import fetch_verified
from backup_dr.core.catalog import Catalog
from backup_dr.core.errors import IntegrityError
from backup_dr.core.good_copy import copy_order, with_good_copy
from backup_dr.core.stores.local import LocalStore
from backup_dr.core.verify import record_verification


@pytest.fixture
def three(tmp_path):
    stores = {n: LocalStore(tmp_path / n, name=n) for n in ("a", "b", "c")}
    bid = write(stores["a"], "critical_data", "mongodb", "full", NOW)
    for n in ("b", "c"):  # the same backup, byte for byte, in the other stores
        for path in sorted(stores["a"].path(bid.prefix).iterdir()):
            stores[n].path(bid.key(path.name)).parent.mkdir(parents=True, exist_ok=True)
            stores[n].path(bid.key(path.name)).write_bytes(path.read_bytes())
    return stores, bid


def _rot(store, bid):
    p = store.path(bid.key("data.bin"))
    raw = bytearray(p.read_bytes())
    raw[3] ^= 0x10
    p.write_bytes(bytes(raw))


def test_known_good_copies_first_failed_last_policy_order_otherwise(three):
    stores, bid = three
    entry = Catalog(stores).find(str(bid))
    assert copy_order(entry, ["a", "b", "c"]) == ["a", "b", "c"]
    record_verification(stores["b"], bid, {"ok": False, "problems": ["data.bin: sha256 mismatch"]})
    record_verification(stores["c"], bid, {"ok": True, "method": "re-hash"})
    entry = Catalog(stores).find(str(bid))
    assert copy_order(entry, ["a", "b", "c"]) == ["c", "a", "b"]
    assert copy_order(entry, ["a", "b", "c"], available={"a": 1, "b": 1}) == ["a", "b"]


def test_a_bad_copy_falls_back_and_every_reason_is_reported(three, tmp_path):
    stores, bid = three
    _rot(stores["a"], bid)
    entry = Catalog(stores).find(str(bid))
    path, attempts = with_good_copy(entry, stores, ["a", "b", "c"],
                                    lambda s, m: fetch_verified(s, m, "data.bin", tmp_path / "w"))
    assert attempts.used == "b" and [x["store"] for x in attempts.skipped] == ["a"]
    assert "does not match its manifest" in attempts.skipped[0]["reason"]
    assert path == stores["b"].path(bid.key("data.bin"))  # read in place: a local copy is not copied
    _rot(stores["b"], bid)
    _rot(stores["c"], bid)
    with pytest.raises(IntegrityError) as e:
        with_good_copy(entry, stores, ["a", "b", "c"], lambda s, m: fetch_verified(s, m, "data.bin", tmp_path / "w"))
    assert "no store holds a usable copy" in e.value.message and e.value.detail.count("does not match") == 3
    assert "restoring an older backup instead is a different recovery point" in e.value.hint
