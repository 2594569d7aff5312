"""``classes.<name>.encryption`` in the policy: parsed, validated, and refused per store."""

from __future__ import annotations

from pathlib import Path

import pytest

from backup_dr.core.errors import PolicyError
from backup_dr.core.policy import parse_policy, read_policy_document

POLICY = Path(__file__).resolve().parents[3] / "include" / "policy.yaml"


@pytest.fixture
def doc():
    return read_policy_document(POLICY)


def issues(doc) -> dict[str, str]:
    with pytest.raises(PolicyError) as err:
        parse_policy(doc, strict=True)
    return dict(err.value.issues)


def test_shipped_policy_encrypts_nothing_until_enabled(doc):
    assert all(c.encryption is None for c in parse_policy(doc, strict=True).classes.values())


def test_class_encryption_names_the_key_connection(doc):
    doc["classes"]["critical_data"]["encryption"] = {"key_conn_id": "backup_encryption_key"}
    p = parse_policy(doc, strict=True)
    assert p.classes["critical_data"].encryption.key_conn_id == "backup_encryption_key"
    assert p.classes["operational_data"].encryption is None


@pytest.mark.parametrize("body,path,reason", [
    ({}, "classes.critical_data.encryption.key_conn_id", "is required"),
    ({"key_conn_id": "k", "cipher": "des"}, "classes.critical_data.encryption.cipher", "unknown key"),
    ({"key_conn_id": ""}, "classes.critical_data.encryption.key_conn_id", "must be a non-empty string"),
    ({"key_conn_id": "my key"}, "classes.critical_data.encryption.key_conn_id", "is not a connection id"),
    ("backup_encryption_key", "classes.critical_data.encryption", "must be a mapping"),
])
def test_bad_class_encryption_is_named(doc, body, path, reason):
    doc["classes"]["critical_data"]["encryption"] = body
    assert reason in issues(doc)[path]


def test_store_level_encryption_points_to_the_class(doc):
    doc["stores"]["s3"]["encryption"] = {"key_conn_id": "backup_encryption_key"}
    reason = issues(doc)["stores.s3.encryption"]
    assert "set per backup class, not per store" in reason and "classes.<name>.encryption" in reason


def test_lenient_mode_drops_only_the_broken_class(doc):
    doc["classes"]["critical_data"]["encryption"] = {"key_conn_id": ""}
    p = parse_policy(doc, strict=False)
    assert "critical_data" not in p.classes and "operational_data" in p.classes
