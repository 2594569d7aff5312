"""Turn the ``o`` of an oplog update (``op: "u"``) into update documents a server applies.

Forms recognised (anything else raises :class:`UnknownOplogEntry`, never a silent skip):

* full replacement document (no ``$`` keys) -> replace by ``o2`` (upsert, as mongod does);
* legacy ``{"$set": {...}, "$unset": {...}}`` (optionally ``"$v": 1``);
* SecantusDB's ``{"$v": 2, "diff": {"updatedFields": {dotted paths}, "removedFields": [...],
  "truncatedArrays": [{"field", "newSize"}]}}`` (the change-stream updateDescription shape);
* mongod's ``{"$v": 2, "diff": {...}}``: ``u`` (update), ``i`` (insert), ``d`` (delete)
  sections, ``s<field>`` sub-diffs, and array diffs ``{"a": true, "l": <new length>,
  "u<n>": value, "s<n>": sub-diff}``.

Every diff becomes dotted-path ``$set``/``$unset`` (applied by the server, which resolves
``a.1`` as an array index or a field named "1" against the real document, exactly as the
original write did) plus, for array truncation, a second ``$push {$each: [], $slice: n}``.
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
        return _plan_mongod_diff(diff)
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


class _Collector:
    def __init__(self) -> None:
        self.sets: list[bsonraw.Element] = []
        self.unsets: list[str] = []
        self.truncates: list[tuple[str, int]] = []

    def doc_diff(self, diff: RawBSONDocument, prefix: str) -> None:
        for name, t, value in bsonraw.elements(diff):
            if name in ("u", "i"):
                for f, ft, fv in bsonraw.elements(bsonraw.subdocument(t, value)):
                    self.sets.append((prefix + f, ft, fv))
            elif name == "d":
                for f, _ft, _fv in bsonraw.elements(bsonraw.subdocument(t, value)):
                    self.unsets.append(prefix + f)
            elif name.startswith("s") and len(name) > 1 and t == 0x03:
                self.sub_diff(bsonraw.subdocument(t, value), prefix + name[1:])
            else:
                raise _unknown(f"mongod diff section {name!r} at {prefix or 'top level'!r}", diff)

    def sub_diff(self, diff: RawBSONDocument, path: str) -> None:
        if diff.get("a") is True:
            self.array_diff(diff, path)
        else:
            self.doc_diff(diff, path + ".")

    def array_diff(self, diff: RawBSONDocument, path: str) -> None:
        for name, t, value in bsonraw.elements(diff):
            if name == "a":
                continue
            if name == "l":
                self.truncates.append((path, int(diff["l"])))
            elif name[:1] == "u" and name[1:].isdigit():
                self.sets.append((f"{path}.{name[1:]}", t, value))
            elif name[:1] == "s" and name[1:].isdigit() and t == 0x03:
                self.sub_diff(bsonraw.subdocument(t, value), f"{path}.{name[1:]}")
            else:
                raise _unknown(f"mongod array diff entry {name!r} at {path!r}", diff)


def _plan_mongod_diff(diff) -> UpdatePlan:
    c = _Collector()
    c.doc_diff(diff, "")
    first = []
    if c.sets:
        first.append(("$set", 0x03, bsonraw.build(c.sets).raw))
    if c.unsets:
        first.append(("$unset", 0x03, bsonraw.build([(p, 0x02, _string("")) for p in c.unsets]).raw))
    updates: list = [bsonraw.build(first)] if first else []
    for path, size in c.truncates:
        updates.append({"$push": {path: {"$each": [], "$slice": size}}})
    return UpdatePlan(updates=updates)
