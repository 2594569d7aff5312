"""The core reads connections as the provider hooks do: the CLI and the operators share these builders."""

from __future__ import annotations

import pytest
from pymongo.uri_parser import parse_uri

from backup_dr.core.connections import ConnInfo, mongo_client_from, mongo_uri
from backup_dr.core.errors import ConnectionConfigError
from backup_dr.core.stores.gcs import client_from_conn


def _options(**extra) -> dict:
    return parse_uri(mongo_uri(ConnInfo("m", "mongo", "db.example", 27017, "backup", "s3cr:et/", extra=extra)))


def test_allow_insecure_with_tls_accepts_an_invalid_certificate_like_mongohook():
    parsed = _options(tls=True, allow_insecure="true", authSource="admin")
    assert parsed["options"]["tlsAllowInvalidCertificates"] is True
    assert (parsed["username"], parsed["password"], parsed["options"]["authSource"]) == ("backup", "s3cr:et/", "admin")


def test_allow_insecure_without_tls_changes_nothing():
    assert "tlsAllowInvalidCertificates" not in _options(allow_insecure="true")["options"]
    assert "tlsAllowInvalidCertificates" not in _options(tls=True)["options"]


def test_the_one_client_builder_reads_the_extras_as_mongohook_with_their_json_types():
    conn = ConnInfo("m", "mongo", "db.example", 27017, "backup", "s3cr:et/", "app",
                    extra={"tls": True, "allow_insecure": True, "authSource": "admin", "replicaSet": "rs0",
                           "connectTimeoutMS": 1234, "readPreference": "primary"})
    client = mongo_client_from(conn, readpreference="secondaryPreferred", serverSelectionTimeoutMS=50, connect=False)
    try:  # never connected: pymongo's own parsed options are what would be sent
        opts = client.options
        assert opts._options["tlsAllowInvalidCertificates"] is True and opts.replica_set_name == "rs0"
        assert opts.pool_options.connect_timeout == 1.234 and opts.server_selection_timeout == 0.05
        assert client.read_preference.mongos_mode == "secondaryPreferred"  # the caller's option wins, whatever its case
        creds = opts.pool_options._credentials
        assert (creds.username, creds.password, creds.source) == ("backup", "s3cr:et/", "admin")
    finally:
        client.close()


def test_srv_connections_are_refused_as_mongohook_refuses_them():
    with pytest.raises(ConnectionConfigError, match="srv and a port"):
        mongo_client_from(ConnInfo("m", "mongo", "cluster.example", 27017, extra={"srv": True}))
    with pytest.raises(ConnectionConfigError, match="conn_type 'mongodb\\+srv'"):
        mongo_client_from(ConnInfo("m", "mongodb+srv", "cluster.example"))
    assert mongo_uri(ConnInfo("m", "mongo", "cluster.example", extra={"srv": "true"})).startswith("mongodb+srv://cluster.example/")
    with pytest.raises(ConnectionConfigError, match="is a 'redis' connection; a MongoDB target needs conn_type 'mongo'"):
        mongo_client_from(ConnInfo("redis_cache", "redis", "127.0.0.1", 6390))


def test_gcs_credentials_the_shared_client_cannot_read_are_refused_by_name():
    for extra in ({"impersonation_chain": "sa@p.iam.gserviceaccount.com"}, {"key_secret_name": "backup-key"},
                  {"extra__google_cloud_platform__credential_config_file": "/etc/wif.json"}):
        with pytest.raises(ConnectionConfigError, match="which backup_dr's GCS client"):
            client_from_conn(ConnInfo("backup_gcs", "google_cloud_platform", extra={**extra, "is_anonymous": True}))
