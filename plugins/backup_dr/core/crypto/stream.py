"""The encrypted file format ``backup_dr-aead-v1``: streaming AES-256-GCM in chunks.

Why chunks: one GCM message over a multi-GB dump would have to be held (or re-read) to
verify its tag before a single byte is trusted. Sealing every 1 MiB chunk separately keeps
memory constant and lets a reader refuse bad bytes as soon as it meets them, while the
chunk counter in the nonce and a "final" flag in the associated data make reordering,
truncation and extension of the chunk sequence detectable (the STREAM construction of
Hoang, Reyhanitabar, Rogaway and Vizár).

Why a fresh random data key per file, wrapped by the master key: the master key never
encrypts data directly, so nonces cannot collide across files, rotating the master key
does not touch old files, and one compromised file key exposes one file.

Format (all integers big-endian)::

    header
      magic           8 bytes   b"BDRCRYPT"
      version         u8        1
      algorithm       u8        1 = AES-256-GCM chunks, AES-256-GCM key wrap
      chunk_size      u32       plaintext bytes per chunk (4 KiB .. 64 MiB; 1 MiB by default)
      nonce_prefix    8 bytes   random, per file
      key_id_len      u8        then key_id (UTF-8): the master key's id in the keyring
      key_fp          8 bytes   HMAC-SHA256(master key, "backup_dr master key fingerprint v1")[:8]
      context_len     u16       then context (UTF-8): "<backup id>/<file name>"
      wrap_nonce      12 bytes  random
      wrapped_key     48 bytes  AES-256-GCM(master key, wrap_nonce, data key, aad = every header
                                byte from magic through context): 32-byte data key + 16-byte tag
    chunks, i = 0, 1, ... (at least one)
      AES-256-GCM(data key, nonce = nonce_prefix || u32(i), plaintext_i, aad = u64(i) || u8(final))
      = ciphertext_i (as long as plaintext_i) || 16-byte tag

Every chunk but the last holds exactly ``chunk_size`` plaintext bytes and has final = 0;
the last holds 0..chunk_size bytes and has final = 1 (an empty file is one empty final
chunk). Nothing may follow it. So the ciphertext of a file of P bytes is
``header + P + 16 * max(1, ceil(P / chunk_size))`` bytes.

What a reader must refuse: a header it cannot unwrap (wrong master key, or any header bit
changed: the wrap authenticates all of it), a context other than the backup/file it asked
for (a file moved from another backup), any chunk that fails authentication (flipped
bits, swapped or repeated chunks), a last chunk not marked final (truncation at a chunk
boundary), a final chunk followed by data (extension), and a tail shorter than a tag.

A reimplementation in Python with the ``cryptography`` package::

    hdr = parse(header bytes); aad_hdr = header bytes up to and including the context
    dk = AESGCM(master).decrypt(wrap_nonce, wrapped_key, aad_hdr)
    for i, block in enumerate(blocks of chunk_size + 16 bytes after the header):
        final = block is the last one
        out += AESGCM(dk).decrypt(nonce_prefix + i.to_bytes(4, "big"), block,
                                  i.to_bytes(8, "big") + bytes([final]))
"""

from __future__ import annotations

import base64
import hashlib
import os
import struct
from dataclasses import dataclass
from typing import Any, BinaryIO, Callable

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from backup_dr.core.errors import IntegrityError

SCHEME = "backup_dr-aead-v1"
ALGORITHM = "AES-256-GCM"
MAGIC = b"BDRCRYPT"
VERSION = 1
ALG_AES256GCM = 1
TAG = 16
KEY_BYTES = 32
DEFAULT_CHUNK = 1024 * 1024
CHUNK_READ = 1024 * 1024  # read size of the file helpers (any size works)
MIN_CHUNK, MAX_CHUNK = 4096, 64 * 1024 * 1024
_MAX_CHUNKS = 2**32
_FIXED = struct.Struct(">8sBBI8s")  # magic, version, alg, chunk_size, nonce_prefix
_WRAPPED = 12 + KEY_BYTES + TAG

#: (key_id, fingerprint) -> master key bytes; raises EncryptionKeyError when it has none
KeyLookup = Callable[[str, bytes], bytes]


def _nonce(prefix: bytes, index: int) -> bytes:
    return prefix + index.to_bytes(4, "big")


def _aad(index: int, final: bool) -> bytes:
    return index.to_bytes(8, "big") + (b"\x01" if final else b"\x00")


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


