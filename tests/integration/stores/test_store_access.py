"""Object Lock vs prune, credentials errors, and the store factory, against real moto / GCS emulator."""

from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone

import pytest

from backup_dr.core.catalog import Catalog
from backup_dr.core.connections import ConnInfo
from backup_dr.core.errors import ConnectionConfigError, PolicyError
from backup_dr.core.policy_model import Retention, StoreSpec
from backup_dr.core.replicate import replicate
from backup_dr.core.retention import execute_prune, plan_prune
from backup_dr.core.stores import ObjectLockedError, open_store, spec_from_url
from backup_dr.core.stores.s3 import MiB, S3Store


def test_prune_skips_object_locked_backup_reports_it_and_moves_on(s3_server, locked_bucket, locked_s3, local, make_backup):
    now = datetime.now(timezone.utc).replace(microsecond=0)
    keep = Retention(keep_within=timedelta(days=30), text="1 month")
    locked = make_backup({"big.bin": 6 * MiB, "meta.json": 500}, stamp=now - timedelta(days=10), retention=keep)
    unlocked = make_backup({"big.bin": 100_000}, stamp=now - timedelta(days=5), retention=keep)
    newest = make_backup({"big.bin": 100_000}, stamp=now - timedelta(days=1), retention=keep)
    plain = S3Store(s3_server.client(), locked_bucket, prefix="backup-dr", name="s3")  # same bucket, no lock asked
    replicate(local, locked, locked_s3)  # retained until its expiry: now + 20 days (real time)
    replicate(local, unlocked, plain)
    replicate(local, newest, plain)

    # 60 days from now, both older backups are past retention; only `locked` is still under Object Lock
    plan = plan_prune([locked_s3], {"critical_data": keep}, now=now + timedelta(days=60))
    assert {d.backup_id for d in plan.deletions()} == {locked.backup_id, unlocked.backup_id}
    result = execute_prune(plan, [locked_s3])

    assert [d["backup_id"] for d in result["deleted"]] == [unlocked.backup_id]
    assert [(x["backup_id"], x["key"]) for x in result["locked"]] == [(locked.backup_id, locked.id.manifest_key)]
    assert result["failed"] == []
    assert [e.backup_id for e in Catalog([locked_s3]).list()] == [newest.backup_id, locked.backup_id]
    assert [i.key for i in locked_s3.list(unlocked.id.prefix)] == []
    # untouched: data files, manifest and the replication's copy-check record
    assert len([i for i in locked_s3.list(locked.id.prefix) if "/verify-" not in i.key]) == 3

    # the server itself refuses: deleting the locked version is denied, surfaced as ObjectLockedError
    key = locked.id.key("big.bin")
    with pytest.raises(ObjectLockedError) as err:
        locked_s3.delete(key)
    assert "COMPLIANCE" in str(err.value) and "not deleted" in str(err.value)
    assert locked_s3.hash_object(key) == (locked.file("big.bin").size, locked.file("big.bin").sha256)


def _aws_conn(conn_id: str, server, key: str, secret: str) -> ConnInfo:
    return ConnInfo(conn_id, "aws", login=key, password=secret, extra={"endpoint_url": server.endpoint_url, "region_name": "us-east-1"})


def test_wrong_s3_credentials_give_a_clear_error_naming_the_connection_not_the_secret(auth_s3, local, make_backup):
    server, key_id, secret, bucket = auth_s3
    spec = StoreSpec(name="s3", type="s3", bucket=bucket, prefix="backup-dr", conn_id="backup_s3_prod")
    good = open_store(spec, _aws_conn("backup_s3_prod", server, key_id, secret))
    good.put_bytes("probe.txt", b"ok")  # the right key works: the failures below are about credentials
    assert good.get_bytes("probe.txt") == b"ok"

    wrong_secret = "Wr0ngSecret/abc+123XYZ"
    for key, sec in ((key_id, wrong_secret), ("AKIAUNKNOWNKEY000000", wrong_secret)):
        store = open_store(spec, _aws_conn("backup_s3_prod", server, key, sec))
        for action in (lambda: list(store.list("")), lambda: store.put_bytes("x.txt", b"x"), lambda: store.get_bytes("probe.txt")):
            with pytest.raises(ConnectionConfigError) as err:
                action()
            text = f"{err.value}\n{err.value!r}\n{err.value.__cause__}"
            assert "connection 'backup_s3_prod'" in str(err.value)
            assert "access denied" in str(err.value) and "hint: check the access key/secret" in str(err.value)
            assert wrong_secret not in text and secret not in text
            assert err.value.retryable is False


