"""One member for the whole dump (and slice), on a replica set with several members.

Three SecantusDB servers behind hello-rewriting proxies form a three-member set for the
driver (``replset_proxy.py``): real discovery and server selection over a seed list, one
primary, two secondaries, each holding a DIFFERENT copy of the data, so a dump that mixes
members is visible in its documents. A command listener records the server address of
every command the product sends.
"""

from __future__ import annotations

import datetime as dt
import io
import threading

import bson
import pymongo
import pytest
from bson import Timestamp
from pymongo import monitoring

from backup_dr.core.errors import SourceError
from backup_dr.core.mongo.archive import ArchiveReader
from backup_dr.core.mongo.codecs import decompressed_reader
from backup_dr.core.mongo.dump import dump_database
from backup_dr.core.mongo.sinks import ArchiveSink
from backup_dr.devstack.servers import MongoServer

from mongo_support import uniq
from replset_proxy import ProxiedReplicaSet

COLLS = [f"c{i}" for i in range(6)]


class Recorder(monitoring.CommandListener):
    """Every command the driver starts: (command name, server address)."""

    def __init__(self):
        self.log: list[tuple[str, str]] = []
        self.lock = threading.Lock()

    def started(self, event):
        with self.lock:
            self.log.append((event.command_name, f"{event.connection_id[0]}:{event.connection_id[1]}"))

    def succeeded(self, event):
        pass

    def failed(self, event):
        pass


@pytest.fixture(scope="module")
def three_members(tmp_path_factory):
    servers = [MongoServer(tmp_path_factory.mktemp(f"member{i}")).start() for i in range(3)]
    rs = ProxiedReplicaSet([s.port for s in servers])
    try:
        yield servers, rs
    finally:
        rs.close()
        for s in servers:
            s.cleanup()


def _seed(servers, name):
    """The same collections on every member, each member's documents tagged with its index."""
    for i, server in enumerate(servers):
        with server.client() as c:
            for coll in COLLS:
                c[name][coll].insert_many([{"_id": n, "member": i, "n": n} for n in range(120)])


def _members_in(archive: bytes, name: str) -> dict[str, set[int]]:
    seen: dict[str, set[int]] = {}
    with decompressed_reader(io.BytesIO(archive)) as stream:
        for db, coll, doc in ArchiveReader(stream).documents():
            if doc is not None and db == name:
                seen.setdefault(coll, set()).add(bson.decode(doc)["member"])
    return seen


def test_dump_sends_every_command_to_one_member_chosen_by_the_read_preference(three_members):
    servers, rs = three_members
    name = uniq("pinned")
    _seed(servers, name)
    recorder = Recorder()
    client = pymongo.MongoClient(rs.uri(), event_listeners=[recorder], serverSelectionTimeoutMS=10000)
    try:
        out = io.BytesIO()
        result = dump_database(client, name, ArchiveSink(out, "zstd", server_version="7.0.0", tool_version="t"),
                               read_pref="secondaryPreferred")
        assert client.topology_description.topology_type_name == "ReplicaSetWithPrimary"
        assert len(client.topology_description.server_descriptions()) == 3
    finally:
        client.close()
    addresses = {addr for _cmd, addr in recorder.log}
    assert len(addresses) == 1, f"the dump read from {len(addresses)} members: {recorder.log}"
    member = [m.address for m in rs.members].index(addresses.pop())
    assert _members_in(out.getvalue(), name) == {c: {member} for c in COLLS}  # every document from that member
    assert result.member == rs.members[member].address
    secondaries = {m.address for m in rs.members[1:]}
    assert result.member in secondaries and result.member_state == "secondary"
    assert {"find", "hello"} <= {cmd for cmd, _a in recorder.log}  # scans and positions: all from it
    assert result.counts == {c: 120 for c in COLLS}


