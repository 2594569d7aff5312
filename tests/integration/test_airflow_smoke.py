"""The operators' connection layer against the real servers: Airflow resolves the connections the
policy names (from AIRFLOW_CONN_* here, a secrets backend in production) and the product builds
working clients from them — a MongoDB it can ping, an S3 and a GCS store it can write, read
back and hash — with no secret in what it reports."""

from __future__ import annotations

import hashlib
import uuid


def test_operators_build_working_clients_from_airflow_connections(airflow_db, mongo_server, s3_bucket, gcs_bucket):
    from backup_dr.hooks import conn_info, mongo_client, open_store
    from backup_dr.operators._common import get_policy

    mongo = conn_info("mongo_korea_public_data")
    assert (mongo.host, mongo.port) == ("127.0.0.1", mongo_server.port)
    with mongo_client("mongo_korea_public_data") as client:
        assert client.admin.command("ping")["ok"] == 1.0
        assert client.admin.command("hello")["setName"]  # the replica-set view the dump relies on

    policy = get_policy()
    payload = f"smoke {uuid.uuid4()}".encode() * 100
    for name, bucket in (("s3", s3_bucket), ("gcs", gcs_bucket)):
        store = open_store(policy.stores[name])  # BackupStoreHook: the core builders, fed the Airflow connection
        assert bucket in store.describe()
        key = f"backup-dr-v1/_smoke/{uuid.uuid4().hex}.bin"
        store.put_bytes(key, payload)
        assert store.get_bytes(key) == payload
        assert store.hash_object(key) == (len(payload), hashlib.sha256(payload).hexdigest())
        store.delete(key)
        assert store.stat(key) is None
        secret = conn_info(policy.stores[name].conn_id).password
        assert not secret or secret not in store.describe()


def test_source_hook_reads_its_connection_on_first_use_and_names_a_missing_one(airflow_db, mongo_server, redis_server):
    import pytest

    from backup_dr.core.errors import ConnectionConfigError
    from backup_dr.hooks import SourceHook

    missing = SourceHook("mongo_nowhere")  # provider convention: the constructor resolves nothing
    with pytest.raises(ConnectionConfigError, match="Airflow connection 'mongo_nowhere' is not defined"):
        missing.mongo_client()
    mongo = SourceHook("mongo_korea_public_data")
    with mongo.mongo_client(serverSelectionTimeoutMS=3000) as client:
        assert client.admin.command("ping")["ok"] == 1.0
    redis = SourceHook("redis_cache")
    assert redis.secrets == [redis_server.password]
    with redis.redis_client(timeout=3) as r:
        assert r.ping() is True
