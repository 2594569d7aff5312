"""Assemble mongod transactions from oplog entries: applied whole at their commit, or refused.

mongod logs a transaction on ``admin.$cmd`` as (shapes: ``src/mongo/db/repl/oplog_entry.idl``
and mongo-tools ``common/txn/meta.go``):

* one ``applyOps`` entry (``lsid``, ``txnNumber``, ``prevOpTime`` null): commits at once;
* a chain of ``applyOps`` entries with ``partialTxn: true``, each linked to the one before by
  ``prevOpTime``, ended by an ``applyOps`` without ``partialTxn`` (with ``count``, the number
  of operations in the whole transaction): commits at the last entry;
* ``applyOps`` entries ending in one with ``prepare: true``, then ``commitTransaction`` (commit)
  or ``abortTransaction`` (discard), linked the same way.

A transaction is identified by its whole ``lsid`` (raw bytes: an internal transaction's
``lsid`` carries ``txnUUID`` and the parent's ``txnNumber`` besides ``id``, so two of them can
share ``lsid.id``) and ``txnNumber``. Operations on any database are buffered: the caller
applies those of its database and skips the others, so a transaction whose last entry only
touches other databases still commits ours. An entry that continues a chain whose earlier
entries are not in the range read, a broken ``prevOpTime`` link or a ``count`` that does not
match is a :class:`TransactionIncomplete` error: replaying part of a transaction would create
a state that never existed. Transactions still open at the end of a range are reported: at
that point they were not committed, so not applying them is right; a later range (the next
PITR slice) continues them through :meth:`Transactions.adopt`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from bson import Timestamp
from bson.raw_bson import RawBSONDocument

from backup_dr.core.mongo.oplog_updates import UnknownOplogEntry

_NULL_TS = Timestamp(0, 0)


class TransactionIncomplete(UnknownOplogEntry):
    """Part of a transaction is missing from the entries replayed: it cannot be applied whole."""


def _raw(value) -> bytes:
    if isinstance(value, RawBSONDocument):
        return bytes(value.raw)
    import bson

    return bson.encode(value)


def txn_key(entry) -> tuple[bytes, int] | None:
    """(raw lsid, txnNumber) of a transaction entry; None for anything else (a retryable batched
    insert, ``multiOpType: 1``, carries the fields but is no transaction)."""
    lsid = entry.get("lsid")
    number = entry.get("txnNumber")
    if lsid is None or number is None or entry.get("multiOpType") == 1:
        return None
    return _raw(lsid), int(number)


def _prev_ts(entry) -> Timestamp | None:
    prev = (entry.get("prevOpTime") or {}).get("ts")
    return prev if isinstance(prev, Timestamp) and prev != _NULL_TS else None


def _describe(key: tuple[bytes, int], entry) -> str:
    return f"transaction txnNumber {key[1]} (lsid {entry.get('lsid')!r}) at {entry.get('ts')!r}"


@dataclass
class _Open:
    ops: list = field(default_factory=list)
    last_ts: Timestamp | None = None
    prepared: bool = False


class Transactions:
    """Buffers transaction entries; :meth:`apply_ops` and :meth:`finish` return the operations
    to apply now (all databases; the caller filters) in their transaction order."""

    def __init__(self) -> None:
        self.open: dict[tuple[bytes, int], _Open] = {}
        self.committed = 0
        self.aborted = 0

    def adopt(self, other: "Transactions") -> None:
        """Continue the transactions left open by an earlier range (e.g. the base backup's window)."""
        self.open.update(other.open)

    def _continue(self, key, entry) -> _Open:
        txn = self.open.get(key)
        prev = _prev_ts(entry)
        if txn is None:
            if prev is not None:
                raise TransactionIncomplete(
                    f"{_describe(key, entry)} continues an entry at {prev!r} that is not in the replayed range",
                    detail="the transaction began before the first entry replayed; applying only its later part "
                           "would write a state that never existed",
                    hint="restore from a backup whose oplog window holds the whole transaction (a later full backup)",
                )
            return self.open.setdefault(key, _Open())
        if prev is not None and txn.last_ts is not None and prev != txn.last_ts:
            raise TransactionIncomplete(
                f"{_describe(key, entry)} follows {prev!r}, but the transaction's previous entry replayed is {txn.last_ts!r}",
                detail="an entry of the transaction is missing from the replayed range",
                hint="the oplog copy is incomplete; restore from another store's copy",
            )
        return txn

    def apply_ops(self, entry, o) -> list:
        """An ``applyOps`` command entry: its operations now, or [] while its transaction is open."""
        inner = list(o["applyOps"])
        key = txn_key(entry)
        if key is None:
            return inner  # a plain applyOps, no transaction
        partial, prepare = bool(o.get("partialTxn")), bool(o.get("prepare"))
        if not (partial or prepare) and key not in self.open and _prev_ts(entry) is None:
            self.committed += 1
            return inner  # a one-entry transaction
        txn = self._continue(key, entry)
        if txn.prepared:
            raise TransactionIncomplete(f"{_describe(key, entry)} adds operations after its prepare entry")
        txn.ops.extend(inner)
        txn.last_ts = entry.get("ts")
        if partial or prepare:
            txn.prepared = prepare
            return []
        del self.open[key]
        count = o.get("count")
        if count is not None and int(count) != len(txn.ops):
            raise TransactionIncomplete(f"{_describe(key, entry)} says it has {int(count)} operation(s), "
                                        f"{len(txn.ops)} were replayed", hint="the oplog copy is incomplete")
        self.committed += 1
        return txn.ops

    def finish(self, entry, *, commit: bool) -> list:
        """``commitTransaction`` (the prepared operations) or ``abortTransaction`` ([])."""
        key = txn_key(entry)
        if key is None:
            raise UnknownOplogEntry(f"{'commit' if commit else 'abort'}Transaction entry without lsid/txnNumber "
                                    f"at {entry.get('ts')!r}")
        if key not in self.open and not commit:
            self.aborted += 1
            return []  # an abort whose prepare is before the range: nothing of it was applied
        txn = self._continue(key, entry)
        del self.open[key]
        if not commit:
            self.aborted += 1
            return []
        if not txn.prepared:
            raise TransactionIncomplete(f"{_describe(key, entry)} commits a transaction with no prepare entry replayed")
        self.committed += 1
        return txn.ops

    def summary(self) -> dict[str, Any]:
        return {"committed": self.committed, "aborted": self.aborted, "open": len(self.open)}
