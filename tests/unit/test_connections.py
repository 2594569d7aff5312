"""The core reads a ``mongo`` connection as MongoHook does, so the CLI and the operators reach the same server."""

from __future__ import annotations

from pymongo.uri_parser import parse_uri

from backup_dr.core.connections import ConnInfo, mongo_uri


def _options(**extra) -> dict:
    return parse_uri(mongo_uri(ConnInfo("m", "mongo", "db.example", 27017, "backup", "s3cr:et/", extra=extra)))


def test_allow_insecure_with_tls_accepts_an_invalid_certificate_like_mongohook():
    parsed = _options(tls=True, allow_insecure="true", authSource="admin")
    assert parsed["options"]["tlsAllowInvalidCertificates"] is True
    assert (parsed["username"], parsed["password"], parsed["options"]["authSource"]) == ("backup", "s3cr:et/", "admin")


def test_allow_insecure_without_tls_changes_nothing():
    assert "tlsAllowInvalidCertificates" not in _options(allow_insecure="true")["options"]
    assert "tlsAllowInvalidCertificates" not in _options(tls=True)["options"]
