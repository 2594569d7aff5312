"""Fetch a point-in-time RDB from a live Redis over the replication protocol.

The worker introduces itself as a replica that only wants the snapshot, the way
``redis-cli --rdb`` does, so no shell or filesystem access on the Redis host is needed::

    AUTH [user] password
    REPLCONF capa eof        -> the master may stream the RDB straight from its fork
    REPLCONF rdb-only 1      -> ...and closes the link after it (no write stream kept)
    PSYNC ? -1               -> +FULLRESYNC <replid> <offset>, keepalive "\\n"s, then
                                $EOF:<40-char mark> <rdb bytes> <mark>   (diskless), or
                                $<length>\\r\\n <rdb bytes>               (disk-based)

The snapshot is streamed to ``out`` through a fixed 1 MiB buffer (constant memory) and
through :class:`RdbStreamCheck` (header and CRC-64 checked on the way).

Safety: without ``+replconf`` both REPLCONFs fail with NOPERM and a PSYNC would still be
served, silently, as a *disk* sync: the master BGSAVEs into its own dump.rdb (overwriting
it) and keeps a replica slot that receives the write stream. That is refused with an
explanation instead. A server older than 7.0 that does not know ``rdb-only`` is asked
with plain ``SYNC`` and the link is closed as soon as the RDB has arrived (said in the log).
"""

from __future__ import annotations

import logging
import socket
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import BinaryIO, Callable

from backup_dr.core.connections import ConnInfo
from backup_dr.core.errors import ConnectionConfigError, IntegrityError, SourceError
from backup_dr.core.progress import Progress
from backup_dr.core.redis.client import RedisTarget, auth_error, open_socket, target
from backup_dr.core.redis.rdb import RdbStreamCheck
from backup_dr.core.redis.resp import ConnectionClosed, RespError, RespSocket

log = logging.getLogger(__name__)

_MARK = 40
BUFFER = 1024 * 1024  # per flush: CRC, sha256 and write work on 1 MiB at a time


@dataclass(frozen=True)
class RdbFetch:
    """What one fetch produced; ``started_at`` is when the master accepted the sync (its fork)."""

    size: int
    rdb_version: int
    checksum: str | None
    transfer: str  # "diskless" | "disk"
    command: str  # "PSYNC" | "SYNC"
    master_replid: str | None
    master_repl_offset: int | None
    started_at: datetime
    seconds: float
    check: RdbStreamCheck = field(repr=False, compare=False)


def _replconf_refused(t: RedisTarget, reply: RespError) -> ConnectionConfigError:
    return ConnectionConfigError(
        f"{t.where}: user {t.user!r} may not run REPLCONF, so the snapshot was refused",
        detail=(
            f"the server answered {reply.text!r}. Without REPLCONF the master cannot be told that this "
            "client takes a diskless stream (capa eof) and only wants the RDB (rdb-only): a PSYNC would "
            "silently become a disk sync that BGSAVEs over the server's own dump.rdb and keeps a replica "
            "slot fed with the write stream"
        ),
        hint=(f"grant it: ACL SETUSER {t.user} +replconf (the minimal backup user is "
              f"'user {t.user} on >PASSWORD +sync +psync +replconf'), then ACL SAVE or CONFIG REWRITE"),
    )


def _call(rs: RespSocket, t: RedisTarget, *args: str):
    try:
        rs.send(*args)
        return rs.read_reply()
    except socket.timeout:
        raise SourceError(f"{t.where}: no reply to {args[0]} in time", hint="the server is overloaded or unreachable; the task retries") from None
    except (ConnectionClosed, OSError) as e:
        raise SourceError(f"{t.where}: connection lost during {args[0]}: {e}") from None


