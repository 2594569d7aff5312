"""Fixtures for the encryption unit tests (helpers live in crypto_support.py)."""

from __future__ import annotations

import os

import pytest

from backup_dr.core.connections import conn_from_env
from backup_dr.core.crypto.keys import set_connection_resolver


@pytest.fixture
def k1() -> bytes:
    return os.urandom(32)


@pytest.fixture
def k2() -> bytes:
    return os.urandom(32)


@pytest.fixture(autouse=True)
def env_resolver():
    """Key connections from the environment, whatever another test installed."""
    previous = set_connection_resolver(conn_from_env)
    yield
    set_connection_resolver(previous)
