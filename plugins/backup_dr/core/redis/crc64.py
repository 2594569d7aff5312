"""CRC-64/Jones exactly as Redis computes it (the 8-byte trailer of every RDB file).

Why not just call ``redis-check-rdb`` afterwards: it is not installed on every worker, and
a checksum computed *while the bytes stream in* costs no second read of a multi-gigabyte
file. A byte-at-a-time loop in Python manages ~10 MB/s, far slower than Redis sends, so
when numpy is present (it ships with the Airflow providers) the data is cut into many
equal lanes whose CRCs are computed side by side (slicing-by-8 over numpy vectors) and
then folded together with the linear "append N zero bytes" operator, the same algebra as
zlib's ``crc32_combine``. That runs at a few hundred MB/s (sys.byteorder must be little,
as on x86-64 and arm64; elsewhere the plain loop is used); without numpy the pure-Python
loop is used (correct, slower) and a warning says so once.

Parameters (Redis ``src/crc64.c``): reflected, polynomial 0xad93d23594c935a9, init 0, no
final xor; ``crc64(b"123456789") == 0xe9c6d914c4b8d9ca``.
"""

from __future__ import annotations

import logging
import sys

log = logging.getLogger(__name__)

#: the Jones polynomial, bit-reversed (Redis processes bytes least-significant bit first)
POLY_REFLECTED = 0x95AC9329AC4BC9B5
CHECK_VALUE = 0xE9C6D914C4B8D9CA  # crc64(b"123456789")

_LANE = 128  # longest lane in the vectorised path (a multiple of 8); shorter for small inputs
_MIN_VECTOR = 64 * 1024  # below this the plain loop is cheaper than numpy's call overhead


def _byte_table() -> list[int]:
    table = []
    for i in range(256):
        c = i
        for _ in range(8):
            c = (c >> 1) ^ POLY_REFLECTED if c & 1 else c >> 1
        table.append(c)
    return table


_T0 = _byte_table()


def _crc_bytes(crc: int, data) -> int:
    t = _T0
    for b in data:
        crc = t[(crc ^ b) & 0xFF] ^ (crc >> 8)
    return crc


try:  # numpy is optional: the core must run with only its own requirements
    import numpy as _np
except ImportError:  # pragma: no cover - exercised only on minimal installs
    _np = None


class _Vector:
    """The numpy machinery, built once on first use."""

    def __init__(self):
        np = _np
        tables = [_T0]
        for _ in range(7):  # slicing-by-8: table k = table applied with k more zero bytes
            prev = tables[-1]
            tables.append([(prev[i] >> 8) ^ _T0[prev[i] & 0xFF] for i in range(256)])
        # index 7 - j: byte j of the 64-bit word still has 7 - j bytes to travel
        byte_tables = [np.array(tables[7 - j], dtype=np.uint64) for j in range(8)]
        # ...and merged in pairs into 4 tables of 65536 entries (2 MiB): half the lookups per word
        v = np.arange(65536)
        self.slice_tables = [byte_tables[2 * k][v & 0xFF] ^ byte_tables[2 * k + 1][v >> 8] for k in range(4)]
        self.shift_cache: dict[int, "_np.ndarray"] = {}

    # A "shift by n zero bytes" operator is linear over GF(2); it is kept as 8 tables of 256
    # entries (one per byte of the register), so applying it is 8 lookups and 7 xors.

    def _apply_tables(self, tables, x):
        np = _np
        xb = x.view(np.uint8).reshape(-1, 8)
        out = np.take(tables[0], xb[:, 0])
        for j in range(1, 8):
            out ^= np.take(tables[j], xb[:, j])
        return out

    def _tables_from_columns(self, cols) -> "_np.ndarray":
        """8x256 tables of an operator given its images of the 64 unit vectors."""
        np = _np
        tables = np.zeros((8, 256), dtype=np.uint64)
        values = np.arange(256)
        for j in range(8):
            for bit in range(8):
                mask = ((values >> bit) & 1).astype(bool)
                tables[j, mask] ^= cols[8 * j + bit]
        return tables

    def shift_tables(self, nbytes: int) -> "_np.ndarray":
        """Tables of the operator 'feed nbytes zero bytes' (nbytes = lane * 2**k)."""
        np = _np
        cached = self.shift_cache.get(nbytes)
        if cached is not None:
            return cached
        if nbytes <= _LANE:
            cols = np.zeros(64, dtype=np.uint64)
            for b in range(64):
                cols[b] = _crc_bytes(1 << b, bytes(nbytes))
        else:  # square the operator of half the length
            half = self.shift_tables(nbytes // 2)
            units = np.array([1 << b for b in range(64)], dtype=np.uint64)
            cols = self._apply_tables(half, self._apply_tables(half, units))
        tables = self._tables_from_columns(cols)
        self.shift_cache[nbytes] = tables
        return tables

    def crc(self, crc: int, data) -> tuple[int, int]:
        """Process as many whole lanes as fit; return (crc, bytes consumed)."""
        np = _np
        # fewer, shorter rows for small inputs: numpy's per-call cost is per row
        lane = _LANE
        while lane > 64 and len(data) // lane < 4096:
            lane //= 2
        lanes = len(data) // lane
        words = lane // 8
        used = lanes * lane
        grid = np.frombuffer(data, dtype="<u8", count=lanes * words).reshape(lanes, words).T.copy()
        state = np.zeros(lanes, dtype=np.uint64)
        state[0] = crc  # lane 0 continues the running CRC; the others start from 0
        state_halves = state.view(np.uint16).reshape(lanes, 4)  # little-endian: low 16 bits first
        acc = np.empty(lanes, dtype=np.uint64)
        tmp = np.empty(lanes, dtype=np.uint64)
        tables = self.slice_tables
        for row in grid:
            np.bitwise_xor(state, row, out=state)
            np.take(tables[0], state_halves[:, 0], out=acc)
            for j in range(1, 4):
                np.take(tables[j], state_halves[:, j], out=tmp)
                np.bitwise_xor(acc, tmp, out=acc)
            state[:] = acc
        # fold the lanes pairwise: crc(A || B) = shift_|B|(crc(A)) ^ crc(B)
        span, leftovers = lane, []
        while len(state) > 1:
            if len(state) % 2:
                leftovers.append((int(state[-1]), span))
                state = state[:-1]
            state = self._apply_tables(self.shift_tables(span), state[0::2].copy()) ^ state[1::2]
            span *= 2
        value = int(state[0])
        for lane_crc, lane_span in reversed(leftovers):  # later in the stream = removed earlier
            value = int(self._apply_tables(self.shift_tables(lane_span), _np.array([value], dtype=_np.uint64))[0]) ^ lane_crc
        return value, used


_vector: _Vector | None = None
_warned = False


def crc64(data, crc: int = 0) -> int:
    """Continue ``crc`` over ``data`` (bytes-like). ``crc64(b) == crc64(b2, crc64(b1))`` for b = b1 + b2."""
    global _vector, _warned
    view = memoryview(data).cast("B")
    if len(view) >= _MIN_VECTOR:
        if _np is not None and sys.byteorder == "little":
            if _vector is None:
                _vector = _Vector()
            crc, used = _vector.crc(crc, view)
            view = view[used:]
        elif not _warned:
            _warned = True
            log.warning("numpy is not available (or the host is big-endian): RDB checksums are computed in pure Python (~10 MB/s)")
    return _crc_bytes(crc, view)


class Crc64:
    """A running CRC-64, fed chunk by chunk."""

    def __init__(self, value: int = 0):
        self.value = value

    def update(self, data) -> None:
        self.value = crc64(data, self.value)
