"""Fixtures for store / replication / verification tests against real moto and the GCS emulator.

Stores are built the way production builds them (``open_store`` from a policy-like
``StoreSpec`` and the ``AIRFLOW_CONN_*`` connections the root conftest sets), except where
a test needs small multipart parts, which only a directly constructed ``S3Store`` allows.
"""

from __future__ import annotations

import json
import os
import uuid
from datetime import datetime, timedelta, timezone

import pytest

from backup_dr.core.artifacts.layout import BackupId
from backup_dr.core.artifacts.writer import ArtifactWriter
from backup_dr.core.policy_model import ObjectLock, Retention, StoreSpec
from backup_dr.core.stores import LocalStore, open_store
from backup_dr.core.stores.s3 import MiB, S3Store
from backup_dr.devstack.servers import MotoServer

RETENTION = Retention(keep_within=timedelta(days=90), text="3 months")


@pytest.fixture
def local(local_store_root) -> LocalStore:
    return LocalStore(local_store_root, name="local")


@pytest.fixture
def make_backup(local):
    """``make_backup(sizes={"name": nbytes}, stamp=..., cls=..., source=..., kind=...)`` -> Manifest.

    Random bytes written through the real ArtifactWriter (manifest last)."""

    def make(sizes: dict[str, int], *, stamp: datetime | None = None, cls: str = "critical_data", source: str = "mongodb",
             kind: str = "full", store: LocalStore | None = None, retention: Retention = RETENTION, commit: bool = True):
        when = stamp or datetime.now(timezone.utc).replace(microsecond=0) - timedelta(hours=1)
        writer = ArtifactWriter(store or local, BackupId.new(cls, source, kind, when), source_type="mongodb", retention=retention)
        writer.begin()
        for name, size in sizes.items():
            with writer.open_file(name, codec="none", format="bin") as out:
                left = size
                while left:
                    n = min(left, 1 << 20)
                    out.write(os.urandom(n))
                    left -= n
        if not commit:
            writer._release()
            return writer.bid
        return writer.commit(consistent_point={"end": {"t": int(when.timestamp()) + 60, "i": 1}})

    return make


@pytest.fixture
def s3_store(s3_bucket):
    """The policy's S3 store shape, built by the factory from the ``backup_s3`` env connection."""
    return open_store(StoreSpec(name="s3", type="s3", bucket=s3_bucket, prefix="backup-dr", conn_id="backup_s3"))


@pytest.fixture
def s3_small_parts(s3_server, s3_bucket):
    """The same bucket through an S3Store with 5 MiB multipart parts, so a few MB exercise multipart."""
    return S3Store(s3_server.client(), s3_bucket, prefix="backup-dr", name="s3", conn_id="backup_s3",
                   multipart_threshold=5 * MiB, part_size=5 * MiB)


@pytest.fixture
def gcs_store(gcs_bucket):
    return open_store(StoreSpec(name="gcs", type="gcs", bucket=gcs_bucket, prefix="backup-dr", conn_id="backup_gcs"))


@pytest.fixture
def locked_bucket(s3_server):
    name = f"lck-{uuid.uuid4().hex[:12]}"
    s3_server.client().create_bucket(Bucket=name, ObjectLockEnabledForBucket=True)
    return name


@pytest.fixture
def locked_s3(s3_server, locked_bucket):
    """An Object Lock (COMPLIANCE) store with small parts: big files go multipart, whose lock headers moto ignores."""
    return S3Store(s3_server.client(), locked_bucket, prefix="backup-dr", name="s3", conn_id="backup_s3",
                   object_lock=ObjectLock("COMPLIANCE"), multipart_threshold=5 * MiB, part_size=5 * MiB)


class AuthMotoServer(MotoServer):
    """moto enforcing IAM authentication after the first few (setup) requests."""

    name = "moto-auth"
    free_actions = 4

    def env(self):
        env = dict(super().env())
        env["INITIAL_NO_AUTH_ACTION_COUNT"] = str(self.free_actions)
        return env


@pytest.fixture(scope="session")
def auth_s3(tmp_path_factory):
    """(server, access key id, secret, bucket): a real IAM user whose key works; any other key fails."""
    import boto3

    with AuthMotoServer(tmp_path_factory.mktemp("moto-auth")) as server:
        iam = boto3.client("iam", endpoint_url=server.endpoint_url, region_name="us-east-1",
                           aws_access_key_id="setup", aws_secret_access_key="setup")
        iam.create_user(UserName="backup")
        iam.put_user_policy(UserName="backup", PolicyName="all", PolicyDocument=json.dumps(
            {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "*", "Resource": "*"}]}))
        key = iam.create_access_key(UserName="backup")["AccessKey"]
        s3 = boto3.client("s3", endpoint_url=server.endpoint_url, region_name="us-east-1",
                          aws_access_key_id=key["AccessKeyId"], aws_secret_access_key=key["SecretAccessKey"])
        s3.create_bucket(Bucket="auth-bucket")
        yield server, key["AccessKeyId"], key["SecretAccessKey"], "auth-bucket"
