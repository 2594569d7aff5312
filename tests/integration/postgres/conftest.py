"""Fixtures for the PostgreSQL engine: databases on the machine's PostgreSQL (127.0.0.1:5432,
trust auth), each uniquely named and dropped afterwards, and writers with fresh backup ids.

``shop_db`` is a small shop (2 000 customers, 6 000 orders, a table without a primary key, a
quoted schema/table name, a view, a foreign key, Korean text, jsonb, arrays, bytea and
KST-entered times). ``airflow_template`` is a real Airflow metadata DB (``airflow db migrate``,
see ``airflow_meta.py``; ~30 s, once per session) that ``clone()`` copies. Helpers live in
``pg_support.py``.
"""

from __future__ import annotations

import itertools
from datetime import datetime, timedelta, timezone

import pytest

from backup_dr.core.artifacts.layout import BackupId
from backup_dr.core.artifacts.writer import ArtifactWriter
from backup_dr.core.stores.local import LocalStore

from airflow_meta import BASE_URL, CONN_PASSWORD, DAG_RUN, Airflow
from pg_support import conninfo, create_db, drop_db, execute, seed_shop, unique

STAMP0 = datetime(2026, 11, 26, 8, 0, tzinfo=timezone.utc)


@pytest.fixture
def new_db():
    """``new_db(prefix="bdr_t")``: create an empty database; every one is dropped at teardown."""
    made: list[str] = []

    def make(prefix: str = "bdr_t", template: str = "template0") -> str:
        made.append(create_db(unique(prefix), template=template))
        return made[-1]

    yield make
    for name in made:
        drop_db(name)


@pytest.fixture(scope="session")
def shop_template():
    """The shop, seeded once; tests get copies (CREATE DATABASE ... TEMPLATE is cheaper than seeding)."""
    name = create_db(unique("bdr_shop_tpl"))
    try:
        seed_shop(name)
        yield name
    finally:
        drop_db(name)


@pytest.fixture
def shop_db(new_db, shop_template) -> str:
    return new_db("bdr_shop", template=shop_template)


@pytest.fixture
def store(tmp_path) -> LocalStore:
    return LocalStore(tmp_path / "backups")


@pytest.fixture
def new_writer(store):
    """``new_writer(source="shop", kind="full")``: a writer with a fresh backup id."""
    counter = itertools.count()

    def make(source: str = "shop", kind: str = "full", **kw) -> ArtifactWriter:
        bid = BackupId.new("configuration", source, kind, STAMP0 + timedelta(seconds=next(counter)))
        return ArtifactWriter(store, bid, source_type="postgresql", **kw)

    return make


@pytest.fixture
def pg_conn():
    """``pg_conn(database)``: a ConnInfo for the machine's server."""
    return conninfo


@pytest.fixture(scope="session")
def airflow(tmp_path_factory):
    from cryptography.fernet import Fernet

    home = tmp_path_factory.mktemp("airflow-home")
    (home / "dags").mkdir()
    return Airflow(home, Fernet.generate_key().decode())


@pytest.fixture(scope="session")
def airflow_template(airflow):
    """A migrated Airflow metadata DB with a connection, a variable and a DAG run; tests clone it."""
    name = create_db(unique("bdr_af_tpl"))
    try:
        airflow.run(name, ["db", "migrate"],
                    ["connections", "add", "korea_api_db", "--conn-type", "mongo", "--conn-host", "mongo1.internal",
                     "--conn-port", "27017", "--conn-login", "api", "--conn-password", CONN_PASSWORD],
                    ["variables", "set", "korea_api_base_url", BASE_URL])
        execute(name, DAG_RUN)
        yield name
    finally:
        drop_db(name)


@pytest.fixture
def clone(airflow_template, new_db):
    """``clone(prefix)``: a copy of the migrated Airflow metadata DB (dropped at teardown)."""
    return lambda prefix="bdr_af": new_db(prefix, template=airflow_template)
