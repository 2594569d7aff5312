"""Encrypted MongoDB backups on the real stack: round trip, no plaintext at rest, S3 copies,
tampering and key problems refused before the target is touched."""

from __future__ import annotations

import hashlib
import shutil
import uuid
from dataclasses import replace

import pytest
from bson.codec_options import CodecOptions
from bson.raw_bson import RawBSONDocument

from backup_dr.core.artifacts.reader import load_manifest
from backup_dr.core.crypto.keys import EncryptionKeyError
from backup_dr.core.crypto.stream import Header, TAG
from backup_dr.core.errors import IntegrityError
from backup_dr.core.mongo.backup import backup_mongodb, restore_mongodb
from backup_dr.core.policy_model import Job, MongoSource
from backup_dr.core.replicate import replicate
from backup_dr.core.stores.local import LocalStore
from backup_dr.core.verify import verify_copy

RAW = CodecOptions(document_class=RawBSONDocument)
COLLECTIONS = ("contents", "statistics")


def documents(db, names=COLLECTIONS) -> dict[str, dict[bytes, bytes]]:
    """Every document of each collection as raw BSON, by its _id's raw encoding."""
    out = {}
    for name in names:
        out[name] = {repr(d["_id"]).encode(): d.raw for d in db[name].with_options(codec_options=RAW).find()}
    return out


@pytest.fixture
def target_db(mongo_client):
    name = f"enc_{uuid.uuid4().hex[:8]}"
    yield name
    mongo_client.drop_database(name)


def _backup(mongo_client, enc_writer, compression="gzip", chunk_size=1024 * 1024):
    source = MongoSource(name="mongodb", conn_id="mongo_korea_public_data", database="korea_public_data",
                         compression=compression)
    return backup_mongodb(mongo_client, source, Job(source="mongodb", collections=COLLECTIONS),
                          enc_writer("mongodb", "full", "mongodb", chunk_size=chunk_size))


def test_encrypted_backup_restores_byte_identical_and_holds_no_plaintext(mongo_client, seeded_mongo, keys, enc_writer,
                                                                         store, target_db, tmp_path):
    m = _backup(mongo_client, enc_writer, compression="none")  # uncompressed: plaintext would be plain to see
    entry = m.files[0]
    assert entry.encryption["key_id"] == "k1" and entry.encryption["key_conn_id"] == "backup_encryption_key"
    stored = store.path(m.id.key(entry.name)).read_bytes()
    assert (len(stored), hashlib.sha256(stored).hexdigest()) == (entry.size, entry.sha256)
    assert entry.plain_size > 100_000 and entry.plain_sha256 != entry.sha256
    src = documents(mongo_client["korea_public_data"])
    samples = [doc for docs in src.values() for doc in list(docs.values())[:50]]
    assert not [d for d in samples if d[8:40] in stored], "document bytes found in the stored file"
    for text in (b"korea_public_data", b"contents", "서울".encode()):
        assert text not in stored[len(Header.parse(stored, "t").to_bytes()):]

    result = restore_mongodb(mongo_client, store, m, workdir=tmp_path / "work", safety_dir=tmp_path / "safety",
                             target_db=target_db)
    assert result.validation["ok"]
    assert documents(mongo_client[target_db]) == src
    assert m.counts == {c: len(src[c]) for c in COLLECTIONS}


def test_replicated_s3_copy_verifies_the_ciphertext_and_restores_the_plaintext(mongo_client, seeded_mongo, keys, enc_writer,
                                                                               store, s3_bucket, target_db, tmp_path):
    from backup_dr.core.policy_model import StoreSpec
    from backup_dr.core.stores.factory import open_store

    s3 = open_store(StoreSpec(name="s3", type="s3", bucket=s3_bucket, prefix="backup-dr", conn_id="backup_s3"))
    m = _backup(mongo_client, enc_writer)
    result = replicate(store, m, s3)
    assert result["status"] == "replicated" and result["verified"]
    entry = m.files[0]
    assert s3.hash_object(m.id.key(entry.name)) == (entry.size, entry.sha256)  # S3 holds the ciphertext
    assert verify_copy(s3, m)["ok"] and load_manifest(s3, m.id) == m  # one manifest, valid in both stores

    restore_mongodb(mongo_client, s3, m, workdir=tmp_path / "work", safety_dir=tmp_path / "safety", target_db=target_db)
    assert documents(mongo_client[target_db]) == documents(mongo_client["korea_public_data"])
    assert not (tmp_path / "work" / entry.name).exists() or hashlib.sha256(
        (tmp_path / "work" / entry.name).read_bytes()).hexdigest() == entry.plain_sha256


# ------------------------------------------------------------------------------- refusals


@pytest.fixture
def small_chunk_backup(mongo_client, seeded_mongo, keys, enc_writer, store):
    """A backup in 16 KiB chunks (several of them), for tampering with its chunk sequence."""
    return _backup(mongo_client, enc_writer, chunk_size=16 * 1024)


