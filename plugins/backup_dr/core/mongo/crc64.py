"""CRC-64/XZ, the checksum mongodump writes into every archive EOF block.

mongo-tools uses Go's ``hash/crc64`` with the ECMA table: the reflected polynomial
``0xC96C5795D7870F42`` with all-ones init and final XOR (the CRC-64/XZ catalogue entry,
check value ``0x995DC9BBDF1939FA`` for ``b"123456789"``). The archive stores it as a
*signed* int64, so :attr:`Crc64.signed` is what goes into the BSON header.

WHY this is not a byte loop: a Python byte-at-a-time CRC runs at ~5 MB/s, six times slower
than the server streams documents, so it would dominate the dump. Instead a large buffer is
cut into many equal *lanes* that are CRC'd side by side with numpy (16-bit slicing tables,
~350 MB/s, and numpy releases the GIL so it overlaps with network reads); the lane CRCs
are then merged with the linear "append n zero bytes" operator, exactly like zlib's
``crc32_combine``. Small inputs (and machines without numpy) use the plain table loop.
"""

from __future__ import annotations

from functools import lru_cache

try:  # numpy is in the pinned stack; the fallback keeps the core importable without it
    import numpy as np
except ImportError:  # pragma: no cover - exercised only on a stripped-down install
    np = None

POLY = 0xC96C5795D7870F42
MASK = (1 << 64) - 1
CHECK = 0x995DC9BBDF1939FA

_LANE = 1024  # bytes per lane; must be a multiple of 8
_VECTOR_MIN = 64 * 1024  # below this the byte loop is faster than numpy's setup


def _byte_table() -> list[int]:
    table = []
    for i in range(256):
        c = i
        for _ in range(8):
            c = (c >> 1) ^ POLY if c & 1 else c >> 1
        table.append(c)
    return table


_TABLE = _byte_table()


def _update_bytes(reg: int, data) -> int:
    """The raw register after feeding ``data`` one byte at a time."""
    t = _TABLE
    for b in data:
        reg = t[(reg ^ b) & 0xFF] ^ (reg >> 8)
    return reg


@lru_cache(maxsize=1)
def _slice16_tables():
    """Four 64K-entry tables: the register contribution of each 16-bit piece of a word."""
    t8 = np.zeros((8, 256), dtype=np.uint64)
    t8[0] = np.array(_TABLE, dtype=np.uint64)
    for k in range(1, 8):
        prev = t8[k - 1]
        t8[k] = t8[0][(prev & np.uint64(0xFF)).astype(np.intp)] ^ (prev >> np.uint64(8))
    v = np.arange(65536, dtype=np.uint64)
    lo = (v & np.uint64(0xFF)).astype(np.intp)
    hi = (v >> np.uint64(8)).astype(np.intp)
    return tuple(t8[7 - 2 * k][lo] ^ t8[6 - 2 * k][hi] for k in range(4))


def _lane_registers(buf, lanes: int) -> "np.ndarray":
    """Raw (init 0) CRC register of each of ``lanes`` consecutive ``_LANE``-byte lanes."""
    words = _LANE // 8
    a = np.frombuffer(buf, dtype="<u8", count=lanes * words).reshape(lanes, words).T.copy()
    u0, u1, u2, u3 = _slice16_tables()
    m, s16, s32, s48 = np.uint64(0xFFFF), np.uint64(16), np.uint64(32), np.uint64(48)
    reg = np.zeros(lanes, dtype=np.uint64)
    for j in range(words):
        x = reg ^ a[j]
        reg = u0[(x & m).astype(np.intp)] ^ u1[((x >> s16) & m).astype(np.intp)] \
            ^ u2[((x >> s32) & m).astype(np.intp)] ^ u3[(x >> s48).astype(np.intp)]
    return reg


@lru_cache(maxsize=1)
def _one_zero_byte_operator() -> "np.ndarray":
    """8x256 tables of the linear map "feed one zero byte": reg -> T[reg & 0xff] ^ (reg >> 8)."""
    ops = np.zeros((8, 256), dtype=np.uint64)
    for i in range(8):
        ops[i] = [_TABLE[(v << (8 * i)) & 0xFF] ^ ((v << (8 * i)) >> 8) for v in range(256)]
    return ops


@lru_cache(maxsize=64)
def _zeros_operator(level: int) -> "np.ndarray":
    """The map "feed ``_LANE * 2**level`` zero bytes", built by repeated squaring."""
    if level == 0:
        op, n = _one_zero_byte_operator(), _LANE
        while n > 1:
            op, n = _compose(op, op), n // 2
        return op
    prev = _zeros_operator(level - 1)
    return _compose(prev, prev)


def _apply(op: "np.ndarray", x: "np.ndarray") -> "np.ndarray":
    ff = np.uint64(0xFF)
    out = op[0][(x & ff).astype(np.intp)]
    for i in range(1, 8):
        out = out ^ op[i][((x >> np.uint64(8 * i)) & ff).astype(np.intp)]
    return out


def _compose(second: "np.ndarray", first: "np.ndarray") -> "np.ndarray":
    """Tables of ``second(first(x))``."""
    return np.stack([_apply(second, first[i]) for i in range(8)])


def _apply_int(op: "np.ndarray", x: int) -> int:
    return int(_apply(op, np.array([x], dtype=np.uint64))[0])


def _shift(reg: int, lanes: int) -> int:
    """The register after ``lanes * _LANE`` zero bytes."""
    level = 0
    while lanes:
        if lanes & 1:
            reg = _apply_int(_zeros_operator(level), reg)
        lanes >>= 1
        level += 1
    return reg


def _combine_lanes(regs: "np.ndarray") -> int:
    """Raw register of the concatenation of equal lanes, by a pairwise tree."""
    leftovers: list[tuple[int, int]] = []  # (register, level), rightmost first
    level = 0
    while len(regs) > 1:
        if len(regs) % 2:
            leftovers.append((int(regs[-1]), level))
            regs = regs[:-1]
        regs = _apply(_zeros_operator(level), regs[0::2]) ^ regs[1::2]
        level += 1
    reg = int(regs[0])
    for piece, piece_level in reversed(leftovers):
        reg = _shift(reg, 1 << piece_level) ^ piece
    return reg


class Crc64:
    """Incremental CRC-64/XZ: ``update()`` any number of times, then read :attr:`value`."""

    __slots__ = ("_reg",)

    def __init__(self) -> None:
        self._reg = MASK  # all-ones init

    def update(self, data) -> None:
        mv = memoryview(data).cast("B")
        n = len(mv)
        if np is None or n < _VECTOR_MIN:
            self._reg = _update_bytes(self._reg, mv)
            return
        lanes = n // _LANE
        body = lanes * _LANE
        # register over (previous || body) = shift(previous, len(body)) ^ raw(body)
        self._reg = _shift(self._reg, lanes) ^ _combine_lanes(_lane_registers(mv[:body], lanes))
        if body < n:
            self._reg = _update_bytes(self._reg, mv[body:])

    @property
    def value(self) -> int:
        """The CRC as an unsigned 64-bit integer."""
        return self._reg ^ MASK

    @property
    def signed(self) -> int:
        """The CRC as the signed int64 mongodump stores in an EOF header."""
        return to_signed(self.value)


def to_signed(value: int) -> int:
    return value - (1 << 64) if value >= (1 << 63) else value


def crc64(data) -> int:
    """CRC-64/XZ of ``data`` (unsigned)."""
    c = Crc64()
    c.update(data)
    return c.value
