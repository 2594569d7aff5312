"""Replication to local + S3 (moto) + GCS (emulator): every copy's bytes, verification, retries."""

from __future__ import annotations

import hashlib
import os
import signal
import subprocess
import sys
import textwrap
import time
from contextlib import contextmanager
from pathlib import Path

import pytest

from backup_dr.core.artifacts.reader import fetch_verified
from backup_dr.core.catalog import Catalog
from backup_dr.core.errors import IntegrityError, StoreError
from backup_dr.core.replicate import ReplicationError, replicate, replicate_all
from backup_dr.core.stores import LocalStore
from backup_dr.core.stores.gcs import GCSStore
from backup_dr.core.stores.s3 import MiB, S3Store
from backup_dr.core.verify import latest_verification

ROOT = Path(__file__).resolve().parents[3]


def raw_bytes(store, key: str) -> bytes:
    """The object's bytes read with the vendor client, bypassing the store code under test."""
    if isinstance(store, S3Store):
        return store.client.get_object(Bucket=store.bucket, Key=f"backup-dr/{key}")["Body"].read()
    if isinstance(store, GCSStore):
        return store.bucket.blob(f"backup-dr/{key}").download_as_bytes()
    return store.path(key).read_bytes()


def write_raw(store, key: str, data: bytes) -> None:
    """Rewrite an object at rest with the vendor client (simulated bit rot / tampering)."""
    if isinstance(store, S3Store):
        store.client.put_object(Bucket=store.bucket, Key=f"backup-dr/{key}", Body=data)
    elif isinstance(store, GCSStore):
        store.bucket.blob(f"backup-dr/{key}").upload_from_string(data)
    else:
        store.path(key).write_bytes(data)


def flip_bit(data: bytes, at: int) -> bytes:
    return data[:at] + bytes([data[at] ^ 0x01]) + data[at + 1 :]


def test_backup_replicated_to_local_s3_gcs_each_copy_hashes_to_manifest(local, make_backup, s3_small_parts, gcs_store, tmp_path):
    m = make_backup({"meta.json": 1000, "medium.bin": 3 * MiB, "large.bin": 11 * MiB})
    nfs = LocalStore(tmp_path / "nfs", name="nfs")
    results = replicate_all(local, m, [local, nfs, s3_small_parts, gcs_store])

    assert {n: r["status"] for n, r in results.items()} == {"local": "source", "nfs": "replicated", "s3": "replicated", "gcs": "replicated"}
    local_manifest = local.get_bytes(m.id.manifest_key)
    for store in (nfs, s3_small_parts, gcs_store):
        assert results[store.name]["uploaded"] == 3 and results[store.name]["verified"] is True
        for f in m.files:
            data = raw_bytes(store, m.id.key(f.name))
            assert len(data) == f.size and hashlib.sha256(data).hexdigest() == f.sha256, (store.name, f.name)
        assert raw_bytes(store, m.id.manifest_key) == local_manifest
    head = s3_small_parts.client.head_object(Bucket=s3_small_parts.bucket, Key=f"backup-dr/{m.id.key('large.bin')}")
    assert head["ETag"].endswith('-3"')  # 11 MiB in 5 MiB parts: the multipart path was used

    again = replicate_all(local, m, [nfs, s3_small_parts, gcs_store])
    assert {r["status"] for r in again.values()} == {"present"} and all(r["uploaded"] == 0 for r in again.values())


@pytest.mark.parametrize("store_fixture", ["s3_small_parts", "gcs_store"])
def test_corrupt_source_fails_verification_and_no_manifest_is_written(request, store_fixture, local, make_backup):
    dest = request.getfixturevalue(store_fixture)
    m = make_backup({"a.bin": 100_000, "b.bin": 6 * MiB})
    path = local.path(m.id.key("b.bin"))
    path.write_bytes(flip_bit(path.read_bytes(), 4_000_000))  # the local copy rotted after the manifest was written

    with pytest.raises(IntegrityError) as err:
        replicate(local, m, dest)
    assert "b.bin" in str(err.value) and "expected" in str(err.value)
    assert dest.stat(m.id.manifest_key) is None
    assert Catalog([dest]).find(m.backup_id) is None


