"""Redis formats without a server: CRC-64, RDB stream checks, RDB lengths, AOF manifests and
framing, the AOF archive, and the RESP reader over a real socket pair."""

from __future__ import annotations

import io
import os
import random
import socket
import tarfile

import pytest

from backup_dr.core.errors import IntegrityError
from backup_dr.core.redis import crc64 as crc_mod
from backup_dr.core.redis.aof import parse_manifest, resp_valid_prefix, untar_directory, validate_aof_dir
from backup_dr.core.redis.crc64 import CHECK_VALUE, crc64
from backup_dr.core.redis.rdb import RdbStreamCheck, check_stream, read_length
from backup_dr.core.redis.resp import RespError, RespSocket


def _reference_crc(data: bytes, crc: int = 0) -> int:
    """Bit-by-bit CRC-64/Jones straight from the definition (no tables)."""
    for byte in data:
        crc ^= byte
        for _ in range(8):
            crc = (crc >> 1) ^ crc_mod.POLY_REFLECTED if crc & 1 else crc >> 1
    return crc


def _rdb(payload: bytes, version: int = 10, checksum: bool = True) -> bytes:
    body = f"REDIS{version:04d}".encode() + payload + b"\xff"
    return body + (crc64(body).to_bytes(8, "little") if checksum else bytes(8))


def test_crc64_check_value_and_reference():
    assert crc64(b"123456789") == CHECK_VALUE == 0xE9C6D914C4B8D9CA
    data = os.urandom(3000)
    assert crc64(data) == _reference_crc(data)


@pytest.mark.parametrize("size", [0, 1, 7, 65535, 65536, 65536 + 13, 300_001, 2 * 1024 * 1024 + 5])
def test_crc64_vectorised_equals_bytewise_in_any_chunking(size):
    rng = random.Random(size)
    data = rng.randbytes(size)
    expected = crc_mod._crc_bytes(0, data)
    assert crc64(data) == expected
    crc, pos = 0, 0
    while pos < size:  # irregular chunks, as a socket delivers them
        step = rng.choice([1, 9, 4096, 70_000, 1 << 20])
        crc = crc64(memoryview(data)[pos : pos + step], crc)
        pos += step
    assert crc == expected


def test_rdb_stream_check_accepts_a_valid_file_in_tiny_pieces():
    data = _rdb(os.urandom(100_000))
    sink = io.BytesIO()
    check = RdbStreamCheck(sink, "test.rdb")
    for i in range(0, len(data), 5):
        check.write(data[i : i + 5])
    assert check.finish() == int.from_bytes(data[-8:], "little")
    assert check.version == 10 and check.size == len(data) and sink.getvalue() == data


def test_rdb_stream_check_rejects_bad_header_flipped_byte_and_truncation():
    with pytest.raises(IntegrityError, match="is not an RDB file: it starts with b'-ERR"):
        RdbStreamCheck(None, "x").write(b"-ERR something went wrong\r\n")
    data = bytearray(_rdb(os.urandom(5000)))
    data[2000] ^= 0x01
    with pytest.raises(IntegrityError, match="RDB checksum mismatch"):
        check_stream(io.BytesIO(bytes(data)), "flipped.rdb")
    with pytest.raises(IntegrityError, match="no end-of-file opcode"):
        check_stream(io.BytesIO(_rdb(os.urandom(5000))[:-100]), "cut.rdb")
    with pytest.raises(IntegrityError, match="too short"):
        check_stream(io.BytesIO(b"REDIS0010"), "tiny.rdb")


def test_rdb_with_checksum_disabled_is_accepted_and_says_so(caplog):
    check = check_stream(io.BytesIO(_rdb(b"\x00abc", checksum=False)), "nocrc.rdb")
    assert check.checksum is None and "rdbchecksum no" in caplog.text


def test_rdb_length_encodings():
    assert read_length(bytes([0x05]), 0) == (5, 1)
    assert read_length(bytes([0x43, 0xE8]), 0) == (1000, 2)
    assert read_length(b"\x80" + (70_000).to_bytes(4, "big"), 0) == (70_000, 5)
    assert read_length(b"\x81" + (2**40).to_bytes(8, "big"), 0) == (2**40, 9)
    with pytest.raises(ValueError):
        read_length(bytes([0xC0]), 0)  # an integer-encoded string, not a length


