"""Validate RDB files before they count as backups.

Two layers, because each catches what the other cannot:

* :class:`RdbStreamCheck` sits in the write path and checks the ``REDIS00nn`` header and
  the trailing CRC-64 while the bytes stream in, so a truncated or garbled transfer is
  refused without reading the file a second time.
* :func:`check_rdb_file` runs ``redis-check-rdb`` when it is installed (Debian's
  redis-tools/redis-server): it decodes every key, so it also catches an RDB whose checksum
  was disabled (``rdbchecksum no`` writes a zero trailer). Its ``Selecting DB ID`` lines
  give the offset of every database section; the ``RESIZEDB`` opcode that follows holds
  the exact number of keys (and keys with a TTL) the server wrote for that database: the
  per-db counts recorded in the manifest come from the snapshot itself, not from an INFO
  taken a moment before or after it.
"""

from __future__ import annotations

import logging
import re
import shutil
import subprocess
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO

from backup_dr.core.errors import IntegrityError
from backup_dr.core.redis.crc64 import Crc64

log = logging.getLogger(__name__)

_MAGIC = b"REDIS"
_HEADER = 9  # "REDIS" + 4 ASCII digits
_OPCODE_EOF = 0xFF
_OPCODE_RESIZEDB = 0xFB
_TOOL_TIMEOUT = 3600


def parse_header(head: bytes, where: str) -> int:
    """The RDB version from the first 9 bytes; IntegrityError naming what was found instead."""
    if len(head) < _HEADER or not head.startswith(_MAGIC) or not head[5:9].isdigit():
        raise IntegrityError(
            f"{where} is not an RDB file: it starts with {bytes(head[:16])!r}, not REDIS00nn",
            hint="the server sent something else (an error text?) or the file is not a Redis snapshot",
        )
    version = int(head[5:9])
    if version < 1:
        raise IntegrityError(f"{where}: RDB version {version} is not valid")
    return version


class RdbStreamCheck:
    """A write-through stream: passes bytes to ``out`` and checks header and CRC-64 on the way.

    The last 8 bytes of an RDB are the little-endian CRC-64 of everything before them, so
    those 8 bytes are held back from the running CRC until :meth:`finish`.
    """

    def __init__(self, out: BinaryIO | None, where: str):
        self.out = out
        self.where = where
        self.size = 0
        self.version: int | None = None
        self.checksum: int | None = None
        self._crc = Crc64()
        self._head = b""
        self._held = b""  # the last 8 bytes seen: not yet part of the CRC
        self._last_crc_byte: int | None = None

    def write(self, data) -> int:
        n = len(data)
        if not n:
            return 0
        if self.version is None:
            self._head += bytes(data[: _HEADER - len(self._head)])
            if len(self._head) >= _HEADER:
                self.version = parse_header(self._head, self.where)
        if self.out is not None:
            self.out.write(data)
        if n >= 8:
            if self._held:
                self._crc.update(self._held)
                self._last_crc_byte = self._held[-1]
            body = memoryview(data)[:-8]
            if len(body):
                self._crc.update(body)
                self._last_crc_byte = body[-1]
            self._held = bytes(data[-8:])
        else:
            joined = self._held + bytes(data)
            spill = joined[:-8]
            if spill:
                self._crc.update(spill)
                self._last_crc_byte = spill[-1]
            self._held = joined[-8:]
        self.size += n
        return n

    def finish(self) -> int | None:
        """Check the trailer. Returns the checksum, or None when the server disabled it (zero)."""
        if self.version is None or self.size < _HEADER + 1 + 8:
            raise IntegrityError(f"{self.where} is truncated: only {self.size} bytes, too short for an RDB file")
        if self._last_crc_byte != _OPCODE_EOF:
            raise IntegrityError(
                f"{self.where} is truncated or corrupt: no end-of-file opcode before the checksum",
                detail=f"{self.size} bytes received",
            )
        stored = int.from_bytes(self._held, "little")
        if stored == 0:
            log.warning("%s: the server writes RDBs without a checksum (rdbchecksum no); "
                        "only the sha256 recorded from here on protects it", self.where)
            self.checksum = None
            return None
        if stored != self._crc.value:
            raise IntegrityError(
                f"{self.where}: RDB checksum mismatch (corrupted in transfer or on disk)",
                detail=f"trailer says {stored:016x}, the bytes hash to {self._crc.value:016x}; {self.size} bytes",
            )
        self.checksum = stored
        return stored


