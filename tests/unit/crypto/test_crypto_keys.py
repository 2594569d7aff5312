"""Master keys from connections: both forms accepted, every mistake named, no key in any message."""

from __future__ import annotations

import base64
import json

import pytest

from backup_dr.core.connections import ConnInfo
from backup_dr.core.crypto.keys import (DEFAULT_KEY_ID, EncryptionKeyError, Keyring, encryption_for_class, fingerprint,
                                        generate_key, load_keyring)
from backup_dr.core.policy_model import Encryption

from crypto_support import b64


def test_password_holds_a_single_key(k1):
    r = Keyring.from_conn(ConnInfo("kc", password=b64(k1)))
    assert r.ids == [DEFAULT_KEY_ID] and r.active.key == k1 and r.active.fp == fingerprint(k1)
    r = Keyring.from_conn(ConnInfo("kc", password=b64(k1), extra={"key_id": "2026a"}))
    assert r.active.key_id == "2026a"


def test_extra_keys_is_a_keyring_with_an_active_key(k1, k2):
    r = Keyring.from_conn(ConnInfo("kc", extra={"keys": {"k1": b64(k1), "k2": b64(k2)}, "active": "k2"}))
    assert r.ids == ["k1", "k2"] and r.active.key == k2
    assert Keyring.from_conn(ConnInfo("kc", extra={"keys": {"only": b64(k1)}})).active_id == "only"


def test_urlsafe_and_unpadded_base64_are_accepted(k1):
    text = base64.urlsafe_b64encode(k1).decode().rstrip("=")
    assert Keyring.from_conn(ConnInfo("kc", password=text)).active.key == k1


def test_generated_keys_are_valid_and_distinct():
    a, b = generate_key(), generate_key()
    assert a != b and len(base64.b64decode(a)) == 32
    Keyring.from_conn(ConnInfo("kc", password=a))


BAD = {
    "no key": ({}, None, "holds no encryption key"),
    "not base64": ({}, "this is not base64!!", "key 'default': the key is not valid base64"),
    "short key": ({}, base64.b64encode(b"x" * 16).decode(), "decodes to 16 bytes, an AES-256 key needs 32"),
    "both forms": ({"keys": {"k1": "A" * 44}}, "A" * 44, "holds both a password and extra.keys"),
    "empty ring": ({"keys": {}}, None, "extra.keys must be a non-empty mapping"),
    "active unknown": ({"keys": {"k1": "K1", "k2": "K2"}, "active": "k3"}, None, "extra.active 'k3' is not one of its key ids (k1, k2)"),
    "two keys, no active": ({"keys": {"k1": "K1", "k2": "K2"}}, None, "extra.active None"),
    "bad id": ({"keys": {"bad id!": "K1"}}, None, "key id 'bad id!' must be"),
}


@pytest.mark.parametrize("case", sorted(BAD))
def test_every_malformed_connection_is_named_without_its_secret(case, k1, k2):
    extra, password, text = BAD[case]
    extra = json.loads(json.dumps(extra).replace('"K1"', json.dumps(b64(k1))).replace('"K2"', json.dumps(b64(k2))))
    with pytest.raises(EncryptionKeyError) as err:
        Keyring.from_conn(ConnInfo("backup_encryption_key", password=password, extra=extra))
    message = str(err.value)
    assert text in message and "'backup_encryption_key'" in message
    for secret in (b64(k1), b64(k2), password or "\0"):
        assert secret not in message


def test_the_same_key_twice_is_refused(k1):
    with pytest.raises(EncryptionKeyError, match="the same key under two ids"):
        Keyring.from_conn(ConnInfo("kc", extra={"keys": {"a": b64(k1), "b": b64(k1)}, "active": "a"}))


def test_load_keyring_reads_the_airflow_conn_variable(monkeypatch, k1):
    monkeypatch.setenv("AIRFLOW_CONN_TEST_KEY_CONN", json.dumps({"conn_type": "generic", "password": b64(k1)}))
    assert load_keyring("test_key_conn").active.key == k1
    monkeypatch.delenv("AIRFLOW_CONN_TEST_KEY_CONN")
    with pytest.raises(EncryptionKeyError) as err:
        load_keyring("test_key_conn")
    assert "encryption key connection 'test_key_conn' is not available" in str(err.value)
    assert "AIRFLOW_CONN_TEST_KEY_CONN" in str(err.value)


def test_a_class_without_encryption_needs_no_key():
    class Plain:
        encryption = None

    class Encrypted:
        encryption = Encryption("no_such_key_conn_anywhere")

    assert encryption_for_class(Plain()) is None
    with pytest.raises(EncryptionKeyError, match="'no_such_key_conn_anywhere' is not available"):
        encryption_for_class(Encrypted())


def test_master_key_repr_hides_the_key(k1):
    r = Keyring.from_conn(ConnInfo("kc", password=b64(k1)))
    assert b64(k1) not in repr(r) and repr(k1) not in repr(r) and k1.hex() not in repr(r)
