"""Encrypted backup files on disk: the manifest entry of a sealed file, and verified decryption.

The manifest's ``sha256``/``size`` describe the CIPHERTEXT (what every store holds, so
replication and ``verify_copy`` work unchanged); ``plain_sha256``/``plain_size`` the
plaintext a restore gets back. :func:`decrypt_to_file` checks both, and the file header
against the manifest entry, and deletes its output on any mismatch.
"""

from __future__ import annotations

import hashlib
import io
import os
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO, Callable

from backup_dr.core.crypto.keys import BackupEncryption, Keyring
from backup_dr.core.crypto.stream import CHUNK_READ, Decryptor, EncryptingWriter, Header
from backup_dr.core.errors import IntegrityError

_HINT = "restore from another store's copy (python -m backup_dr verify <id> shows which copies are good)"


def context_of(backup_id: str, name: str) -> str:
    """What a file's header binds it to: one file of one backup."""
    return f"{backup_id}/{name}"


def encrypting_writer(raw: BinaryIO, enc: BackupEncryption, backup_id: str, name: str) -> EncryptingWriter:
    return EncryptingWriter(raw, enc.key.key, key_id=enc.key.key_id, key_fp=enc.key.fp,
                            context=context_of(backup_id, name), chunk_size=enc.chunk_size)


def sealed_metadata(sealer: EncryptingWriter, enc: BackupEncryption) -> dict:
    """``FileEntry.encryption`` of a file written through ``sealer``."""
    return {**sealer.header.metadata(), "key_conn_id": enc.key_conn_id}


def key_conn_id(entry) -> str:
    conn = (entry.encryption or {}).get("key_conn_id")
    if not conn:
        raise IntegrityError(f"{entry.name}: the manifest marks it encrypted but names no key connection",
                             hint="decrypt it with `python -m backup_dr decrypt ... --key-conn <id>`")
    return conn


def require_key(entry, keyring: Keyring, where: str) -> None:
    """Fail early, naming the key id and connection, when ``keyring`` lacks the key ``entry`` needs."""
    enc = entry.encryption or {}
    try:
        fp = bytes.fromhex(str(enc.get("key_fingerprint", "")))
    except ValueError:
        raise IntegrityError(f"{where}: the manifest's key fingerprint is malformed", hint=_HINT) from None
    keyring.find(str(enc.get("key_id", "?")), fp, where=where)


def header_checker(entry, where: str) -> Callable[[Header], None]:
    """Compare a file's header with what the manifest recorded for it (a swapped or rewritten file)."""

    def check(header: Header) -> None:
        recorded = entry.encryption or {}
        actual = header.metadata()
        for field in ("scheme", "key_id", "key_fingerprint", "chunk_size", "nonce_prefix", "wrapped_key", "context"):
            if field in recorded and recorded[field] != actual[field]:
                raise IntegrityError(f"{where}: {entry.name}: the encryption header does not match the manifest ({field} differs)",
                                     detail="the file was replaced or its header altered", hint=_HINT)

    return check


@dataclass(frozen=True)
class Decrypted:
    size: int  # ciphertext bytes read
    sha256: str  # of the ciphertext
    plain_size: int
    plain_sha256: str


def decrypt_stream(src: BinaryIO, out: Callable[[bytes], object], keyring: Keyring, *, where: str,
                   context: str | None, check_header: Callable[[Header], None] | None = None,
                   on_read: Callable[[int], None] | None = None) -> Decrypted:
    """Decrypt ``src`` into ``out`` (only authenticated bytes reach it); hashes both sides."""
    dec = Decryptor(out, keyring.lookup(where), where=where, expected_context=context, check_header=check_header)
    h, n = hashlib.sha256(), 0
    for block in iter(lambda: src.read(CHUNK_READ), b""):
        h.update(block)
        n += len(block)
        dec.write(block)
        if on_read is not None:
            on_read(len(block))
    dec.finish()
    return Decrypted(n, h.hexdigest(), dec.plain_size, dec.plain_sha256)