def check_stream(src: BinaryIO, where: str, chunk: int = 4 * 1024 * 1024) -> RdbStreamCheck:
    """Read a whole RDB stream through :class:`RdbStreamCheck` (header + CRC)."""
    check = RdbStreamCheck(None, where)
    for block in iter(lambda: src.read(chunk), b""):
        check.write(block)
    check.finish()
    return check


@dataclass(frozen=True)
class RdbCheck:
    """What :func:`check_rdb_file` learned. Counts are empty when no checker was available."""

    version: int
    size: int
    checksum: str | None
    keys: dict[str, int] = field(default_factory=dict)  # {"db0": n, ...}
    expires: dict[str, int] = field(default_factory=dict)
    checked_with: str = "crc64"
    total_keys: int | None = None


def redis_check_tool(name: str) -> str | None:
    """Path of ``redis-check-rdb`` / ``redis-check-aof`` if installed (Debian: redis-tools)."""
    return shutil.which(name)


def read_length(buf: bytes, i: int) -> tuple[int, int]:
    """Decode an RDB length at ``buf[i]``; return (value, next index)."""
    kind = buf[i] >> 6
    if kind == 0:
        return buf[i] & 0x3F, i + 1
    if kind == 1:
        return ((buf[i] & 0x3F) << 8) | buf[i + 1], i + 2
    if buf[i] == 0x80:
        return int.from_bytes(buf[i + 1 : i + 5], "big"), i + 5
    if buf[i] == 0x81:
        return int.from_bytes(buf[i + 1 : i + 9], "big"), i + 9
    raise ValueError(f"not a plain length (encoding byte 0x{buf[i]:02x})")


def resizedb_at(f: BinaryIO, offset: int) -> tuple[int, int] | None:
    """(keys, keys with TTL) from the RESIZEDB opcode at ``offset``, if there is one."""
    f.seek(offset)
    buf = f.read(19)
    if not buf or buf[0] != _OPCODE_RESIZEDB:
        return None
    try:
        keys, i = read_length(buf, 1)
        expires, _ = read_length(buf, i)
    except (ValueError, IndexError):
        return None
    return keys, expires


_SELECT = re.compile(r"\[offset (\d+)\] Selecting DB ID (\d+)")
_KEYS_READ = re.compile(r"\[info\] (\d+) keys read")


def _tool_failure(tool: str, path: Path, output: str) -> IntegrityError:
    tail = "\n".join(output.strip().splitlines()[-6:])
    return IntegrityError(
        f"{path.name} failed {Path(tool).name}: the snapshot is corrupt or truncated",
        detail=tail,
        hint="the backup does not count; take a new one (the source server's own data is unaffected)",
    )


def check_rdb_file(path: str | Path, *, stream_checked: RdbStreamCheck | None = None) -> RdbCheck:
    """Validate an RDB file and count its keys per database.

    ``stream_checked`` is the :class:`RdbStreamCheck` the file was written through, when
    there was one: the header and CRC are then not read again.
    """
    path = Path(path)
    if stream_checked is None:
        with open(path, "rb") as f:
            stream_checked = check_stream(f, path.name)
    checksum = f"{stream_checked.checksum:016x}" if stream_checked.checksum is not None else None
    tool = redis_check_tool("redis-check-rdb")
    if tool is None:
        log.info("redis-check-rdb is not installed: %s checked by header and CRC-64 only, no per-db counts", path.name)
        return RdbCheck(stream_checked.version, stream_checked.size, checksum)
    proc = subprocess.run([tool, str(path)], capture_output=True, text=True, errors="replace", timeout=_TOOL_TIMEOUT)
    output = proc.stdout + proc.stderr
    if proc.returncode != 0:
        if "Can't handle RDB format version" in output:
            log.warning("%s is RDB version %s, newer than the installed redis-check-rdb understands; "
                        "checked by header and CRC-64 only", path.name, stream_checked.version)
            return RdbCheck(stream_checked.version, stream_checked.size, checksum)
        raise _tool_failure(tool, path, output)
    keys: dict[str, int] = {}
    expires: dict[str, int] = {}
    with open(path, "rb") as f:
        for offset, db in _SELECT.findall(output):
            found = resizedb_at(f, int(offset))
            if found is not None:
                keys[f"db{db}"], expires[f"db{db}"] = found
    m = _KEYS_READ.search(output)
    total = int(m.group(1)) if m else None
    if total is not None and sum(keys.values()) != total:
        log.warning("%s: per-db RESIZEDB counts sum to %d but redis-check-rdb read %d keys; recording the latter only",
                    path.name, sum(keys.values()), total)
        keys, expires = {}, {}
    return RdbCheck(stream_checked.version, stream_checked.size, checksum, keys, expires, "redis-check-rdb", total)