class FlakySource(LocalStore):
    """The real local store, except that reading ``fail_name`` raises EIO after ``fail_after`` bytes (once)."""

    def __init__(self, root, fail_name: str, fail_after: int):
        super().__init__(root, name="local")
        self.fail_name, self.fail_after, self.failed = fail_name, fail_after, False

    @contextmanager
    def open(self, key):
        with super().open(key) as f:
            if self.failed or not key.endswith("/" + self.fail_name):
                yield f
                return
            self.failed = True
            source = self

            class Dying:
                def __init__(self):
                    self.n = 0

                def read(self, size=-1):
                    size = size if size and size > 0 else 1 << 20
                    if self.n + size > source.fail_after:  # the disk dies inside this read
                        raise OSError(5, "Input/output error (injected)")
                    data = f.read(size)
                    self.n += len(data)
                    return data

            yield Dying()


@pytest.mark.parametrize("store_fixture", ["s3_small_parts", "gcs_store"])
def test_retry_after_failure_mid_upload_leaves_exactly_one_complete_backup(request, store_fixture, local, make_backup):
    dest = request.getfixturevalue(store_fixture)
    m = make_backup({"a.bin": 2 * MiB, "b.bin": 12 * MiB, "c.bin": 1 * MiB})
    flaky = FlakySource(local.root, "b.bin", fail_after=9 * MiB)

    with pytest.raises(StoreError) as err:
        replicate(flaky, m, dest)
    assert err.value.retryable and "Input/output error" in str(err.value)
    assert dest.stat(m.id.manifest_key) is None and Catalog([dest]).list() == []

    result = replicate(local, m, dest)  # the task retry
    assert (result["status"], result["skipped"], result["uploaded"]) == ("replicated", 1, 2)  # a.bin was verified, kept
    keys = [i.key for i in dest.list(m.id.prefix)]
    data_keys = [k for k in keys if "/verify-" not in k]
    assert data_keys == sorted(m.id.key(n) for n in ("a.bin", "b.bin", "c.bin", "manifest.json"))
    assert len(keys) == len(data_keys) + 1  # one copy check: the read-back of this (second) attempt
    assert latest_verification(dest, m.backup_id)["method"] == "replication read-back"
    [entry] = Catalog([dest]).list()
    assert entry.backup_id == m.backup_id and entry.size == m.total_size
    for f in m.files:
        assert hashlib.sha256(raw_bytes(dest, m.id.key(f.name))).hexdigest() == f.sha256


_CHILD = textwrap.dedent(
    """
    import sys, time, logging
    sys.path.insert(0, {plugins!r})
    from contextlib import contextmanager
    from backup_dr.core.artifacts.reader import load_manifest
    from backup_dr.core.artifacts.layout import BackupId
    from backup_dr.core.connections import conn_from_env
    from backup_dr.core.replicate import replicate
    from backup_dr.core.stores import LocalStore
    from backup_dr.core.stores.s3 import S3Store, client_from_conn, MiB

    class SlowSource(LocalStore):  # a slow disk: the transfer takes long enough to be killed mid-way
        @contextmanager
        def open(self, key):
            with super().open(key) as f:
                class Slow:
                    def read(self, n=-1):
                        time.sleep(0.15)
                        return f.read(min(n, MiB) if n and n > 0 else MiB)
                yield Slow()

    local = SlowSource({root!r})
    dest = S3Store(client_from_conn(conn_from_env("backup_s3")), {bucket!r}, prefix="backup-dr", name="s3",
                   multipart_threshold=5 * MiB, part_size=5 * MiB, max_concurrency=1)
    replicate(local, load_manifest(local, BackupId.parse({bid!r})), dest)
    print("FINISHED", flush=True)
    """
)