def _handshake(rs: RespSocket, t: RedisTarget, allow_disk_sync: bool) -> bool:
    """AUTH and REPLCONF; returns whether the server supports rdb-only."""
    if t.password is not None or t.username:
        args = ("AUTH", t.username, t.password or "") if t.username else ("AUTH", t.password)
        reply = _call(rs, t, *args)
        if isinstance(reply, RespError):
            if reply.code in ("WRONGPASS", "NOAUTH") or "invalid" in reply.text.lower():
                raise auth_error(t, reply.text)
            raise ConnectionConfigError(f"{t.where}: AUTH refused: {reply.text}",
                                        hint=f"check the login/password of Airflow connection {t.conn_id!r}")
    reply = _call(rs, t, "REPLCONF", "capa", "eof")
    if isinstance(reply, RespError):
        if reply.code == "NOAUTH":
            raise auth_error(t, reply.text)
        if reply.code == "NOPERM":
            raise _replconf_refused(t, reply)
        raise SourceError(f"{t.where}: REPLCONF capa eof failed: {reply.text}")
    reply = _call(rs, t, "REPLCONF", "rdb-only", "1")
    rdb_only = not isinstance(reply, RespError)
    if not rdb_only:
        if "Unrecognized REPLCONF option" not in reply.text:
            raise SourceError(f"{t.where}: REPLCONF rdb-only 1 failed: {reply.text}")
        log.warning("%s does not support REPLCONF rdb-only (Redis < 7.0): falling back to SYNC; "
                    "the link is closed as soon as the RDB has arrived", t.where)
    reply = _call(rs, t, "CONFIG", "GET", "repl-diskless-sync")
    if isinstance(reply, list) and len(reply) == 2 and reply[1] == b"no":
        if not allow_disk_sync:
            raise ConnectionConfigError(
                f"{t.where}: the server has repl-diskless-sync no, so a snapshot fetch would make it "
                "BGSAVE to disk and overwrite its own dump.rdb; refused",
                hint=("CONFIG SET repl-diskless-sync yes (and CONFIG REWRITE), or use mode 'bgsave' on a "
                      "worker next to the server, or pass allow_disk_sync=True to accept the disk sync"),
            )
        log.warning("%s: repl-diskless-sync is no; the master will BGSAVE to disk for this fetch (allowed)", t.where)
    elif isinstance(reply, RespError):
        log.info("%s: cannot read repl-diskless-sync (%s); a disk-based transfer will be reported if it happens",
                 t.where, reply.code)
    return rdb_only


def _read_preamble(rs: RespSocket, t: RedisTarget, command: str, deadline: float | None
                   ) -> tuple[bytes, str | None, int | None, datetime]:
    """Skip keepalives; return the ``$`` line, replid, offset and when the sync was accepted."""
    replid = offset = None
    accepted = datetime.now(timezone.utc)
    while True:
        if deadline is not None and time.monotonic() > deadline:
            raise SourceError(f"{t.where}: the master did not start sending the snapshot within the time limit",
                              hint="a large dataset takes a while to fork; raise the task timeout")
        try:
            line = rs.read_line()
        except socket.timeout:
            raise SourceError(f"{t.where}: the master sent nothing (not even a keepalive) after {command}",
                              hint="the server is overloaded or unreachable; the task retries") from None
        except (ConnectionClosed, OSError) as e:
            raise SourceError(f"{t.where}: connection lost waiting for the snapshot after {command}: {e}") from None
        if line == b"":
            continue  # keepalive while the master prepares the snapshot
        if line.startswith(b"+FULLRESYNC"):
            parts = line.decode().split()
            replid, offset = parts[1], int(parts[2])
            accepted = datetime.now(timezone.utc)
            continue
        if line.startswith(b"$"):
            return line, replid, offset, accepted
        if line.startswith(b"-"):
            text = line[1:].decode("utf-8", "replace")
            if text.startswith("NOPERM"):
                raise ConnectionConfigError(f"{t.where}: user {t.user!r} may not run {command}: {text}",
                                            hint=f"ACL SETUSER {t.user} +sync +psync +replconf")
            if text.startswith("NOAUTH"):
                raise auth_error(t, text)
            raise SourceError(f"{t.where}: the server refused {command}: {text}")
        raise IntegrityError(f"{t.where}: unexpected reply to {command}: {line[:80]!r}")