def test_aof_manifest_parsing():
    files = parse_manifest('file appendonly.aof.3.base.rdb seq 3 type b\nfile "my aof.4.incr.aof" seq 4 type i\n'
                           "file appendonly.aof.2.base.rdb seq 2 type h\n")
    assert [(f.name, f.seq, f.type) for f in files] == [
        ("appendonly.aof.3.base.rdb", 3, "b"), ("my aof.4.incr.aof", 4, "i"), ("appendonly.aof.2.base.rdb", 2, "h")]
    with pytest.raises(IntegrityError, match="lacks file/seq/type"):
        parse_manifest("file x seq 1\n")


def test_resp_valid_prefix_finds_the_last_complete_command(tmp_path):
    whole = b"*3\r\n$3\r\nSET\r\n$1\r\na\r\n$1\r\n1\r\n#TS:1700000000\r\n*2\r\n$3\r\nDEL\r\n$1\r\na\r\n"
    path = tmp_path / "x.incr.aof"
    path.write_bytes(whole + b"*3\r\n$3\r\nSET\r\n$1\r\nb\r\n$5\r\nhal")
    assert resp_valid_prefix(path) == len(whole)
    path.write_bytes(whole)
    assert resp_valid_prefix(path) == len(whole)


@pytest.mark.parametrize("checker", ["redis-check-aof", "python"])
def test_validate_aof_dir_cuts_a_half_written_tail_of_the_last_incr_file_only(tmp_path, monkeypatch, checker):
    from backup_dr.core.redis import aof

    if checker == "python":  # a worker without redis-tools
        monkeypatch.setattr(aof, "redis_check_tool", lambda name: None)
    elif aof.redis_check_tool("redis-check-aof") is None:
        pytest.skip("redis-check-aof is not installed")
    d = tmp_path / "appendonlydir"
    d.mkdir()
    (d / "a.aof.1.base.rdb").write_bytes(_rdb(b""))  # an empty dataset
    good = b"*2\r\n$3\r\nDEL\r\n$1\r\nk\r\n"
    (d / "a.aof.1.incr.aof").write_bytes(good + b"*2\r\n$3\r\nDE")
    (d / "a.aof.manifest").write_text("file a.aof.1.base.rdb seq 1 type b\nfile a.aof.1.incr.aof seq 1 type i\n")
    assert validate_aof_dir(d, "a.aof.manifest", truncate_tail=True) == len(b"*2\r\n$3\r\nDE")
    assert (d / "a.aof.1.incr.aof").read_bytes() == good
    (d / "a.aof.1.incr.aof").write_bytes(good + b"garbage that is no command\r\n")
    with pytest.raises(IntegrityError, match="a.aof.1.incr.aof is corrupt or truncated"):
        validate_aof_dir(d, "a.aof.manifest")  # without truncate_tail nothing is cut


def test_untar_directory_refuses_paths_outside_one_directory(tmp_path):
    bad = tmp_path / "bad.tar"
    with tarfile.open(bad, "w") as tar:
        info = tarfile.TarInfo("../escape")
        info.size = 1
        tar.addfile(info, io.BytesIO(b"x"))
    with pytest.raises(IntegrityError, match="unexpected member '../escape'"):
        untar_directory(bad, tmp_path / "out")
    assert not (tmp_path / "escape").exists()


def test_resp_socket_reads_replies_and_skips_keepalives():
    a, b = socket.socketpair()
    try:
        b.sendall(b"+OK\r\n-NOPERM no\r\n:42\r\n$3\r\nabc\r\n*2\r\n$1\r\nx\r\n$-1\r\n\n\n\n+FULLRESYNC id 7\r\n$EOF:")
        rs = RespSocket(a)
        assert rs.read_reply() == "OK"
        err = rs.read_reply()
        assert isinstance(err, RespError) and err.code == "NOPERM"
        assert rs.read_reply() == 42
        assert rs.read_reply() == b"abc"
        assert rs.read_reply() == [b"x", None]
        assert [rs.read_line() for _ in range(4)] == [b"", b"", b"", b"+FULLRESYNC id 7"]
        assert rs.take_buffered() == b"$EOF:"  # not a whole line yet: handed over as snapshot bytes
    finally:
        a.close()
        b.close()