def open_private(path: Path):
    """A new file only the owner can read: decrypted backups are as sensitive as the database."""
    path.parent.mkdir(parents=True, exist_ok=True)
    return os.fdopen(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600), "wb")


def decrypt_to_file(src: BinaryIO, dest: Path, entry, keyring: Keyring, *, backup_id: str, where: str,
                    on_read: Callable[[int], None] | None = None) -> Decrypted:
    """Decrypt one manifest file into ``dest``, verified three ways (header vs manifest, every chunk's
    tag, ciphertext and plaintext sha256 vs manifest); ``dest`` is deleted on any failure."""
    try:
        with open_private(dest) as out:
            result = decrypt_stream(src, out.write, keyring, where=where, context=context_of(backup_id, entry.name),
                                    check_header=header_checker(entry, where), on_read=on_read)
        if (result.size, result.sha256) != (entry.size, entry.sha256):
            raise IntegrityError(f"{where}: {entry.name} does not match its manifest (corrupt or tampered)",
                                 detail=f"size {result.size} vs {entry.size}, sha256 {result.sha256[:16]}… vs {entry.sha256[:16]}…",
                                 hint=_HINT)
        if entry.plain_sha256 and (result.plain_size, result.plain_sha256) != (entry.plain_size, entry.plain_sha256):
            raise IntegrityError(f"{where}: {entry.name} decrypts to other bytes than the manifest recorded",
                                 detail=f"plaintext {result.plain_size} bytes sha256 {result.plain_sha256[:16]}…, "
                                        f"manifest {entry.plain_size} bytes {entry.plain_sha256[:16]}…", hint=_HINT)
    except BaseException:
        dest.unlink(missing_ok=True)
        raise
    return result


def encrypt_file_in_place(store, key: str, enc: BackupEncryption, backup_id: str, name: str,
                          on_read: Callable[[int], None] | None = None) -> tuple[object, EncryptingWriter]:
    """Replace a plaintext file of a local store with its encryption (temp file + atomic rename).

    Returns the store's hashing writer (ciphertext size/sha256) and the sealer (plaintext ones).
    """
    with open(store.path(key), "rb") as src, store.open_write(key) as w:
        sealer = encrypting_writer(w, enc, backup_id, name)
        for block in iter(lambda: src.read(CHUNK_READ), b""):
            sealer.write(block)
            if on_read is not None:
                on_read(len(block))
        sealer.close()
    return w, sealer


class _DecryptingReader(io.RawIOBase):
    """Plaintext of an encrypted file as a readable stream (only authenticated bytes come out)."""

    def __init__(self, src: BinaryIO, keyring: Keyring, *, where: str, context: str):
        self._src, self._buf, self._eof = src, bytearray(), False
        self._dec = Decryptor(self._buf.extend, keyring.lookup(where), where=where, expected_context=context)

    def readable(self) -> bool:
        return True

    def readinto(self, b) -> int:
        while not self._buf and not self._eof:
            block = self._src.read(CHUNK_READ)
            if block:
                self._dec.write(block)
            else:
                self._dec.finish()
                self._eof = True
        n = min(len(b), len(self._buf))
        b[:n] = self._buf[:n]
        del self._buf[:n]
        return n

    def close(self) -> None:
        self._src.close()
        super().close()


def open_decrypted(path: Path, enc: BackupEncryption, *, backup_id: str, name: str) -> BinaryIO:
    """Read back a file this process just encrypted with ``enc`` (e.g. to re-read a dump before
    its manifest is written), decrypting as it goes."""
    keyring = Keyring(enc.key_conn_id, (enc.key,), enc.key.key_id)
    raw = _DecryptingReader(open(path, "rb"), keyring, where=f"{backup_id}/{name}", context=context_of(backup_id, name))
    return io.BufferedReader(raw, CHUNK_READ)
