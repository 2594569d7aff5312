"""``role_arn`` on an aws connection: STS AssumeRole, then S3 with the temporary credentials.

Against moto enforcing IAM (``s3_role``): the connection's own key may only assume the role,
so every S3 success below proves the request was signed with the role's credentials. The
same core builder serves the CLI and (through ``BackupStoreHook``) the operators.
"""

from __future__ import annotations

import hashlib
import json

import pytest

from backup_dr.core.artifacts.reader import fetch_verified, load_manifest
from backup_dr.core.connections import ConnInfo, parse_conn
from backup_dr.core.errors import ConnectionConfigError
from backup_dr.core.policy_model import StoreSpec
from backup_dr.core.replicate import replicate
from backup_dr.core.stores import open_store
from backup_dr.core.stores.aws import session_from_conn
from backup_dr.core.stores.s3 import S3Store


def _conn(s3_role, conn_id: str = "s3_role", **extra) -> ConnInfo:
    data = json.loads(json.dumps(s3_role["conn"]))
    data["extra"].update(extra)
    return parse_conn(conn_id, json.dumps(data))


def _spec(s3_role, conn_id: str = "s3_role") -> StoreSpec:
    return StoreSpec(name="s3", type="s3", bucket=s3_role["bucket"], prefix="backup-dr", conn_id=conn_id)


def _caller_arn(conn: ConnInfo, server) -> str:
    return session_from_conn(conn).client("sts", endpoint_url=server.endpoint_url).get_caller_identity()["Arn"]


def test_the_role_is_assumed_and_an_artifact_goes_up_and_comes_back(s3_role, local, make_backup, tmp_path):
    import boto3

    server, conn = s3_role["server"], _conn(s3_role)
    # the connection's own key cannot touch S3: whatever works below used the assumed role
    direct = S3Store(boto3.client("s3", endpoint_url=server.endpoint_url, region_name="us-east-1",
                                  aws_access_key_id=s3_role["key_id"], aws_secret_access_key=s3_role["secret"]),
                     s3_role["bucket"], prefix="backup-dr", name="s3", conn_id="s3_role")
    with pytest.raises(ConnectionConfigError, match="access denied"):
        direct.put_bytes("probe", b"x")

    # assume_role_kwargs reach the AssumeRole call (RoleSessionName names the session)
    assert _caller_arn(conn, server) == "arn:aws:sts::123456789012:assumed-role/backup-writer/backup-dr-test"

    store = open_store(_spec(s3_role), conn)
    manifest = make_backup({"dump.archive": 3_000_000, "meta.json": 700})
    replicate(local, manifest, store)
    back = load_manifest(store, manifest.id)
    assert back.backup_id == manifest.backup_id
    path = fetch_verified(store, back, "dump.archive", tmp_path)
    assert hashlib.sha256(path.read_bytes()).hexdigest() == manifest.file("dump.archive").sha256
    assert store.hash_object(manifest.id.key("meta.json")) == (700, manifest.file("meta.json").sha256)


def test_the_default_session_name_is_the_providers(s3_role):
    conn = _conn(s3_role, conn_id="backup s3/prod", assume_role_kwargs={})
    assert _caller_arn(conn, s3_role["server"]).endswith("assumed-role/backup-writer/Airflow_backup-s3-prod")


def test_an_unreachable_sts_is_a_retryable_error_not_a_fallback_to_the_own_key(s3_role):
    from backup_dr.core.errors import StoreError

    conn = _conn(s3_role, service_config={"sts": {"endpoint_url": "http://127.0.0.1:9"}})
    with pytest.raises(StoreError, match="STS unreachable while assuming role") as err:
        open_store(_spec(s3_role), conn)
    assert err.value.retryable


def test_unsupported_assume_role_settings_are_refused_by_name(s3_role):
    with pytest.raises(ConnectionConfigError, match="assume_role_method 'assume_role_with_saml'"):
        open_store(_spec(s3_role), _conn(s3_role, assume_role_method="assume_role_with_saml"))
    with pytest.raises(ConnectionConfigError, match="assume_role_kwargs must be a JSON object"):
        open_store(_spec(s3_role), _conn(s3_role, assume_role_kwargs="ExternalId=x"))
    with pytest.raises(ConnectionConfigError, match="assume_role_kwargs are not valid for AssumeRole") as err:
        open_store(_spec(s3_role), _conn(s3_role, assume_role_kwargs={"DurationSeconds": "one hour"}))
    assert s3_role["secret"] not in str(err.value) + str(err.value.detail)


def test_backup_store_hook_opens_the_store_through_the_role(s3_role, airflow_db, monkeypatch):
    from backup_dr.hooks import BackupStoreHook

    monkeypatch.setenv("AIRFLOW_CONN_S3_ROLE", json.dumps(s3_role["conn"]))
    hook = BackupStoreHook(_spec(s3_role, conn_id="not_defined_yet"), store_conn_id="s3_role")
    assert hook.spec.conn_id == "s3_role" and "_store" not in hook.__dict__  # nothing resolved yet
    with hook as store:
        store.put_bytes("backup-dr-v1/_probe.bin", b"through the role")
        assert store.get_bytes("backup-dr-v1/_probe.bin") == b"through the role"
        assert hook.get_conn() is store  # built once
    assert hook.test_connection()[0] is True

    missing = BackupStoreHook(_spec(s3_role, conn_id="no_such_conn"))  # lazy: no error until used
    with pytest.raises(ConnectionConfigError, match="'no_such_conn' is not defined"):
        missing.get_conn()
