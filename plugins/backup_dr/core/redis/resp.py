"""The little of RESP2 the replication handshake needs, over a raw socket.

redis-py cannot be used for the handshake: after ``PSYNC`` the server stops speaking
request/reply and streams a snapshot, which a client library would try to parse as a
reply. This keeps its own receive buffer so the bytes that arrive together with the
``$EOF:`` line are handed to the snapshot reader, not lost.
"""

from __future__ import annotations

import socket
from dataclasses import dataclass

_MAX_LINE = 64 * 1024


@dataclass(frozen=True)
class RespError:
    """An error reply (``-ERR ...``, ``-NOPERM ...``): a value, so callers decide what it means."""

    text: str

    @property
    def code(self) -> str:
        return self.text.split(" ", 1)[0]


class ConnectionClosed(OSError):
    """The server closed the connection."""


class RespSocket:
    def __init__(self, sock: socket.socket):
        self.sock = sock
        self._buf = bytearray()

    def send(self, *args: str | bytes) -> None:
        parts = [b"*%d\r\n" % len(args)]
        for a in args:
            b = a.encode() if isinstance(a, str) else a
            parts.append(b"$%d\r\n%s\r\n" % (len(b), b))
        self.sock.sendall(b"".join(parts))

    def send_inline(self, line: str) -> None:
        """SYNC / PSYNC are sent inline, as Redis replicas and redis-cli do."""
        self.sock.sendall(line.encode() + b"\r\n")

    def _fill(self) -> None:
        data = self.sock.recv(65536)
        if not data:
            raise ConnectionClosed("connection closed by the server")
        self._buf += data

    def read_line(self) -> bytes:
        """One line without its line end. A bare ``\\n`` (the master's keepalive) reads as ``b''``."""
        while True:
            i = self._buf.find(b"\n")
            if i >= 0:
                line = bytes(self._buf[:i])
                del self._buf[: i + 1]
                return line[:-1] if line.endswith(b"\r") else line
            if len(self._buf) > _MAX_LINE:
                raise ValueError(f"reply line longer than {_MAX_LINE} bytes: {bytes(self._buf[:60])!r}...")
            self._fill()

    def _read_exact(self, n: int) -> bytes:
        while len(self._buf) < n:
            self._fill()
        data = bytes(self._buf[:n])
        del self._buf[:n]
        return data

    def read_reply(self):
        """str (simple string), RespError, int, bytes | None (bulk) or list (array)."""
        line = self.read_line()
        while line == b"":  # keepalive newlines are not replies
            line = self.read_line()
        kind, rest = line[:1], line[1:]
        if kind == b"+":
            return rest.decode("utf-8", "replace")
        if kind == b"-":
            return RespError(rest.decode("utf-8", "replace"))
        if kind == b":":
            return int(rest)
        if kind == b"$":
            n = int(rest)
            if n < 0:
                return None
            return self._read_exact(n + 2)[:-2]
        if kind == b"*":
            n = int(rest)
            return None if n < 0 else [self.read_reply() for _ in range(n)]
        raise ValueError(f"not a RESP reply: {line[:60]!r}")

    def take_buffered(self) -> bytes:
        """Bytes already received beyond the last line read (the start of the snapshot)."""
        data = bytes(self._buf)
        self._buf.clear()
        return data