def test_bad_gcs_key_gives_a_clear_error_naming_the_connection_not_the_key(gcs_server):
    secret = "MIIEvQIBADANBgkqhkiG9w0BAQEFAASCBKcwggSjAgEAAoIBAQC-SECRET-KEY-MATERIAL"
    keyfile = {"type": "service_account", "project_id": "p", "private_key_id": "1", "client_email": "b@p.iam.gserviceaccount.com",
               "private_key": f"-----BEGIN PRIVATE KEY-----\n{secret}\n-----END PRIVATE KEY-----\n",
               "token_uri": "https://oauth2.googleapis.com/token"}
    conn = ConnInfo("backup_gcs_prod", "google_cloud_platform", extra={"keyfile_dict": json.dumps(keyfile)})
    with pytest.raises(ConnectionConfigError) as err:
        open_store(StoreSpec(name="gcs", type="gcs", bucket="b", conn_id="backup_gcs_prod"), conn)
    assert "connection 'backup_gcs_prod'" in str(err.value) and "keyfile_dict" in str(err.value)
    assert secret not in f"{err.value}{err.value!r}{err.value.__cause__}{err.value.__context__}"


def test_factory_rejects_wrong_types_and_honours_addressing_style(s3_server, s3_bucket):
    with pytest.raises(PolicyError) as err:
        open_store(StoreSpec(name="tape", type="tape", bucket="b"))  # type: ignore[arg-type]
    assert "stores.tape.type: unknown store type 'tape'; known: local, s3, gcs" in str(err.value)

    gcp = ConnInfo("backup_gcs", "google_cloud_platform", extra={"is_anonymous": True})
    with pytest.raises(ConnectionConfigError, match="connection 'backup_gcs' has type 'google_cloud_platform'; an S3 store needs an 'aws'"):
        open_store(StoreSpec(name="s3", type="s3", bucket=s3_bucket, conn_id="backup_gcs"), gcp)

    conn = ConnInfo("backup_s3", "aws", login=s3_server.access_key, password=s3_server.secret_key,
                    extra={"endpoint_url": s3_server.endpoint_url, "region_name": "us-east-1",
                           "service_config": {"s3": {"addressing_style": "path"}}})
    store = open_store(StoreSpec(name="s3", type="s3", bucket=s3_bucket, prefix="p", conn_id="backup_s3"), conn)
    assert store.client.meta.config.s3["addressing_style"] == "path"
    store.put_bytes("k.txt", b"v")
    assert s3_server.client().get_object(Bucket=s3_bucket, Key="p/k.txt")["Body"].read() == b"v"

    assert spec_from_url("s3://bkt/a/b", conn_id="c") == StoreSpec(name="s3", type="s3", bucket="bkt", prefix="a/b", conn_id="c")
    assert spec_from_url("/srv/backups").path == "/srv/backups" and spec_from_url("gs://g/x").type == "gcs"
    with pytest.raises(ConnectionConfigError, match="unknown scheme 'ftp'"):
        spec_from_url("ftp://host/x")


def test_missing_objects_are_values_and_errors(s3_store, gcs_store):
    from backup_dr.core.errors import NotFoundError

    for store in (s3_store, gcs_store):
        assert store.stat("nope/x") is None
        store.delete("nope/x")  # absent is fine
        with pytest.raises(NotFoundError):
            store.get_bytes("nope/x")


def test_unreachable_endpoint_is_a_retryable_store_error():
    from backup_dr.core.errors import StoreError
    from backup_dr.devstack.servers import free_port

    conn = ConnInfo("backup_s3", "aws", login="AKIAEXAMPLE", password="s3cr3t-value",
                    extra={"endpoint_url": f"http://127.0.0.1:{free_port()}", "region_name": "us-east-1",
                           "config_kwargs": {"retries": {"max_attempts": 1}, "connect_timeout": 1}})
    store = open_store(StoreSpec(name="s3", type="s3", bucket="b", conn_id="backup_s3"), conn)
    with pytest.raises(StoreError) as err:
        store.stat("k")
    assert err.value.retryable and "network error while checking k (EndpointConnectionError)" in str(err.value)
    assert "s3cr3t-value" not in str(err.value)