def _tamper(kind: str, ct: bytes, chunk: int) -> bytes:
    hsize = len(Header.parse(ct, "t").to_bytes())
    head, body = bytearray(ct[:hsize]), ct[hsize:]
    step = chunk + TAG
    ch = [bytearray(body[i:i + step]) for i in range(0, len(body), step)]
    assert len(ch) >= 4, "need several chunks"
    if kind == "header_bit":
        head[hsize - 30] ^= 0x04  # inside the wrapped data key
    elif kind == "middle_chunk_bit":
        ch[len(ch) // 2][1000] ^= 0x01
    elif kind == "truncated_last_chunk":
        ch[-1] = ch[-1][:-7]
    elif kind == "appended_chunk":
        ch.append(ch[1])
    elif kind == "swapped_chunks":
        ch[1], ch[2] = ch[2], ch[1]
    return bytes(head) + b"".join(bytes(c) for c in ch)


def _forge(store: LocalStore, m, data: bytes):
    """Rewrite the file AND its manifest entry, as an attacker with write access to the store could:
    only the encryption itself can catch it then."""
    entry = m.files[0]
    store.path(m.id.key(entry.name)).write_bytes(data)
    header = {**entry.encryption, **Header.parse(data, "t").metadata()}  # and the header fields it records
    forged = replace(m, files=(replace(entry, size=len(data), sha256=hashlib.sha256(data).hexdigest(), encryption=header),))
    store.path(m.id.manifest_key).write_bytes(forged.to_json())
    return forged


@pytest.mark.parametrize("kind,message", [
    ("header_bit", "the header was altered"),
    ("middle_chunk_bit", "fails authentication"),
    ("truncated_last_chunk", "fails authentication"),
    ("appended_chunk", "fails authentication"),
    ("swapped_chunks", "chunk 1 fails authentication"),
])
def test_tampered_backup_is_refused_and_the_target_is_untouched(mongo_client, small_chunk_backup, store, target_db,
                                                                tmp_path, kind, message):
    m = small_chunk_backup
    target = mongo_client[target_db]
    target.contents.insert_many([{"_id": i, "live": "data written after the backup"} for i in range(50)])
    before = documents(target, ("contents",))
    original = store.path(m.id.key(m.files[0].name)).read_bytes()
    forged = _forge(store, m, _tamper(kind, original, 16 * 1024))
    with pytest.raises(IntegrityError, match=message):
        restore_mongodb(mongo_client, store, forged, workdir=tmp_path / "work", safety_dir=tmp_path / "safety",
                        target_db=target_db, drop=True)
    assert documents(target, ("contents",)) == before and target.list_collection_names() == ["contents"]
    assert not any((tmp_path / "work").glob("**/*.archive*"))  # no decrypted leftovers


def test_unforged_tampering_fails_the_manifest_hash_first(mongo_client, small_chunk_backup, store, target_db, tmp_path):
    m = small_chunk_backup
    path = store.path(m.id.key(m.files[0].name))
    path.write_bytes(_tamper("middle_chunk_bit", path.read_bytes(), 16 * 1024))
    with pytest.raises(IntegrityError, match="fails authentication|does not match its manifest"):
        restore_mongodb(mongo_client, store, m, workdir=tmp_path / "w", safety_dir=tmp_path / "s", target_db=target_db)
    assert target_db not in mongo_client.list_database_names()


@pytest.mark.parametrize("ring,message", [
    (("k2", "k2"), "master key 'k1' (fingerprint"),  # key missing from the keyring
    ("wrong", "wrong key: connection 'backup_encryption_key' holds a key 'k1'"),  # other material under the same id
    (None, "encryption key connection 'backup_encryption_key' is not available"),  # no connection at all
])
def test_missing_or_wrong_key_is_a_clear_error_and_the_target_is_untouched(mongo_client, small_chunk_backup, store, keys,
                                                                           monkeypatch, target_db, tmp_path, ring, message):
    if ring is None:
        monkeypatch.delenv("AIRFLOW_CONN_BACKUP_ENCRYPTION_KEY")
    elif ring == "wrong":
        keys.k1 = keys.k2
        keys.use("k1", "k1")
    else:
        keys.use(*ring)
    mongo_client[target_db].contents.insert_one({"_id": 1, "live": True})
    with pytest.raises(EncryptionKeyError) as err:
        restore_mongodb(mongo_client, store, small_chunk_backup, workdir=tmp_path / "w", safety_dir=tmp_path / "s",
                        target_db=target_db, drop=True)
    assert message in str(err.value)
    assert all(t not in str(err.value) for t in keys.texts)
    assert list(mongo_client[target_db].contents.find()) == [{"_id": 1, "live": True}]
    shutil.rmtree(tmp_path / "w", ignore_errors=True)