@dataclass(frozen=True)
class Header:
    chunk_size: int
    nonce_prefix: bytes
    key_id: str
    key_fp: bytes
    context: str
    wrap_nonce: bytes
    wrapped_key: bytes

    def authenticated_part(self) -> bytes:
        """Every header byte before the wrap nonce: the associated data of the key wrap."""
        kid, ctx = self.key_id.encode("utf-8"), self.context.encode("utf-8")
        return (_FIXED.pack(MAGIC, VERSION, ALG_AES256GCM, self.chunk_size, self.nonce_prefix)
                + bytes([len(kid)]) + kid + self.key_fp + len(ctx).to_bytes(2, "big") + ctx)

    def to_bytes(self) -> bytes:
        return self.authenticated_part() + self.wrap_nonce + self.wrapped_key

    def metadata(self) -> dict[str, Any]:
        """What the manifest records (FileEntry.encryption), besides the key connection id."""
        return {"scheme": SCHEME, "alg": ALGORITHM, "chunk_size": self.chunk_size, "key_id": self.key_id,
                "key_fingerprint": self.key_fp.hex(), "wrapped_key": b64(self.wrap_nonce + self.wrapped_key),
                "nonce_prefix": b64(self.nonce_prefix), "header_size": len(self.to_bytes()), "context": self.context}

    @classmethod
    def parse(cls, buf: bytes | bytearray, where: str) -> "Header | None":
        """The header at the start of ``buf``; None while ``buf`` is too short to hold it all."""
        if len(buf) < _FIXED.size:
            return None
        magic, version, alg, chunk, prefix = _FIXED.unpack_from(buf, 0)
        if magic != MAGIC:
            raise IntegrityError(f"{where}: not a backup_dr encrypted file (bad magic bytes)",
                                 hint="the file was replaced or corrupted; use another store's copy")
        if version != VERSION or alg != ALG_AES256GCM:
            raise IntegrityError(f"{where}: encrypted file format version {version}/algorithm {alg} is not supported "
                                 f"(this release reads {VERSION}/{ALG_AES256GCM})",
                                 hint="decrypt it with the backup_dr release that wrote it, or the header is corrupt")
        if not MIN_CHUNK <= chunk <= MAX_CHUNK:
            raise IntegrityError(f"{where}: header names an impossible chunk size {chunk} (corrupt or tampered)")
        pos = _FIXED.size
        if len(buf) < pos + 1:
            return None
        kid_len = buf[pos]
        pos += 1
        if len(buf) < pos + kid_len + 8 + 2:
            return None
        key_id = bytes(buf[pos:pos + kid_len]).decode("utf-8", "replace")
        pos += kid_len
        key_fp = bytes(buf[pos:pos + 8])
        pos += 8
        ctx_len = int.from_bytes(buf[pos:pos + 2], "big")
        pos += 2
        if len(buf) < pos + ctx_len + _WRAPPED:
            return None
        context = bytes(buf[pos:pos + ctx_len]).decode("utf-8", "replace")
        pos += ctx_len
        wrap_nonce, wrapped = bytes(buf[pos:pos + 12]), bytes(buf[pos + 12:pos + _WRAPPED])
        return cls(chunk, prefix, key_id, key_fp, context, wrap_nonce, wrapped)


def seal_header(master_key: bytes, key_id: str, key_fp: bytes, context: str, chunk_size: int) -> tuple[Header, bytes]:
    """A new header with a fresh random data key; returns (header, data key)."""
    if not MIN_CHUNK <= chunk_size <= MAX_CHUNK:
        raise ValueError(f"chunk size {chunk_size} outside {MIN_CHUNK}..{MAX_CHUNK}")
    data_key = AESGCM.generate_key(bit_length=256)
    draft = Header(chunk_size, os.urandom(8), key_id, key_fp, context, os.urandom(12), b"")
    wrapped = AESGCM(master_key).encrypt(draft.wrap_nonce, data_key, draft.authenticated_part())
    return Header(chunk_size, draft.nonce_prefix, key_id, key_fp, context, draft.wrap_nonce, wrapped), data_key


class EncryptingWriter:
    """A write-only stream that encrypts into ``raw`` (the store's hashing writer).

    It holds back up to one chunk, because only :meth:`close` knows which chunk is the last
    (it must carry the final flag). ``plain_sha256``/``plain_size`` are of what was written
    to it; call :meth:`close` once, after the last write, and before ``raw`` is closed.
    """

    def __init__(self, raw: BinaryIO, master_key: bytes, *, key_id: str, key_fp: bytes, context: str,
                 chunk_size: int = DEFAULT_CHUNK):
        self.header, data_key = seal_header(master_key, key_id, key_fp, context, chunk_size)
        self._raw, self._aead, self._chunk = raw, AESGCM(data_key), chunk_size
        self._buf = bytearray()
        self._index = 0
        self._hash = hashlib.sha256()
        self.plain_size = 0
        self.closed = False
        raw.write(self.header.to_bytes())

    def _seal(self, data, final: bool) -> None:
        if self._index >= _MAX_CHUNKS:
            raise IntegrityError(f"{self.header.context}: too large for one encrypted file ({_MAX_CHUNKS} chunks)")
        self._raw.write(self._aead.encrypt(_nonce(self.header.nonce_prefix, self._index), data, _aad(self._index, final)))
        self._index += 1

    def write(self, data) -> int:
        if self.closed:
            raise ValueError("write to a closed encrypting stream")
        view = memoryview(data).cast("B")
        self._hash.update(view)
        self.plain_size += len(view)
        self._buf += view
        if len(self._buf) > self._chunk:  # keep >= 1 byte back: the last chunk is sealed in close()
            full = (len(self._buf) - 1) // self._chunk
            with memoryview(self._buf) as buf:
                for i in range(full):
                    self._seal(buf[i * self._chunk:(i + 1) * self._chunk], final=False)
            del self._buf[:full * self._chunk]
        return len(view)

    def flush(self) -> None:
        self._raw.flush()

    def writable(self) -> bool:
        return True

    def close(self) -> None:
        if not self.closed:
            self._seal(bytes(self._buf), final=True)
            self._buf = bytearray()
            self.closed = True

    @property
    def plain_sha256(self) -> str:
        return self._hash.hexdigest()

    @property
    def chunks(self) -> int:
        return self._index


