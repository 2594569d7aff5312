"""The one oplog reader's order rule, as a PITR slice file is checked before a restore uses it.

mongod gives every oplog entry its own timestamp; only a server that logs a transaction's
operations as separate entries (the test server) repeats one, and then within ONE
transaction (same lsid and txnNumber). Anything else repeating or going back is refused, on
every server: a replay in the wrong order writes a wrong state.
"""

from __future__ import annotations

import bson
import pytest
from bson import Int64, Timestamp
from bson.son import SON

from backup_dr.core.errors import IntegrityError
from backup_dr.core.mongo.codecs import compressed_writer
from backup_dr.core.pitr.slices import check_slice

START, END = Timestamp(1795680000, 0), Timestamp(1795680010, 0)
LSID = SON([("id", bson.Binary(b"\x01" * 16, 4))])


def _slice(tmp_path, entries) -> tuple:
    path = tmp_path / "oplog.bson.zst"
    with open(path, "wb") as raw, compressed_writer(raw, "zstd") as out:
        for e in entries:
            out.write(bson.encode(e))
    return path, len(entries)


def e(t: int, i: int, _id: int, **extra) -> SON:
    return SON([("op", "i"), ("ns", "db.c"), ("o", {"_id": _id}), ("ts", Timestamp(t, i)), *extra.items()])


def check(tmp_path, entries):
    path, n = _slice(tmp_path, entries)
    return check_slice(path, codec="zstd", start=START, end=END, entries=n, where="slice under test")


def test_strictly_increasing_entries_pass(tmp_path):
    assert check(tmp_path, [e(1795680001, 1, 1), e(1795680001, 2, 2), e(1795680002, 1, 3)]) == 3


def test_two_entries_sharing_a_timestamp_are_refused(tmp_path):
    with pytest.raises(IntegrityError, match="repeats the previous entry's Timestamp"):
        check(tmp_path, [e(1795680001, 1, 1), e(1795680001, 1, 2)])


def test_entries_of_one_transaction_may_share_a_timestamp(tmp_path):
    txn = {"lsid": LSID, "txnNumber": Int64(3)}
    assert check(tmp_path, [e(1795680001, 1, 1, **txn), e(1795680001, 1, 2, **txn), e(1795680002, 1, 3)]) == 3


def test_two_transactions_sharing_a_timestamp_are_refused(tmp_path):
    with pytest.raises(IntegrityError, match="repeats"):
        check(tmp_path, [e(1795680001, 1, 1, lsid=LSID, txnNumber=Int64(3)),
                         e(1795680001, 1, 2, lsid=LSID, txnNumber=Int64(4))])


def test_going_back_and_leaving_the_range_are_refused(tmp_path):
    with pytest.raises(IntegrityError, match="goes back"):
        check(tmp_path, [e(1795680002, 1, 1), e(1795680001, 5, 2)])
    with pytest.raises(IntegrityError, match="outside"):
        check(tmp_path, [e(1795680000, 0, 1)])  # ts == start: the previous slice holds it
    with pytest.raises(IntegrityError, match="outside"):
        check(tmp_path, [e(1795680011, 0, 1)])
