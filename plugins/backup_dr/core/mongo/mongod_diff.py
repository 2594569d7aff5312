"""Apply a mongod ``$v: 2`` update diff to a document, as mongod's oplog applier does.

WHY not ``$set`` paths: in the diff every name is a LITERAL field name. ``{"u": {"a.b": 1}}``
sets the field called "a.b", where ``$set: {"a.b": 1}`` would create ``{a: {b: 1}}``; a
field named ``$x`` or ``1`` means the same trap. mongod applies the diff to the stored
document (the pre-image) and writes the result; so does this module, on raw BSON, so values
keep their exact bytes and fields their order. The rules, from mongod's
``src/mongo/db/update/document_diff_applier.cpp`` (format:
``document_diff_serialization.h``):

* document diff: sections ``d`` (delete ``{name: false}``), ``u`` (update), ``i`` (insert) and
  ``s<name>`` (a sub-diff of field ``name``), in that order, never empty; a name may appear in
  one section only. Fields
  keep their order; an updated field is replaced in place; ``i`` fields, and ``u`` fields the
  pre-image lacks, are appended at the end (updates first, then inserts, each in diff order);
  an ``i`` field that already exists (a re-applied entry) is moved to the end.
* a sub-diff applies only to a field the pre-image has, of the matching type (object for a
  document diff, array for an array diff); another type becomes ``null`` (re-application: a
  later entry overwrites it).
* array diff ``{a: true, l: <new length>, u<n>: value, s<n>: sub-diff}``, indexes ascending:
  ``l`` truncates or pads with ``null``; ``u<n>``/``s<n>`` past the end pad with ``null``; a
  sub-diff at a missing index or of the wrong type gives ``null``.
* the ``b`` (binary) section of newer servers is refused: its byte-level semantics are not
  implemented here, and a silent skip would produce a different document.
"""

from __future__ import annotations

from bson.raw_bson import RawBSONDocument

from backup_dr.core.mongo import bsonraw
from backup_dr.core.mongo.oplog_updates import UnknownOplogEntry

_NULL = (0x0A, b"")
_DOC, _ARRAY, _BOOL, _INT32 = 0x03, 0x04, 0x08, 0x10


def _bad(what: str, diff) -> UnknownOplogEntry:
    text = repr(dict(diff)) if hasattr(diff, "items") else repr(diff)
    return UnknownOplogEntry(f"unknown or malformed mongod update diff: {what}", detail=text[:500],
                             hint="this server version writes an update shape backup_dr does not know; report it with the detail")


def is_array_diff(diff: RawBSONDocument) -> bool:
    header = bsonraw.get(diff, "a")  # ``a`` is no document-diff section, so its presence decides
    return header is not None and header[1] == _BOOL and header[2] == b"\x01"


def apply_diff(pre, diff: RawBSONDocument) -> RawBSONDocument:
    """The post-image of document ``pre`` (raw) after the diff ``diff`` (the ``o.diff`` of the entry)."""
    return bsonraw.build(_apply_document(list(bsonraw.elements(pre)), diff))


def check_diff(diff: RawBSONDocument) -> None:
    """Refuse a malformed or unknown diff before anything is written (walks every sub-diff)."""
    _deletes, _updates, _inserts, subs = _sections(diff)
    for sub in subs.values():
        if is_array_diff(sub):
            _apply_array(bsonraw.build([]).raw, sub, check_only=True)
        else:
            check_diff(sub)


_SECTION_ORDER = {"d": 1, "u": 2, "i": 3, "s": 4}  # mongod's DocumentDiffReader refuses any other order


