"""Just enough raw-BSON handling to move values between documents without decoding them.

Oplog replay builds ``$set`` documents whose field names are new dotted paths but whose
values must be the original bytes (a decode/encode round trip would turn a deprecated
``undefined``/``symbol``/``DBPointer`` into something else, and loses nothing only most of
the time). So values are carried as ``(type byte, value bytes)`` pairs and re-framed.
"""

from __future__ import annotations

import struct
from typing import Iterator

from bson.raw_bson import RawBSONDocument

_I32 = struct.Struct("<i")
_FIXED = {0x01: 8, 0x06: 0, 0x07: 12, 0x08: 1, 0x09: 8, 0x0A: 0, 0x10: 4, 0x11: 8, 0x12: 8, 0x13: 16, 0xFF: 0, 0x7F: 0}
_LEN_PREFIXED = {0x02: 4, 0x0D: 4, 0x0E: 4}  # int32 length + bytes (string, code, symbol)
_SELF_SIZED = {0x03, 0x04, 0x0F}  # embedded document, array, code with scope: int32 total size

Element = tuple[str, int, bytes]  # (name, type byte, value bytes)


def _value_len(buf: bytes, pos: int, t: int) -> int:
    if t in _FIXED:
        return _FIXED[t]
    if t in _LEN_PREFIXED:
        return 4 + _I32.unpack_from(buf, pos)[0]
    if t in _SELF_SIZED:
        return _I32.unpack_from(buf, pos)[0]
    if t == 0x05:  # binary: int32 length, subtype byte, bytes
        return 5 + _I32.unpack_from(buf, pos)[0]
    if t == 0x0B:  # regex: two cstrings
        end = buf.index(b"\x00", pos)
        return buf.index(b"\x00", end + 1) + 1 - pos
    if t == 0x0C:  # DBPointer: string + 12-byte ObjectId
        return 4 + _I32.unpack_from(buf, pos)[0] + 12
    raise ValueError(f"unknown BSON type 0x{t:02x}")


def elements(doc) -> Iterator[Element]:
    """The top-level elements of a BSON document (bytes or RawBSONDocument), in order."""
    buf = doc.raw if isinstance(doc, RawBSONDocument) else bytes(doc)
    pos, end = 4, len(buf) - 1
    while pos < end:
        t = buf[pos]
        name_end = buf.index(b"\x00", pos + 1)
        name = buf[pos + 1:name_end].decode("utf-8")
        vstart = name_end + 1
        vlen = _value_len(buf, vstart, t)
        yield name, t, buf[vstart:vstart + vlen]
        pos = vstart + vlen


def build(elems: list[Element]) -> RawBSONDocument:
    """A raw document from (name, type, value) elements."""
    body = b"".join(bytes([t]) + name.encode("utf-8") + b"\x00" + value for name, t, value in elems)
    return RawBSONDocument(_I32.pack(len(body) + 5) + body + b"\x00")


def subdocument(t: int, value: bytes) -> RawBSONDocument:
    """An embedded document/array value as a raw document (arrays have keys "0", "1", ...)."""
    if t not in (0x03, 0x04):
        raise ValueError(f"BSON type 0x{t:02x} is not a document")
    return RawBSONDocument(value)


_MAX_DOC = 16 * 1024 * 1024 + 16 * 1024  # a BSON document is at most 16 MB (+ the server's overhead)


def iter_documents(stream, where: str, hint: str = "restore from another store's copy") -> Iterator[RawBSONDocument]:
    """The documents of a stream of concatenated BSON (a ``.bson`` file, an oplog slice, a spool),
    never decoded; a bad length or a cut-off document is an IntegrityError naming ``where``."""
    from backup_dr.core.errors import IntegrityError

    offset = 0
    while True:
        head = stream.read(4)
        if not head:
            return
        size = int.from_bytes(head, "little", signed=True) if len(head) == 4 else -1
        if size < 5 or size > _MAX_DOC:
            raise IntegrityError(f"{where}: malformed BSON at byte {offset} (document length {size})", hint=hint)
        body = stream.read(size - 4)
        if len(body) != size - 4 or body[-1:] != b"\x00":
            raise IntegrityError(f"{where}: truncated BSON document at byte {offset}", hint=hint)
        offset += size
        yield RawBSONDocument(head + body)


def get(doc, name: str) -> Element | None:
    for el in elements(doc):
        if el[0] == name:
            return el
    return None
