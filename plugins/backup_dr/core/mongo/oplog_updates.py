"""Classify the ``o`` of an oplog update (``op: "u"``) into what the applier does with it.

Forms recognised (anything else raises :class:`UnknownOplogEntry`, never a silent skip):

* full replacement document (no ``$`` keys) -> replace by ``o2`` (upsert, as mongod does);
* legacy ``{"$set": {...}, "$unset": {...}}`` (optionally ``"$v": 1``; mongod before 5.0):
  update documents the server applies (there, dotted names ARE paths);
* SecantusDB's ``{"$v": 2, "diff": {"updatedFields": {dotted paths}, "removedFields": [...],
  "truncatedArrays": [{"field", "newSize"}]}}`` (the change-stream updateDescription shape):
  ``$set``/``$unset`` paths plus ``$push {$each: [], $slice: n}`` for truncation;
* mongod's ``{"$v": 2, "diff": {...}}`` (5.0+): ``u``/``i``/``d`` sections, ``s<field>``
  sub-diffs, array diffs. Its names are LITERAL field names, so it is not turned into paths:
  the plan carries the diff, and the applier applies it to the stored document
  (:mod:`.mongod_diff`), as mongod does.

Values are copied as raw BSON bytes (see :mod:`.bsonraw`).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from bson.raw_bson import RawBSONDocument

from backup_dr.core.errors import BackupDRError
from backup_dr.core.mongo import bsonraw

_DIFF_SECANTUS = frozenset({"updatedFields", "removedFields", "truncatedArrays", "disambiguatedPaths"})


class UnknownOplogEntry(BackupDRError):
    """An oplog entry whose form the replayer does not know. Replay stops: skipping it would
    silently produce wrong data."""


@dataclass
class UpdatePlan:
    """What to do for one update entry: a replacement, or update documents applied in order."""

    replacement: RawBSONDocument | None = None
    updates: list = field(default_factory=list)
    diff: RawBSONDocument | None = None  # a mongod $v:2 diff, applied to the pre-image


def _unknown(what: str, o) -> UnknownOplogEntry:
    text = repr(dict(o)) if hasattr(o, "items") else repr(o)
    return UnknownOplogEntry(
        f"unknown oplog update form: {what}",
        detail=text[:500],
        hint="this server version writes an update shape backup_dr does not know; report it with the detail above",
    )


def plan_update(o) -> UpdatePlan:
    """Classify and convert an update entry's ``o`` (raw document)."""
    names = [name for name, _t, _v in bsonraw.elements(o)]
    if not names:
        return UpdatePlan(updates=[])
    version = o.get("$v") if "$v" in names else None
    if version not in (None, 1, 2):
        raise _unknown(f"$v {version!r}", o)
    if version == 2:
        if set(names) != {"$v", "diff"}:
            raise _unknown("$v 2 entry with fields other than 'diff'", o)
        diff = o["diff"]
        keys = set(diff.keys())
        if keys and keys <= _DIFF_SECANTUS:
            return _plan_change_stream_diff(diff)
        from backup_dr.core.mongo.mongod_diff import check_diff

        raw = diff if isinstance(diff, RawBSONDocument) else RawBSONDocument(bytes(diff))
        check_diff(raw)
        return UpdatePlan(diff=raw)
    dollar = [n for n in names if n.startswith("$")]
    if not dollar:
        return UpdatePlan(replacement=o if isinstance(o, RawBSONDocument) else RawBSONDocument(bytes(o)))
    if len(dollar) != len(names):
        raise _unknown("mixes $-operators and plain fields", o)
    ops = [n for n in names if n != "$v"]
    if not set(ops) <= {"$set", "$unset"}:
        raise _unknown(f"legacy update with operators {', '.join(sorted(ops))} (only $set/$unset are logged)", o)
    elems = [el for el in bsonraw.elements(o) if el[0] != "$v"]
    return UpdatePlan(updates=[bsonraw.build(elems)] if elems else [])


def _plan_change_stream_diff(diff) -> UpdatePlan:
    update: list = []
    sets = diff.get("updatedFields")
    unsets = list(diff.get("removedFields") or [])
    first = []
    if sets is not None and len(list(bsonraw.elements(sets))):
        first.append(("$set", 0x03, sets.raw))
    if unsets:
        first.append(("$unset", 0x03, bsonraw.build([(p, 0x02, _string("")) for p in unsets]).raw))
    if first:
        update.append(bsonraw.build(first))
    for t in diff.get("truncatedArrays") or []:
        update.append({"$push": {t["field"]: {"$each": [], "$slice": int(t["newSize"])}}})
    return UpdatePlan(updates=update)


def _string(s: str) -> bytes:
    data = s.encode("utf-8") + b"\x00"
    return len(data).to_bytes(4, "little") + data
