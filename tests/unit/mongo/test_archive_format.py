"""The archive format, byte by byte: archives built by hand from the spec are read by our
reader; our writer's bytes parse with a hand parser; every corruption is a clear error."""

from __future__ import annotations

import gzip
import io
import struct

import bson
import pytest
import zstandard
from bson.int64 import Int64

from backup_dr.core.errors import IntegrityError
from backup_dr.core.mongo.archive import ArchiveReader, ArchiveWriter, PreludeEntry
from backup_dr.core.mongo.codecs import compressed_writer, decompressed_reader

from test_crc64 import reference_crc64_xz

MAGIC = struct.pack("<I", 0x8199E26D)  # little-endian 0x8199e26d = 6d e2 99 81
TERM = struct.pack("<i", -1)


def signed(v: int) -> int:
    return v - (1 << 64) if v >= 1 << 63 else v


def handmade_archive(blocks: list[tuple[str, str, list[bytes]]], prelude: list[tuple[str, str, str]],
                     crc_override: dict[str, int] | None = None) -> bytes:
    """Build an archive exactly as the spec says. ``blocks`` in stream order may interleave
    namespaces; an EOF block for each namespace follows its last block."""
    out = bytearray(MAGIC)
    out += bson.encode({"concurrent_collections": 4, "version": "0.1", "server_version": "7.0.12", "tool_version": "100.9.4"})
    for db, coll, meta in prelude:
        out += bson.encode({"db": db, "collection": coll, "metadata": meta, "size": 0, "type": "collection" if db else ""})
    out += TERM
    data: dict[str, bytes] = {f"{db}.{c}": b"" for db, c, _ in prelude}
    last = {f"{db}.{c}": i for i, (db, c, _) in enumerate(blocks)}
    for i, (db, coll, docs) in enumerate(blocks):
        ns = f"{db}.{coll}"
        out += bson.encode({"db": db, "collection": coll, "EOF": False, "CRC": Int64(0)})
        for d in docs:
            out += d
            data[ns] = data.get(ns, b"") + d
        out += TERM
        if last[ns] == i:
            crc = (crc_override or {}).get(ns, signed(reference_crc64_xz(data[ns])))
            out += bson.encode({"db": db, "collection": coll, "EOF": True, "CRC": Int64(crc)}) + TERM
    for db, coll, _ in prelude:  # namespaces without any block (empty collection / view)
        if f"{db}.{coll}" not in last:
            out += bson.encode({"db": db, "collection": coll, "EOF": True, "CRC": Int64(0)}) + TERM
    return bytes(out)


def docs(prefix: str, n: int) -> list[bytes]:
    return [bson.encode({"_id": f"{prefix}{i}", "v": i, "한글": "값" * i}) for i in range(n)]


PRELUDE = [("shop", "orders", '{"indexes":[],"collectionName":"orders","type":"collection"}'),
           ("shop", "고객", '{"indexes":[],"collectionName":"고객","type":"collection"}'),
           ("shop", "empty", '{"indexes":[],"collectionName":"empty","type":"collection"}'),
           ("", "oplog", "")]


def read_all(raw: bytes):
    with decompressed_reader(io.BytesIO(raw)) as stream:
        reader = ArchiveReader(stream)
        return reader, list(reader.documents())


def test_reads_interleaved_handmade_archive_like_stock_mongodump():
    a, b = docs("a", 5), docs("b", 3)
    oplog = [bson.encode({"ts": bson.Timestamp(1, i), "op": "n", "ns": "", "o": {}}) for i in range(2)]
    raw = handmade_archive([("shop", "orders", a[:2]), ("shop", "고객", b[:1]), ("shop", "orders", a[2:]),
                            ("shop", "고객", b[1:]), ("", "oplog", oplog)], PRELUDE)
    reader, events = read_all(raw)
    assert reader.header["server_version"] == "7.0.12"
    assert [(e.db, e.collection) for e in reader.prelude] == [(d, c) for d, c, _ in PRELUDE]
    got = {}
    eofs = []
    for db, coll, doc in events:
        if doc is None:
            eofs.append(f"{db}.{coll}")
        else:
            got.setdefault(f"{db}.{coll}", []).append(doc)
    assert got == {"shop.orders": a, "shop.고객": b, ".oplog": oplog}
    assert sorted(eofs) == sorted([".oplog", "shop.empty", "shop.orders", "shop.고객"])


def test_accepts_a_header_followed_directly_by_a_terminator():
    # mongodump opens a view's / empty collection's stream and closes it with no documents
    raw = handmade_archive([("shop", "empty", [])], PRELUDE[2:3])
    _reader, events = read_all(raw)
    assert events == [("shop", "empty", None)]