def test_worker_killed_mid_multipart_upload_then_retry_leaves_one_complete_backup(s3_server, s3_bucket, s3_small_parts,
                                                                                   local, make_backup, tmp_path):
    m = make_backup({"first.bin": 1 * MiB, "big.bin": 30 * MiB})
    client = s3_server.client()
    script = tmp_path / "child.py"
    script.write_text(_CHILD.format(plugins=str(ROOT / "plugins"), root=str(local.root), bucket=s3_bucket, bid=m.backup_id))
    child = subprocess.Popen([sys.executable, str(script)], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, env=dict(os.environ))
    try:
        deadline = time.monotonic() + 60
        parts = 0
        while time.monotonic() < deadline and child.poll() is None:
            ups = client.list_multipart_uploads(Bucket=s3_bucket).get("Uploads", [])
            if ups:
                parts = len(client.list_parts(Bucket=s3_bucket, Key=ups[0]["Key"], UploadId=ups[0]["UploadId"]).get("Parts", []))
                if parts >= 1:
                    break
            time.sleep(0.1)
        assert child.poll() is None, child.stdout.read().decode()[-3000:]
        assert parts >= 1, "the child never got a multipart part up"
        os.kill(child.pid, signal.SIGKILL)  # the worker dies mid-transfer: no cleanup of any kind
        child.wait(10)
    finally:
        if child.poll() is None:
            os.kill(child.pid, signal.SIGKILL)
            child.wait(10)
    assert s3_small_parts.stat(m.id.manifest_key) is None
    assert s3_small_parts.stat(m.id.key("first.bin")) is not None and s3_small_parts.stat(m.id.key("big.bin")) is None
    assert len(client.list_multipart_uploads(Bucket=s3_bucket).get("Uploads", [])) == 1

    result = replicate(local, m, s3_small_parts)  # the retry
    assert (result["skipped"], result["uploaded"]) == (1, 1)
    assert client.list_multipart_uploads(Bucket=s3_bucket).get("Uploads", []) == []
    keys = [i.key for i in s3_small_parts.list(m.id.prefix)]
    assert [k for k in keys if "/verify-" not in k] == sorted(m.id.key(n) for n in ("big.bin", "first.bin", "manifest.json"))
    assert len(keys) == 4 and latest_verification(s3_small_parts, m.backup_id)["method"] == "replication read-back"
    assert hashlib.sha256(raw_bytes(s3_small_parts, m.id.key("big.bin"))).hexdigest() == m.file("big.bin").sha256


class BitRotStore(LocalStore):
    """A real local store on a disk that silently flips a bit in what it stores (and says nothing)."""

    def put(self, key, stream, **kw):
        info = super().put(key, stream, **kw)
        p = self.path(key)
        p.write_bytes(flip_bit(p.read_bytes(), 0))
        return info


def test_copy_that_does_not_read_back_identically_fails_and_gets_no_manifest(local, make_backup, tmp_path):
    m = make_backup({"a.bin": 10_000})
    rotten = BitRotStore(tmp_path / "rotten", name="rotten")
    with pytest.raises(IntegrityError) as err:
        replicate(local, m, rotten)
    assert "a.bin did not verify after upload; no manifest written" in str(err.value)
    assert rotten.stat(m.id.manifest_key) is None and Catalog([rotten]).list() == []


def test_one_failing_store_does_not_hide_the_others(local, make_backup, s3_store, gcs_server, tmp_path):
    m = make_backup({"a.bin": 200_000})
    nfs = LocalStore(tmp_path / "nfs", name="nfs")
    missing = GCSStore(gcs_server.client(), "no-such-bucket-here", name="gcs", conn_id="backup_gcs")

    with pytest.raises(ReplicationError) as err:
        replicate_all(local, m, [s3_store, missing, nfs])
    results = err.value.results
    assert {n: r["status"] for n, r in results.items()} == {"s3": "replicated", "gcs": "failed", "nfs": "replicated"}
    assert results["gcs"]["error_type"] == "ConnectionConfigError" and "no-such-bucket-here" in results["gcs"]["error"]
    assert err.value.retryable is False  # a missing bucket will not appear by retrying
    assert "succeeded: nfs, s3" in str(err.value)
    assert [e.backup_id for e in Catalog([s3_store, nfs]).list()] == [m.backup_id]