class Decryptor:
    """Feed ciphertext in any pieces (:meth:`write`), call :meth:`finish`; plaintext goes to ``out``.

    Nothing unauthenticated ever reaches ``out``. Errors are :class:`IntegrityError` (bytes
    wrong) or the key lookup's own error (key missing or wrong), naming ``where``.

    :param expected_context: the "<backup id>/<file name>" the caller asked for; a header
        naming anything else is refused (a file swapped in from another backup).
    :param check_header: called with the parsed header before any key is used (the reader
        compares it with the manifest entry).
    """

    def __init__(self, out: Callable[[bytes], Any], lookup: KeyLookup, *, where: str, expected_context: str | None = None,
                 check_header: Callable[[Header], None] | None = None):
        self._out, self._lookup, self.where = out, lookup, where
        self._expected, self._check = expected_context, check_header
        self._buf = bytearray()
        self._aead: AESGCM | None = None
        self.header: Header | None = None
        self._index = 0
        self.plain_size = 0
        self._hash = hashlib.sha256()

    def write(self, data) -> None:
        self._buf += data
        if self._aead is None and not self._open():
            return
        block = self.header.chunk_size + TAG
        pos = 0
        with memoryview(self._buf) as view:
            while len(view) - pos > block:  # more follows, so this chunk is not the last
                self._open_chunk(view[pos:pos + block], final=False)
                pos += block
        if pos:
            del self._buf[:pos]

    def _open(self) -> bool:
        header = Header.parse(self._buf, self.where)
        if header is None:
            return False
        if self._check is not None:
            self._check(header)
        if self._expected is not None and header.context != self._expected:
            raise IntegrityError(f"{self.where}: the file belongs to {header.context!r}, not {self._expected!r}",
                                 hint="a file was moved or copied between backups; use another store's copy")
        master = self._lookup(header.key_id, header.key_fp)
        try:
            data_key = AESGCM(master).decrypt(header.wrap_nonce, header.wrapped_key, header.authenticated_part())
        except InvalidTag:
            raise IntegrityError(
                f"{self.where}: the encryption header does not authenticate with master key {header.key_id!r} "
                f"(fingerprint {header.key_fp.hex()}): the header was altered",
                hint="the key matches the recorded fingerprint, so the file is corrupt or tampered; use another store's copy",
            ) from None
        self.header, self._aead = header, AESGCM(data_key)
        del self._buf[:len(header.to_bytes())]
        return True

    def _open_chunk(self, block, final: bool) -> None:
        i = self._index
        try:
            plain = self._aead.decrypt(_nonce(self.header.nonce_prefix, i), block, _aad(i, final))
        except InvalidTag:
            raise IntegrityError(f"{self.where}: {self._diagnose(block, final)} (corrupt or tampered)",
                                 hint="use another store's copy (python -m backup_dr verify <id> shows which copies are good)") from None
        self._index += 1
        self._hash.update(plain)
        self.plain_size += len(plain)
        self._out(plain)

    def _diagnose(self, block, final: bool) -> str:
        """Why chunk i failed: try the other final flag, which tells truncation and extension apart."""
        i = self._index
        try:
            self._aead.decrypt(_nonce(self.header.nonce_prefix, i), block, _aad(i, not final))
        except InvalidTag:
            return f"chunk {i} fails authentication: its bytes were changed, or chunks were reordered or replaced"
        if final:
            return f"the file ends after chunk {i}, which is not its last chunk: the file was truncated"
        return f"chunk {i} is the file's last chunk but more data follows it: bytes were appended"

    def finish(self) -> None:
        """Open the last chunk; raise if the file ended early or never had a header."""
        if self._aead is None:
            raise IntegrityError(f"{self.where}: the file ends inside its encryption header ({len(self._buf)} bytes): truncated",
                                 hint="use another store's copy")
        if len(self._buf) < TAG:
            raise IntegrityError(f"{self.where}: the file ends inside chunk {self._index} ({len(self._buf)} bytes, "
                                 f"less than a {TAG}-byte tag): truncated", hint="use another store's copy")
        self._open_chunk(memoryview(self._buf), final=True)
        self._buf = bytearray()

    @property
    def plain_sha256(self) -> str:
        return self._hash.hexdigest()
