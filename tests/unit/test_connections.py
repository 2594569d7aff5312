"""The core reads connections as the provider hooks do: the CLI and the operators share these builders."""

from __future__ import annotations

import pytest
from pymongo.uri_parser import parse_uri

from backup_dr.core.connections import ConnInfo, mongo_uri
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


def test_gcs_credentials_the_shared_client_cannot_read_are_refused_by_name():
    for extra in ({"impersonation_chain": "sa@p.iam.gserviceaccount.com"}, {"key_secret_name": "backup-key"},
                  {"extra__google_cloud_platform__credential_config_file": "/etc/wif.json"}):
        with pytest.raises(ConnectionConfigError, match="which backup_dr's GCS client"):
            client_from_conn(ConnInfo("backup_gcs", "google_cloud_platform", extra={**extra, "is_anonymous": True}))