def test_end_is_majority_committed_a_stalled_majority_fails_the_dump(three_members):
    servers, rs = three_members
    name = uniq("majority")
    _seed(servers, name)
    client = pymongo.MongoClient(rs.uri(), serverSelectionTimeoutMS=10000)
    rs.frozen_majority = Timestamp(int(dt.datetime(2020, 1, 1).timestamp()), 1)  # no member confirms anything newer
    try:
        with pytest.raises(SourceError, match="majority-committed position .* stays at"):
            dump_database(client, name, ArchiveSink(io.BytesIO(), "zstd", server_version="7.0.0", tool_version="t"),
                          read_pref="secondaryPreferred", majority_timeout=1.5)
        rs.frozen_majority = None  # the set confirms again: the same dump succeeds, ending at a majority position
        result = dump_database(client, name, ArchiveSink(io.BytesIO(), "zstd", server_version="7.0.0", tool_version="t"),
                               read_pref="secondaryPreferred", majority_timeout=10)
        assert result.end is not None and result.end >= result.start
    finally:
        rs.frozen_majority = None
        client.close()


# ----------------------------------------------------------------------------- credentials and TLS


def _make_tls_files(tmp):
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID
    import ipaddress

    now = dt.datetime.now(dt.timezone.utc)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "backup-dr test CA")])
    ca = (x509.CertificateBuilder().subject_name(ca_name).issuer_name(ca_name).public_key(ca_key.public_key())
          .serial_number(x509.random_serial_number()).not_valid_before(now - dt.timedelta(minutes=5))
          .not_valid_after(now + dt.timedelta(days=1))
          .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True).sign(ca_key, hashes.SHA256()))
    key = ec.generate_private_key(ec.SECP256R1())
    cert = (x509.CertificateBuilder().subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")]))
            .issuer_name(ca_name).public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(minutes=5)).not_valid_after(now + dt.timedelta(days=1))
            .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), critical=False)
            .sign(ca_key, hashes.SHA256()))
    pem = serialization.Encoding.PEM
    (tmp / "ca.pem").write_bytes(ca.public_bytes(pem))
    (tmp / "server.pem").write_bytes(cert.public_bytes(pem))
    (tmp / "server.key").write_bytes(key.private_bytes(pem, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()))
    return tmp / "ca.pem", tmp / "server.pem", tmp / "server.key"


class TlsAuthServer(MongoServer):
    """SecantusDB with SCRAM auth and TLS (both switched on after the user is created)."""

    tls: tuple | None = None

    def command(self):
        cmd = super().command()
        if self.tls:
            cmd += ["--tls-cert-file", str(self.tls[1]), "--tls-key-file", str(self.tls[2])]
        return cmd

    def ready(self) -> bool:
        if not self.tls:
            return super().ready()
        with pymongo.MongoClient(f"mongodb://127.0.0.1:{self.port}/?directConnection=true&tls=true&tlsCAFile={self.tls[0]}",
                                 serverSelectionTimeoutMS=300) as c:
            c.admin.command("ping")
        return True


@pytest.mark.slow  # two server restarts (auth, then TLS)
def test_the_direct_connection_keeps_credentials_and_tls(tmp_path):
    ca, cert, key = _make_tls_files(tmp_path)
    server = TlsAuthServer(tmp_path / "tls-auth").start()
    try:
        with server.client() as c:
            c.admin.command("createUser", "backup", pwd="pinned-secret-1", roles=["root"])
            c.tlsdb.items.insert_many([{"_id": i} for i in range(50)])
        server.stop()
        server.auth, server.tls = True, (ca, cert, key)
        server.start()
        recorder = Recorder()
        # a seed list WITHOUT directConnection: the driver discovers a replica set, so the dump
        # must open its own direct connection to the member, with these credentials and TLS files
        uri = (f"mongodb://backup:pinned-secret-1@127.0.0.1:{server.port}/admin?tls=true&tlsCAFile={ca}"
               "&serverSelectionTimeoutMS=5000")
        with pymongo.MongoClient(uri, event_listeners=[recorder]) as client:
            result = dump_database(client, "tlsdb", ArchiveSink(io.BytesIO(), "zstd", server_version="7.0.0", tool_version="t"),
                                   read_pref="primaryPreferred")
            assert client.topology_description.topology_type_name == "ReplicaSetWithPrimary"
        assert result.counts == {"items": 50} and result.member == f"127.0.0.1:{server.port}"
        assert {cmd for cmd, _a in recorder.log} >= {"find", "listCollections"}
    finally:
        server.cleanup()
