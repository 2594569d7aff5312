"""Helpers for the encryption unit tests: keys, keyrings, seal/open of byte strings."""

from __future__ import annotations

import base64
import io

from backup_dr.core.connections import ConnInfo
from backup_dr.core.crypto.keys import Keyring, fingerprint
from backup_dr.core.crypto.stream import Decryptor, EncryptingWriter

CONTEXT = "critical_data.mongodb.full.20261126T080000Z/korea_public_data.archive.gz"


def b64(key: bytes) -> str:
    return base64.b64encode(key).decode()


def ring(conn_id: str = "backup_encryption_key", active: str | None = None, **keys: bytes) -> Keyring:
    extra = {"keys": {k: b64(v) for k, v in keys.items()}}
    if active:
        extra["active"] = active
    return Keyring.from_conn(ConnInfo(conn_id, extra=extra))


def seal(data: bytes, key: bytes, *, key_id: str = "k1", chunk_size: int = 4096, context: str = CONTEXT,
         piece: int = 1000) -> bytes:
    out = io.BytesIO()
    w = EncryptingWriter(out, key, key_id=key_id, key_fp=fingerprint(key), context=context, chunk_size=chunk_size)
    for i in range(0, len(data), piece):
        w.write(data[i:i + piece])
    w.close()
    return out.getvalue()


def open_sealed(ct: bytes, keyring: Keyring, *, context: str | None = CONTEXT, piece: int = 777, got: bytearray | None = None) -> bytes:
    got = bytearray() if got is None else got
    d = Decryptor(got.extend, keyring.lookup("test"), where="test file", expected_context=context)
    for i in range(0, len(ct), piece):
        d.write(ct[i:i + piece])
    d.finish()
    return bytes(got)
