"""A three-member replica set for the driver, built from three SecantusDB servers.

SecantusDB advertises a one-node set. Here each of three servers sits behind a small TCP
proxy on 127.0.0.1 that passes every byte through and rewrites only the server's ``hello``
replies (OP_MSG, also the streamed ones the driver's monitor awaits) so the three proxies
describe ONE set: the same ``setName`` and ``hosts`` (the proxies' addresses), member 0 the
primary, 1 and 2 secondaries. pymongo's real server discovery and selection then run over
several members (a ``secondaryPreferred`` read may go to either secondary), which is what a
dump on a production replica set meets. The members do not replicate: a test seeds each
one, on purpose with different data, so reads from different members are visible.

The product is not told about any of this; it sees a seed list and a ``replicaSet`` name.
"""

from __future__ import annotations

import socket
import struct
import threading

import bson

OP_MSG = 2013
_HEADER = struct.Struct("<iiii")
_CHECKSUM, _MORE_TO_COME = 1, 2


def _recv_exact(sock: socket.socket, n: int) -> bytes | None:
    buf = bytearray()
    while len(buf) < n:
        chunk = sock.recv(n - len(buf))
        if not chunk:
            return None
        buf += chunk
    return bytes(buf)


def _shutdown(*socks: socket.socket) -> None:
    for s in socks:
        try:
            s.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass


class MemberProxy:
    """One member: listens on 127.0.0.1, forwards to a SecantusDB port, rewrites its hello replies."""

    def __init__(self, backend_port: int, index: int, replset: "ProxiedReplicaSet"):
        self.backend_port, self.index, self.replset = backend_port, index, replset
        self.listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.listener.bind(("127.0.0.1", 0))
        self.listener.listen(64)
        self.port = self.listener.getsockname()[1]
        self._closed = False
        self._sockets: list[socket.socket] = []
        threading.Thread(target=self._accept, daemon=True, name=f"proxy-{self.port}").start()

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    def _accept(self) -> None:
        while not self._closed:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            server = socket.create_connection(("127.0.0.1", self.backend_port))
            self._sockets += [client, server]
            threading.Thread(target=self._pipe, args=(client, server), daemon=True).start()
            threading.Thread(target=self._replies, args=(server, client), daemon=True).start()

    def _pipe(self, src: socket.socket, dst: socket.socket) -> None:
        try:
            while True:
                data = src.recv(65536)
                if not data:
                    break
                dst.sendall(data)
        except OSError:
            pass
        finally:
            _shutdown(src, dst)

    def _replies(self, server: socket.socket, client: socket.socket) -> None:
        try:
            while True:
                head = _recv_exact(server, 16)
                if head is None:
                    break
                length, request_id, response_to, opcode = _HEADER.unpack(head)
                body = _recv_exact(server, length - 16)
                if body is None:
                    break
                if opcode == OP_MSG:
                    body = self._rewrite(body)
                    head = _HEADER.pack(16 + len(body), request_id, response_to, opcode)
                client.sendall(head + body)
        except OSError:
            pass
        finally:
            _shutdown(server, client)

    def _rewrite(self, body: bytes) -> bytes:
        flags = struct.unpack_from("<I", body)[0]
        if body[4] != 0:  # only a reply whose first section is the body document
            return body
        size = struct.unpack_from("<i", body, 5)[0]
        doc = bson.decode(body[5:5 + size])
        if "maxWireVersion" not in doc or "setName" not in doc:
            return body
        rs = self.replset
        me = self.address
        primary = self.index == 0
        doc.update({"setName": rs.name, "hosts": [m.address for m in rs.members], "me": me,
                    "primary": rs.members[0].address, "isWritablePrimary": primary, "ismaster": primary,
                    "secondary": not primary})
        if not primary:
            doc.pop("electionId", None)
        if rs.frozen_majority is not None and isinstance(doc.get("lastWrite"), dict):
            doc["lastWrite"]["majorityOpTime"] = {"ts": rs.frozen_majority, "t": 1}
        rest = body[5 + size:]
        if flags & _CHECKSUM:  # the checksum no longer matches: drop it
            rest, flags = rest[:-4], flags & ~_CHECKSUM
        return struct.pack("<I", flags) + b"\x00" + bson.encode(doc) + rest

    def close(self) -> None:
        self._closed = True
        self.listener.close()
        for s in self._sockets:
            try:
                s.close()
            except OSError:
                pass


class ProxiedReplicaSet:
    """Proxies for the given SecantusDB ports; member 0 is the primary."""

    def __init__(self, backend_ports: list[int], name: str = "rs_proxied"):
        self.name = name
        #: when set, every member reports this majority-committed position (a set whose
        #: majority stopped confirming writes: secondaries down or lagging)
        self.frozen_majority = None
        self.members: list[MemberProxy] = []
        for i, port in enumerate(backend_ports):
            self.members.append(MemberProxy(port, i, self))

    @property
    def seed_list(self) -> str:
        return ",".join(m.address for m in self.members)

    def uri(self, **options: str) -> str:
        query = "&".join([f"replicaSet={self.name}"] + [f"{k}={v}" for k, v in options.items()])
        return f"mongodb://{self.seed_list}/?{query}"

    def close(self) -> None:
        for m in self.members:
            m.close()
