"""The chunked AES-256-GCM format: round trips, its size, and every kind of tampering refused."""

from __future__ import annotations

import os
import re

import pytest

from backup_dr.core.crypto.keys import EncryptionKeyError
from backup_dr.core.crypto.stream import MAGIC, TAG, Header
from backup_dr.core.errors import IntegrityError

from crypto_support import CONTEXT, b64, open_sealed, ring, seal

CHUNK = 4096


@pytest.mark.parametrize("size", [0, 1, CHUNK - 1, CHUNK, CHUNK + 1, 3 * CHUNK, 3 * CHUNK + 5, 40_000])
@pytest.mark.parametrize("piece", [1000, 5000])
def test_round_trip_of_any_size_in_any_pieces(k1, size, piece):
    data = os.urandom(size)
    ct = seal(data, k1, piece=piece)
    header = Header.parse(ct, "t")
    chunks = max(1, -(-size // CHUNK))
    assert len(ct) == len(header.to_bytes()) + size + TAG * chunks
    assert open_sealed(ct, ring(k1=k1), piece=piece + 3) == data


def test_ciphertext_holds_no_plaintext_and_no_key(k1):
    text = "".join(f"announcement {i} 서울특별시 공고 businesses korea_public_data\n" for i in range(3000)).encode()
    ct = seal(text, k1, chunk_size=65536)
    body = ct[len(Header.parse(ct, "t").to_bytes()):]
    for fragment in (b"announcement", "서울특별시".encode(), b"korea_public_data", text[1000:1016]):
        assert fragment not in body
    assert k1 not in ct and b64(k1).encode() not in ct
    assert ct.startswith(MAGIC) and CONTEXT.encode() in ct  # the header names its file, in the clear


def test_each_file_gets_its_own_data_key_and_nonces(k1):
    data = b"same plaintext" * 1000
    a, b = seal(data, k1), seal(data, k1)
    assert a != b and Header.parse(a, "t").wrapped_key != Header.parse(b, "t").wrapped_key


# ------------------------------------------------------------------------------------ tampering


def _offsets(ct: bytes) -> dict[str, int]:
    h = Header.parse(ct, "t")
    kid = 23
    fp = kid + len(h.key_id.encode())
    ctx = fp + 8 + 2
    wrap = ctx + len(h.context.encode())
    return {"magic": 0, "version": 8, "chunk_size": 13, "nonce_prefix": 14, "key_id": kid, "fingerprint": fp,
            "context": ctx + 5, "wrap_nonce": wrap, "wrapped_key": wrap + 20}


def _flip(ct: bytes, pos: int, bit: int = 0) -> bytes:
    b = bytearray(ct)
    b[pos] ^= 1 << bit
    return bytes(b)


HEADER_CASES = {
    "magic": (IntegrityError, "not a backup_dr encrypted file"),
    "version": (IntegrityError, "format version"),
    "chunk_size": (IntegrityError, "the header was altered"),
    "nonce_prefix": (IntegrityError, "the header was altered"),
    "key_id": (IntegrityError, "the header was altered"),  # the key is found by fingerprint; the wrap fails
    "fingerprint": (EncryptionKeyError, "wrong key"),
    "context": (IntegrityError, "the file belongs to"),
    "wrap_nonce": (IntegrityError, "the header was altered"),
    "wrapped_key": (IntegrityError, "the header was altered"),
}


@pytest.mark.parametrize("field", sorted(HEADER_CASES))
def test_a_flipped_bit_anywhere_in_the_header_is_refused(k1, field):
    data = os.urandom(3 * CHUNK)
    ct = seal(data, k1)
    bad = _flip(ct, _offsets(ct)[field])
    exc, text = HEADER_CASES[field]
    got = bytearray()
    with pytest.raises(exc, match=re.escape(text)):
        open_sealed(bad, ring(k1=k1), got=got)
    assert got == b""  # not one byte came out


def test_without_an_expected_context_a_changed_context_still_fails_the_wrap(k1):
    ct = seal(os.urandom(100), k1)
    with pytest.raises(IntegrityError, match="the header was altered"):
        open_sealed(_flip(ct, _offsets(ct)["context"]), ring(k1=k1), context=None)


def _chunks(ct: bytes, chunk: int = CHUNK) -> tuple[bytes, list[bytes]]:
    hsize = len(Header.parse(ct, "t").to_bytes())
    body = ct[hsize:]
    step = chunk + TAG
    return ct[:hsize], [body[i:i + step] for i in range(0, len(body), step)]


def _tamper(kind: str, ct: bytes) -> bytes:
    head, ch = _chunks(ct)
    if kind == "flip_middle_chunk":
        ch[2] = _flip(ch[2], 100, 3)
    elif kind == "flip_tag":
        ch[1] = _flip(ch[1], len(ch[1]) - 1)
    elif kind == "cut_last_byte":
        ch[-1] = ch[-1][:-1]
    elif kind == "drop_last_chunk":
        ch = ch[:-1]
    elif kind in ("append_chunk", "append_chunk_after_full_final"):
        ch = ch + [ch[-1]]
    elif kind == "append_bytes":
        ch = ch + [os.urandom(40)]
    elif kind == "swap_chunks":
        ch[1], ch[2] = ch[2], ch[1]
    elif kind == "repeat_chunk":
        ch[2] = ch[1]
    elif kind == "cut_in_header":
        return head[:30]
    return head + b"".join(ch)


CHUNK_CASES = {
    "flip_middle_chunk": "chunk 2 fails authentication",
    "flip_tag": "chunk 1 fails authentication",
    "cut_last_byte": "chunk 3 fails authentication",
    "drop_last_chunk": "the file ends after chunk 2, which is not its last chunk: the file was truncated",
    "append_chunk": "chunk 3 fails authentication",  # short final chunk + copy: read as one final chunk
    "append_chunk_after_full_final": "chunk 3 is the file's last chunk but more data follows it: bytes were appended",
    "append_bytes": "chunk 3 fails authentication",  # a short tail joins the final chunk
    "swap_chunks": "chunk 1 fails authentication",
    "repeat_chunk": "chunk 2 fails authentication",
    "cut_in_header": "ends inside its encryption header",
}


@pytest.mark.parametrize("kind", sorted(CHUNK_CASES))
def test_chunk_tampering_is_refused_and_only_authentic_bytes_come_out(k1, kind):
    # chunks 0,1,2 full, chunk 3 final (short, or full for the last case)
    data = os.urandom(4 * CHUNK if kind == "append_chunk_after_full_final" else 3 * CHUNK + 100)
    ct = seal(data, k1)
    got = bytearray()
    with pytest.raises(IntegrityError, match=re.escape(CHUNK_CASES[kind])):
        open_sealed(_tamper(kind, ct), ring(k1=k1), got=got)
    assert data.startswith(bytes(got))  # whatever came out before the refusal was authentic


def test_empty_input_is_refused():
    with pytest.raises(IntegrityError, match="ends inside its encryption header"):
        open_sealed(b"", ring(k1=os.urandom(32)))


def test_a_file_shorter_than_a_tag_after_the_header_is_refused(k1):
    ct = seal(b"", k1)
    with pytest.raises(IntegrityError, match="less than a 16-byte tag"):
        open_sealed(ct[:-3], ring(k1=k1))


# ------------------------------------------------------------------------------------ keys


def test_wrong_key_under_the_same_id_names_the_id_and_connection_not_the_key(k1, k2):
    ct = seal(b"secret data", k1)
    with pytest.raises(EncryptionKeyError) as err:
        open_sealed(ct, ring(k1=k2))
    text = str(err.value)
    assert "wrong key" in text and "'k1'" in text and "'backup_encryption_key'" in text
    assert b64(k1) not in text and b64(k2) not in text


def test_missing_key_lists_what_the_keyring_has(k1, k2):
    ct = seal(b"secret data", k1)
    with pytest.raises(EncryptionKeyError) as err:
        open_sealed(ct, ring(k2=k2))
    text = str(err.value)
    assert "master key 'k1'" in text and "does not hold (it has: k2)" in text and "keys needed" in text
    assert b64(k1) not in text and b64(k2) not in text


def test_a_renamed_key_is_found_by_fingerprint(k1):
    data = os.urandom(9000)
    assert open_sealed(seal(data, k1, key_id="k1"), ring(old_name=k1)) == data


def _standalone_decrypt(ct: bytes, master: bytes) -> bytes:
    """The format as documented in core/crypto/stream.py, read with nothing of ours."""
    import hashlib
    import hmac
    import struct

    from cryptography.hazmat.primitives.ciphers.aead import AESGCM

    magic, version, alg, chunk, prefix = struct.unpack_from(">8sBBI8s", ct, 0)
    assert (magic, version, alg) == (b"BDRCRYPT", 1, 1)
    pos = 22
    kid_len = ct[pos]
    pos += 1 + kid_len
    fp = ct[pos:pos + 8]
    assert fp == hmac.new(master, b"backup_dr master key fingerprint v1", hashlib.sha256).digest()[:8]
    pos += 8
    ctx_len = int.from_bytes(ct[pos:pos + 2], "big")
    pos += 2 + ctx_len
    aad_hdr, wrap_nonce, wrapped = ct[:pos], ct[pos:pos + 12], ct[pos + 12:pos + 60]
    dk = AESGCM(master).decrypt(wrap_nonce, wrapped, aad_hdr)
    body = ct[pos + 60:]
    blocks = [body[i:i + chunk + 16] for i in range(0, len(body), chunk + 16)]
    out = b""
    for i, block in enumerate(blocks):
        final = i == len(blocks) - 1
        out += AESGCM(dk).decrypt(prefix + i.to_bytes(4, "big"), block, i.to_bytes(8, "big") + bytes([final]))
    return out


@pytest.mark.parametrize("size", [0, 5000, 3 * CHUNK])
def test_the_documented_format_can_be_read_without_our_code(k1, size):
    data = os.urandom(size)
    assert _standalone_decrypt(seal(data, k1), k1) == data
