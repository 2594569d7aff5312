"""Master keys: a keyring read from a connection, looked up by key id and fingerprint.

The connection (Airflow's, or ``AIRFLOW_CONN_<ID>`` / ``$BACKUP_DR_CONNECTIONS_FILE`` for the
CLI) holds either

* one key: ``password`` = base64 of 32 random bytes (key id ``extra.key_id``, default
  ``default``), or
* a keyring: ``extra = {"keys": {"<id>": "<base64>", ...}, "active": "<id>"}``.

New backups use the active key; a backup names its key id and fingerprint in its manifest
and file header, so restoring it needs that key still in the keyring. That is the rotation
procedure: add the new key, make it active, keep the old one until the last backup that
names it has expired and been pruned (``python -m backup_dr keys needed``).

Why a fingerprint besides the id: it tells "you gave the wrong key for k1" apart from
"the file was tampered with", and it finds a key that was renamed in the keyring. It is
HMAC-SHA256 of a fixed label under the key, truncated to 8 bytes: it reveals nothing usable
about a 256-bit random key.

How connections are resolved is pluggable (:func:`set_connection_resolver`): the core reads
the environment; the Airflow operators install Airflow's connection lookup; the CLI
installs one that also scrubs the key material from every message.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import os
import re
from dataclasses import dataclass, field
from typing import Callable

from backup_dr.core.connections import ConnInfo, conn_from_env
from backup_dr.core.crypto.stream import DEFAULT_CHUNK, KEY_BYTES
from backup_dr.core.errors import ConnectionConfigError

_KEY_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")
_FP_LABEL = b"backup_dr master key fingerprint v1"
DEFAULT_KEY_ID = "default"

Resolver = Callable[[str], ConnInfo]
_resolver: Resolver = conn_from_env


class EncryptionKeyError(ConnectionConfigError):
    """A master key is missing, malformed or wrong. Names key ids and connection ids, never key bytes."""


def fingerprint(key: bytes) -> bytes:
    return hmac.new(key, _FP_LABEL, hashlib.sha256).digest()[:8]


def generate_key() -> str:
    """A new random master key, base64 (what goes into the connection)."""
    return base64.b64encode(os.urandom(KEY_BYTES)).decode("ascii")


@dataclass(frozen=True)
class MasterKey:
    key_id: str
    key: bytes = field(repr=False)

    @property
    def fp(self) -> bytes:
        return fingerprint(self.key)

    @property
    def fp_hex(self) -> str:
        return self.fp.hex()


def _decode_key(text: object, conn_id: str, key_id: str) -> bytes:
    where = f"connection {conn_id!r}, key {key_id!r}"
    if not isinstance(text, str) or not text.strip():
        raise EncryptionKeyError(f"{where}: the key must be a base64 string")
    s = text.strip()
    try:
        raw = base64.b64decode(s + "=" * (-len(s) % 4), altchars=b"-_" if ("-" in s or "_" in s) else None, validate=True)
    except (binascii.Error, ValueError):
        raise EncryptionKeyError(f"{where}: the key is not valid base64",
                                 hint="generate one with `python -m backup_dr keys generate`") from None
    if len(raw) != KEY_BYTES:
        raise EncryptionKeyError(f"{where}: the key decodes to {len(raw)} bytes, an AES-256 key needs {KEY_BYTES}",
                                 hint="generate one with `python -m backup_dr keys generate`")
    return raw


@dataclass(frozen=True)
class Keyring:
    """The master keys of one connection, and which one encrypts new backups."""

    conn_id: str
    keys: tuple[MasterKey, ...]
    active_id: str
    secrets: tuple[str, ...] = field(default=(), repr=False)  # the texts as given, for scrubbing

    @classmethod
    def from_conn(cls, conn: ConnInfo) -> "Keyring":
        extra = conn.extra or {}
        ring = extra.get("keys")
        if ring is not None and conn.password:
            raise EncryptionKeyError(f"connection {conn.conn_id!r} holds both a password and extra.keys",
                                     hint="use one: the password for a single key, or extra.keys + extra.active for a keyring")
        if ring is None:
            if not conn.password:
                raise EncryptionKeyError(
                    f"connection {conn.conn_id!r} holds no encryption key",
                    hint='put a base64 key in its password, or extra {"keys": {"<id>": "<base64>"}, "active": "<id>"}')
            key_id = str(extra.get("key_id") or DEFAULT_KEY_ID)
            items = {key_id: conn.password}
            active = key_id
        else:
            if not isinstance(ring, dict) or not ring:
                raise EncryptionKeyError(f"connection {conn.conn_id!r}: extra.keys must be a non-empty mapping of key id to base64 key")
            items = ring
            active = extra.get("active")
            if active is None and len(ring) == 1:
                active = next(iter(ring))
            if active not in ring:
                raise EncryptionKeyError(
                    f"connection {conn.conn_id!r}: extra.active {active!r} is not one of its key ids ({', '.join(map(str, ring))})",
                    hint="name the key new backups should use in extra.active")
        keys = []
        for key_id, text in items.items():
            if not isinstance(key_id, str) or not _KEY_ID.match(key_id):
                raise EncryptionKeyError(f"connection {conn.conn_id!r}: key id {key_id!r} must be 1-64 letters, digits, '.', '_' or '-'")
            keys.append(MasterKey(key_id, _decode_key(text, conn.conn_id, key_id)))
        fps = [k.fp for k in keys]
        if len(set(fps)) != len(fps):
            raise EncryptionKeyError(f"connection {conn.conn_id!r} lists the same key under two ids")
        return cls(conn.conn_id, tuple(keys), str(active), tuple(str(t).strip() for t in items.values()))

    @property
    def active(self) -> MasterKey:
        return next(k for k in self.keys if k.key_id == self.active_id)

    @property
    def ids(self) -> list[str]:
        return [k.key_id for k in self.keys]

    def find(self, key_id: str, fp: bytes, *, where: str = "") -> MasterKey:
        """The key a file names: by fingerprint (a renamed key is still found), else a clear error."""
        for k in self.keys:
            if k.fp == fp:
                return k
        prefix = f"{where}: " if where else ""
        same_id = [k for k in self.keys if k.key_id == key_id]
        if same_id:
            raise EncryptionKeyError(
                f"{prefix}wrong key: connection {self.conn_id!r} holds a key {key_id!r} with fingerprint {same_id[0].fp_hex}, "
                f"but the backup was encrypted with a key {key_id!r} of fingerprint {fp.hex()}",
                hint="the key was replaced instead of rotated; restore the original key material under that id")
        raise EncryptionKeyError(
            f"{prefix}the backup was encrypted with master key {key_id!r} (fingerprint {fp.hex()}), which connection "
            f"{self.conn_id!r} does not hold (it has: {', '.join(self.ids)})",
            hint="add that key back to the keyring (extra.keys); rotation keeps old keys until their backups expire "
                 "(python -m backup_dr keys needed)")

    def lookup(self, where: str = "") -> Callable[[str, bytes], bytes]:
        """A Decryptor key lookup over this keyring."""
        return lambda key_id, fp: self.find(key_id, fp, where=where).key


def set_connection_resolver(resolver: Resolver) -> Resolver:
    """Install how key connections are resolved (Airflow, CLI, env); returns the previous resolver."""
    global _resolver
    previous, _resolver = _resolver, resolver
    return previous


def load_keyring(conn_id: str) -> Keyring:
    """The keyring held by connection ``conn_id``, through the installed resolver."""
    try:
        conn = _resolver(conn_id)
    except EncryptionKeyError:
        raise
    except ConnectionConfigError as e:
        raise EncryptionKeyError(f"encryption key connection {conn_id!r} is not available: {e.message}",
                                 hint=e.hint or f"define it (AIRFLOW_CONN_{conn_id.upper()} for the CLI)") from None
    return Keyring.from_conn(conn)


@dataclass(frozen=True)
class BackupEncryption:
    """What an ArtifactWriter needs to encrypt a class's backups: the active key and where it came from."""

    key_conn_id: str
    key: MasterKey
    chunk_size: int = DEFAULT_CHUNK

    @classmethod
    def from_keyring(cls, keyring: Keyring, chunk_size: int = DEFAULT_CHUNK) -> "BackupEncryption":
        return cls(keyring.conn_id, keyring.active, chunk_size)


def encryption_for_class(backup_class) -> BackupEncryption | None:
    """The encryption a policy class asks for (None when it is not encrypted); resolves its key now,
    so a missing or malformed key fails the task before any data is read."""
    spec = getattr(backup_class, "encryption", None)
    if spec is None:
        return None
    return BackupEncryption.from_keyring(load_keyring(spec.key_conn_id))