def test_bit_flip_at_rest_is_detected_by_verify_and_recorded(local, make_backup, s3_store, gcs_store, tmp_path):
    from backup_dr.core.verify import latest_verification, record_verification, verify_copy

    m = make_backup({"meta.json": 5000, "data.bin": 2 * MiB})
    nfs = LocalStore(tmp_path / "nfs", name="nfs")
    replicate_all(local, m, [s3_store, gcs_store, nfs])
    for store in (s3_store, gcs_store, nfs):
        assert verify_copy(store, m)["ok"] is True

    key = m.id.key("data.bin")
    for store, at in ((s3_store, 1_000_000), (gcs_store, 7), (nfs, 2 * MiB - 1)):
        write_raw(store, key, flip_bit(raw_bytes(store, key), at))
        result = verify_copy(store, m)
        assert result["ok"] is False and result["problems"] == ["data.bin: sha256 mismatch (corrupt or tampered)"]
        assert {f["name"]: f["ok"] for f in result["files"]} == {"meta.json": True, "data.bin": False}
        record_verification(store, m.id, result)
        assert latest_verification(store, m.backup_id)["ok"] is False
        with pytest.raises(IntegrityError):
            fetch_verified(store, m, "data.bin", tmp_path / f"work-{store.name}")  # a restore refuses these bytes

    record_verification(local, m.id, verify_copy(local, m))
    entry = Catalog([local, s3_store, gcs_store, nfs]).find(m.backup_id)
    states = {n: s["verified"] for n, s in entry.to_dict()["stores"].items()}
    assert states == {"local": True, "s3": False, "gcs": False, "nfs": False}
    assert entry.verified_in() == ["local"]


def test_backup_without_manifest_is_invisible_to_the_catalog(local, make_backup, s3_store):
    from datetime import datetime, timezone

    done = make_backup({"a.bin": 1000}, stamp=datetime(2026, 11, 20, 8, tzinfo=timezone.utc))
    partial = make_backup({"a.bin": 1000}, stamp=datetime(2026, 11, 21, 8, tzinfo=timezone.utc), commit=False)
    replicate(local, done, s3_store)
    s3_store.put_bytes(partial.key("a.bin"), b"x" * 1000)  # a crashed replication: data, no manifest

    catalog = Catalog([local, s3_store])
    assert [e.backup_id for e in catalog.list()] == [done.backup_id]
    assert catalog.find(str(partial)) is None
    assert catalog.newest("critical_data", "mongodb").backup_id == done.backup_id
    every = {e.backup_id: e.complete for e in catalog.list(include_incomplete=True)}
    assert every == {done.backup_id: True, str(partial): False}


def test_object_lock_applied_to_every_object_even_multipart(local, make_backup, locked_s3):
    m = make_backup({"small.bin": 1000, "big.bin": 11 * MiB})
    result = replicate(local, m, locked_s3)
    until = m.expires_at
    assert result["locked_until"] == until.isoformat().replace("+00:00", "Z")
    for name in ("small.bin", "big.bin", "manifest.json"):
        head = locked_s3.client.head_object(Bucket=locked_s3.bucket, Key=f"backup-dr/{m.id.key(name)}")
        assert head["ObjectLockMode"] == "COMPLIANCE", name
        assert abs((head["ObjectLockRetainUntilDate"] - until).total_seconds()) < 1, name
    assert "-" in locked_s3.client.head_object(Bucket=locked_s3.bucket, Key=f"backup-dr/{m.id.key('big.bin')}")["ETag"]
