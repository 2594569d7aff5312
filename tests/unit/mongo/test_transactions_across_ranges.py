"""A transaction split over two replayed ranges (a full backup's window, then a PITR slice) is
applied whole; the dump's window moves its start back to hold a transaction that began before it.

Entries are mongod-shaped (``tests/fixtures/mongod_oplog``); the applier writes to the test server.
"""

from __future__ import annotations

import bson
import pytest
from bson import Int64
from bson.raw_bson import RawBSONDocument

from backup_dr.core.mongo.applier import NamespaceMap, OplogApplier
from backup_dr.core.mongo.dump import extend_for_transactions
from backup_dr.core.mongo.transactions import TransactionIncomplete
from tests.fixtures.mongod_oplog import DB, lsid, oplog, optime, txn
from tests.fixtures.mongod_oplog.transactions import ins


@pytest.fixture
def db(mongo_client, fresh_db_name):
    yield mongo_client[fresh_db_name]
    mongo_client.drop_database(fresh_db_name)


def _raw(entries):
    return [RawBSONDocument(bson.encode(e)) for e in entries]


CHAIN = _raw(oplog(txn([ins("t", 1)], session=lsid(3), number=1, partialTxn=True),
                   txn([ins("t", 2)], session=lsid(3), number=1, prev=optime(0), partialTxn=True),
                   txn([ins("t", 3)], session=lsid(3), number=1, prev=optime(1), count=Int64(3))))


def test_the_slice_continues_the_transaction_the_base_window_left_open(db):
    base = OplogApplier(db.client, NamespaceMap(DB, db.name))
    stats = base.apply_all(CHAIN[:2])  # the base backup's window ends inside the transaction
    assert stats.open_transactions == 1 and db.t.count_documents({}) == 0  # not committed at that point: right
    OplogApplier(db.client, NamespaceMap(DB, db.name), transactions=base.txns).apply_all(CHAIN[2:])
    assert sorted(d["_id"] for d in db.t.find()) == [1, 2, 3]


def test_without_the_earlier_part_the_replay_refuses_instead_of_applying_a_fragment(db):
    with pytest.raises(TransactionIncomplete, match="not in the replayed range"):
        OplogApplier(db.client, NamespaceMap(DB, db.name)).apply_all(CHAIN[2:])
    assert db.t.count_documents({}) == 0


def test_a_missing_middle_entry_is_refused(db):
    with pytest.raises(TransactionIncomplete, match="an entry of the transaction is missing"):
        OplogApplier(db.client, NamespaceMap(DB, db.name)).apply_all([CHAIN[0], CHAIN[2]])


def test_the_dump_window_starts_before_a_transaction_straddling_its_start():
    by_ts = {e["ts"]: e for e in CHAIN}
    start = CHAIN[1]["ts"]  # the dump's start position falls inside the chain
    new_start = extend_for_transactions([CHAIN[2]], start, by_ts.get)
    assert new_start < CHAIN[0]["ts"] and new_start >= bson.Timestamp(CHAIN[0]["ts"].time, 0)
    with pytest.raises(Exception, match="no longer holds"):
        extend_for_transactions([CHAIN[2]], start, {CHAIN[1]["ts"]: CHAIN[1]}.get)  # its first entry rolled off