@pytest.mark.parametrize("codec", ["gzip", "zstd", "none"])
def test_our_writer_parses_with_a_hand_parser(codec):
    out = io.BytesIO()
    a = docs("x", 4)
    with compressed_writer(out, codec) as stream:
        w = ArchiveWriter(stream, server_version="8.2.11", tool_version="t")
        w.write_prelude([PreludeEntry("shop", "orders", "{}", 0, "collection"), PreludeEntry("", "oplog")])
        w.begin("shop", "orders")
        w.write_docs(b"".join(a[:2]))
        w.write_docs(b"".join(a[2:]))
        crc = w.end()
        w.begin("", "oplog")
        w.end()
    raw = out.getvalue()
    plain = {"gzip": lambda b: gzip.decompress(b), "zstd": lambda b: zstandard.ZstdDecompressor().decompressobj().decompress(b),
             "none": lambda b: b}[codec](raw)
    assert crc == signed(reference_crc64_xz(b"".join(a)))
    # hand parse: magic, header, 2 prelude docs, terminator, header+docs+term, EOF+term, header+term, EOF+term
    assert plain[:4] == bytes.fromhex("6de29981")
    pos = 4
    seq = []
    while pos < len(plain):
        (n,) = struct.unpack_from("<i", plain, pos)
        if n == -1:
            seq.append("T")
            pos += 4
            continue
        seq.append(bson.decode(plain[pos:pos + n]))
        pos += n
    assert seq[0] == {"concurrent_collections": 1, "version": "0.1", "server_version": "8.2.11", "tool_version": "t"}
    assert list(seq[1]) == ["db", "collection", "metadata", "size", "type"]
    assert seq[2] == {"db": "", "collection": "oplog", "metadata": "", "size": 0, "type": ""}
    assert seq[3] == "T"
    assert seq[4] == {"db": "shop", "collection": "orders", "EOF": False, "CRC": 0}
    assert isinstance(seq[4]["CRC"], Int64)  # int64 even when 0, as Go writes it
    assert seq[5:9] == [bson.decode(d) for d in a] and seq[9] == "T"
    assert seq[10] == {"db": "shop", "collection": "orders", "EOF": True, "CRC": crc} and seq[11] == "T"
    # an empty namespace: header + terminator, then its EOF block, exactly as mongodump writes it
    assert seq[12] == {"db": "", "collection": "oplog", "EOF": False, "CRC": 0} and seq[13] == "T"
    assert seq[14] == {"db": "", "collection": "oplog", "EOF": True, "CRC": 0} and seq[15] == "T"
    assert len(seq) == 16


def test_wrong_magic_is_refused():
    raw = b"\x00\x00\x00\x00" + handmade_archive([], PRELUDE[:1])[4:]
    with pytest.raises(IntegrityError, match="unknown compression or not a mongodump archive"):
        read_all(raw)
    with pytest.raises(IntegrityError, match=r"not a mongodump archive \(magic 00 00 00 00"):
        ArchiveReader(io.BytesIO(raw))


def test_corrupted_crc_is_detected():
    raw = handmade_archive([("shop", "orders", docs("a", 3))], PRELUDE[:1], crc_override={"shop.orders": 12345})
    with pytest.raises(IntegrityError, match="CRC mismatch for namespace shop.orders: the archive records 12345"):
        read_all(raw)


def test_flipped_data_byte_is_detected_by_crc():
    raw = bytearray(handmade_archive([("shop", "orders", docs("a", 3))], PRELUDE[:1]))
    i = raw.index(b"a1")  # inside the second document's _id string
    raw[i] = ord("z")
    with pytest.raises(IntegrityError, match="CRC mismatch for namespace shop.orders"):
        read_all(bytes(raw))


@pytest.mark.parametrize("cut", [3, 30, 200, -30, -5])
def test_truncated_archive_is_detected(cut):
    raw = handmade_archive([("shop", "orders", docs("a", 5))], PRELUDE[:1])
    with pytest.raises(IntegrityError, match="truncated"):
        read_all(raw[:cut] if cut > 4 else MAGIC + raw[4:4 + cut])


def test_truncated_gzip_stream_is_detected():
    raw = gzip.compress(handmade_archive([("shop", "orders", docs("a", 50))], PRELUDE[:1]))
    with pytest.raises(IntegrityError, match="truncated"):
        read_all(raw[: len(raw) - 20])


def test_unknown_compression_is_refused():
    with pytest.raises(IntegrityError, match=r"unknown compression or not a mongodump archive \(first bytes 42 5a 68 39\)"):
        read_all(b"BZh91AY&SY" + b"\x00" * 40)
    with pytest.raises(IntegrityError, match="unknown compression 'lz4'"):
        with decompressed_reader(io.BytesIO(b""), expect="lz4"):
            pass


def test_manifest_codec_must_match_the_bytes():
    raw = gzip.compress(handmade_archive([], PRELUDE[:1]))
    with pytest.raises(IntegrityError, match="manifest says compression 'zstd' but the bytes are 'gzip'"):
        with decompressed_reader(io.BytesIO(raw), expect="zstd"):
            pass


def test_block_for_a_namespace_missing_from_the_prelude_is_refused():
    raw = handmade_archive([("shop", "other", docs("a", 1))], PRELUDE[:1])
    with pytest.raises(IntegrityError, match="block for shop.other, which the prelude does not list"):
        read_all(raw)


def test_garbage_length_is_a_clear_error():
    raw = bytearray(handmade_archive([("shop", "orders", docs("a", 2))], PRELUDE[:1]))
    first_doc = docs("a", 2)[0]
    i = raw.index(first_doc)
    raw[i:i + 4] = struct.pack("<i", 3)
    with pytest.raises(IntegrityError, match="3 is neither a BSON length nor a terminator"):
        read_all(bytes(raw))