def fetch_rdb(conn: ConnInfo, out: BinaryIO, *, connect_timeout: float = 10.0, idle_timeout: float = 60.0,
              timeout: float | None = None, allow_disk_sync: bool = False,
              on_chunk: Callable[[int], None] | None = None, buffer_size: int = BUFFER) -> RdbFetch:
    """Stream a point-in-time RDB of the server behind ``conn`` into ``out``.

    :param out: a writable binary stream (the ArtifactWriter's HashingWriter)
    :param idle_timeout: longest silence tolerated (the master sends a keepalive every second)
    :param timeout: limit for the whole transfer, None for none
    :param allow_disk_sync: accept a master with ``repl-diskless-sync no`` (it will BGSAVE to disk)
    :param on_chunk: called with the byte count so far after every buffer written (progress hooks)
    :raises SourceError: transient (network, server busy): retry. Nothing complete is left behind.
    :raises ConnectionConfigError: wrong password or missing ACL rights: fix the connection.
    :raises IntegrityError: the stream was not a valid RDB.
    """
    t = target(conn)
    t0 = time.monotonic()
    deadline = t0 + timeout if timeout else None
    sock = open_socket(t, connect_timeout)
    try:
        rs = RespSocket(sock)
        rdb_only = _handshake(rs, t, allow_disk_sync)
        command = "PSYNC" if rdb_only else "SYNC"
        sock.settimeout(idle_timeout)
        rs.send_inline("PSYNC ? -1" if rdb_only else "SYNC")
        line, replid, offset, accepted = _read_preamble(rs, t, command, deadline)
        check = RdbStreamCheck(out, f"RDB from {t.where}")
        if line.startswith(b"$EOF:"):
            mark, length, transfer = line[5:], None, "diskless"
            if len(mark) != _MARK:
                raise IntegrityError(f"{t.where}: malformed end mark in {line[:60]!r}")
        else:
            mark, transfer = None, "disk"
            try:
                length = int(line[1:])
            except ValueError:
                raise IntegrityError(f"{t.where}: malformed snapshot header {line[:60]!r}") from None
            log.warning("%s used a disk-based transfer: the master ran BGSAVE and rewrote its dump.rdb for this "
                        "fetch; set repl-diskless-sync yes on it to avoid that", t.where)
        log.info("%s: %s accepted (%s transfer, replid %s, offset %s)", t.where, command, transfer, replid, offset)
        size = _stream_body(sock, rs, check, t, mark, length, deadline, idle_timeout, on_chunk, buffer_size)
        check.finish()
    finally:
        sock.close()
    seconds = time.monotonic() - t0
    checksum = f"{check.checksum:016x}" if check.checksum is not None else None
    return RdbFetch(size, check.version, checksum, transfer, command, replid, offset, accepted, seconds, check)


def _stream_body(sock, rs: RespSocket, sink: RdbStreamCheck, t: RedisTarget, mark: bytes | None, length: int | None,
                 deadline: float | None, idle_timeout: float, on_chunk, buffer_size: int) -> int:
    """Copy the snapshot body into ``sink``; return its size (without the end mark)."""
    pre = rs.take_buffered()  # snapshot bytes that arrived together with the "$" line
    buf = bytearray(max(buffer_size, 2 * _MARK, len(pre) + _MARK))
    mv = memoryview(buf)
    buf[: len(pre)] = pre
    pos, written = len(pre), 0
    remaining = length  # bulk form: bytes still expected
    progress = Progress(f"redis snapshot from {t.where}", total_bytes=length, unit="chunks")
    try:
        while True:
            if mark is not None:
                if pos >= _MARK and mv[pos - _MARK : pos] == mark:
                    sink.write(mv[: pos - _MARK])
                    return written + pos - _MARK
                if pos == len(buf):  # full: flush all but the last bytes (they may be half a mark)
                    sink.write(mv[: pos - _MARK])
                    written += pos - _MARK
                    progress.add(1, pos - _MARK)
                    buf[:_MARK] = buf[pos - _MARK : pos]
                    pos = _MARK
                    if on_chunk:
                        on_chunk(written)
            else:
                take = min(pos, remaining)
                if take == remaining or pos == len(buf):
                    sink.write(mv[:take])
                    written += take
                    remaining -= take
                    progress.add(1, take)
                    if remaining == 0:
                        return written
                    pos = 0
                    if on_chunk:
                        on_chunk(written)
            if deadline is not None and time.monotonic() > deadline:
                raise SourceError(f"{t.where}: snapshot transfer exceeded its time limit after {written + pos} bytes",
                                  hint="raise the task timeout, or back up a replica closer to the worker")
            try:
                n = sock.recv_into(mv[pos:] if remaining is None else mv[pos : pos + min(len(buf) - pos, remaining - pos)])
            except socket.timeout:
                raise SourceError(f"{t.where}: no data for {idle_timeout:.0f}s after {written + pos} bytes of the snapshot",
                                  hint="the master stalled or the network dropped; the task retries") from None
            except OSError as e:
                raise SourceError(f"{t.where}: connection dropped after {written + pos} bytes of the snapshot: "
                                  f"{e.strerror or e}; nothing was kept") from None
            if n == 0:
                raise SourceError(f"{t.where}: the server closed the connection after {written + pos} bytes of the "
                                  "snapshot, before its end; nothing was kept",
                                  hint="the server restarted, killed the replica link (client-output-buffer-limit?) "
                                       "or the network dropped; the task retries")
            pos += n
    finally:
        progress.done()