def _sections(diff: RawBSONDocument):
    deletes: set[str] = set()
    updates: dict[str, bsonraw.Element] = {}
    inserts: dict[str, bsonraw.Element] = {}
    subs: dict[str, RawBSONDocument] = {}
    seen: set[str] = set()

    def claim(name: str) -> None:
        if name in seen:
            raise _bad(f"field {name!r} appears in two sections", diff)
        seen.add(name)

    previous = 0
    elements = list(bsonraw.elements(diff))
    if not elements:
        raise _bad("an empty diff", diff)
    for section, t, value in elements:
        order = _SECTION_ORDER.get(section[:1], 0) if section[:1] == "s" or len(section) == 1 else 0
        if section == "b":
            raise _bad("binary ('b') diff section", diff)
        if not order or order < previous or (order == previous and order != 4):
            raise _bad(f"section {section!r} (sections are d, u, i, then s<field>, each once)", diff)
        previous = order
        if section in ("d", "u", "i") and t == _DOC:
            for el in bsonraw.elements(bsonraw.subdocument(t, value)):
                claim(el[0])
                if section == "d":
                    deletes.add(el[0])
                else:
                    (updates if section == "u" else inserts)[el[0]] = el
        elif section.startswith("s") and t == _DOC:
            claim(section[1:])
            subs[section[1:]] = bsonraw.subdocument(t, value)
        else:
            raise _bad(f"section {section!r} of BSON type 0x{t:02x}", diff)
    return deletes, updates, inserts, subs


def _apply_document(pre: list[bsonraw.Element], diff: RawBSONDocument) -> list[bsonraw.Element]:
    deletes, updates, inserts, subs = _sections(diff)
    out: list[bsonraw.Element] = []
    in_place: set[str] = set()
    for name, t, value in pre:
        if name in deletes or name in inserts:
            continue
        if name in updates:
            out.append(updates[name])
            in_place.add(name)
        elif name in subs:
            out.append((name, *_apply_sub(t, value, subs[name])))
        else:
            out.append((name, t, value))
    for el in list(updates.values()) + list(inserts.values()):
        if el[0] not in in_place:
            out.append(el)
    return out


def _apply_sub(t: int | None, value: bytes | None, sub: RawBSONDocument) -> tuple[int, bytes]:
    """(type, value) of one field/array slot after its sub-diff (null on a type mismatch)."""
    if is_array_diff(sub):
        if t != _ARRAY:
            return _NULL
        return _ARRAY, _apply_array(value, sub).raw
    if t != _DOC:
        return _NULL
    return _DOC, bsonraw.build(_apply_document(list(bsonraw.elements(value)), sub)).raw


def _int(t: int, value: bytes, diff) -> int:
    if t == _INT32:  # mongod writes the new length as an int32 and refuses any other type
        return int.from_bytes(value, "little", signed=True)
    raise _bad("array length 'l' is not an int32", diff)


def _apply_array(value: bytes, diff: RawBSONDocument, *, check_only: bool = False) -> RawBSONDocument:
    items = [(t, v) for _n, t, v in bsonraw.elements(value)]
    size: int | None = None
    mods: list[tuple[int, str, int, bytes]] = []
    entries = list(bsonraw.elements(diff))
    if not entries or entries[0][0] != "a":
        raise _bad("an array diff must start with its header 'a'", diff)
    for pos, (name, t, v) in enumerate(entries[1:], 1):
        if name == "l" and pos == 1:
            size = _int(t, v, diff)
        elif name[:1] in ("u", "s") and name[1:].isdigit() and (name[0] == "u" or t == _DOC):
            mods.append((int(name[1:]), name[0], t, v))
        else:
            raise _bad(f"array diff entry {name!r}", diff)
    if any(a[0] >= b[0] for a, b in zip(mods, mods[1:])):
        raise _bad("array diff indexes are not ascending", diff)
    if size is not None and (size < 0 or (mods and mods[-1][0] >= size)):
        raise _bad("array diff modifies an index beyond its new length", diff)
    if check_only:
        for _idx, kind, t, v in mods:
            if kind == "s":
                sub = bsonraw.subdocument(t, v)
                _apply_array(bsonraw.build([]).raw, sub, check_only=True) if is_array_diff(sub) else check_diff(sub)
        return bsonraw.build([])
    length = len(items) if size is None else min(len(items), size)
    end = max(length, size or 0, mods[-1][0] + 1 if mods else 0)
    by_index = {m[0]: m for m in mods}
    out: list[tuple[int, bytes]] = []
    for idx in range(end):
        pre = items[idx] if idx < length else None
        mod = by_index.get(idx)
        if mod is None:
            out.append(pre if pre is not None else _NULL)
        elif mod[1] == "u":
            out.append((mod[2], mod[3]))
        elif pre is None:
            out.append(_NULL)
        else:
            out.append(_apply_sub(pre[0], pre[1], bsonraw.subdocument(mod[2], mod[3])))
    return bsonraw.build([(str(i), t, v) for i, (t, v) in enumerate(out)])
