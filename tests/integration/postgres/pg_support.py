"""Helpers for the PostgreSQL engine tests: databases on the machine's server, a private
password-protected cluster, and a writer that keeps committing while a backup runs."""

from __future__ import annotations

import threading
import time
import uuid

import psycopg2

from backup_dr.core.connections import ConnInfo
from backup_dr.devstack.postgres import PG_BIN, PrivateCluster  # noqa: F401 - the tests' private cluster

HOST, PORT, USER = "127.0.0.1", 5432, "postgres"


def conninfo(database: str | None, *, host: str = HOST, port: int = PORT, user: str = USER,
             password: str | None = None, conn_id: str = "pg_test", **extra) -> ConnInfo:
    return ConnInfo(conn_id, "postgres", host, port, user, password, database, extra)


def connect(database: str, *, autocommit: bool = True, port: int = PORT, **kw):
    db = psycopg2.connect(host=HOST, port=port, user=kw.pop("user", USER), dbname=database, **kw)
    db.autocommit = autocommit
    return db


def execute(database: str, *statements: str, port: int = PORT, **kw) -> None:
    db = connect(database, port=port, **kw)
    try:
        with db.cursor() as cur:
            for s in statements:
                cur.execute(s)
    finally:
        db.close()


def query(database: str, sql: str, params=None, **kw) -> list[tuple]:
    db = connect(database, **kw)
    try:
        with db.cursor() as cur:
            cur.execute(sql, params)
            return cur.fetchall()
    finally:
        db.close()


def databases(prefix: str) -> list[str]:
    return [r[0] for r in query("postgres", "SELECT datname FROM pg_database WHERE datname LIKE %s ORDER BY 1",
                                (prefix.replace("_", r"\_") + "%",))]


def unique(prefix: str = "bdr_t") -> str:
    return f"{prefix}_{uuid.uuid4().hex[:10]}"


def create_db(name: str, *, template: str = "template0", port: int = PORT, **kw) -> str:
    execute("postgres", f'CREATE DATABASE "{name}" TEMPLATE "{template}"', port=port, **kw)
    return name


def drop_db(name: str, *, port: int = PORT, **kw) -> None:
    execute("postgres", f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)', port=port, **kw)


SHOP_SQL = """
CREATE TABLE customers (id int PRIMARY KEY, name text NOT NULL, city text, joined timestamptz, score float8,
                        tags text[], profile jsonb, photo bytea);
CREATE TABLE orders (id bigserial PRIMARY KEY, customer int REFERENCES customers, amount numeric(12, 2),
                     placed timestamptz DEFAULT now(), note text);
CREATE TABLE events (at timestamp, kind text, payload json);  -- no primary key, duplicate rows allowed
CREATE SCHEMA audit;
CREATE TABLE audit."Change Log" ("order" int, who text, PRIMARY KEY ("order", who));
CREATE VIEW big_orders AS SELECT * FROM orders WHERE amount > 500;
INSERT INTO customers
  SELECT i, '고객 ' || i, (ARRAY['서울', '부산', 'Incheon', NULL])[1 + i % 4], '2026-01-01 09:00+09'::timestamptz + i * interval '1 hour',
         i / 7.0, ARRAY['t' || i % 3, 'x'], jsonb_build_object('level', i % 5, 'kst', '오전'), decode(md5(i::text), 'hex')
  FROM generate_series(1, 2000) i;
INSERT INTO orders (customer, amount, placed, note)
  SELECT 1 + i % 2000, (i % 1000) + 0.25, '2026-03-01 00:00+00'::timestamptz + i * interval '1 minute', repeat('n', i % 50)
  FROM generate_series(1, 6000) i;
INSERT INTO events SELECT '2026-05-05 12:00', 'click', '{"a": 1}' FROM generate_series(1, 3);
INSERT INTO events VALUES (NULL, '', NULL), ('2026-05-05 12:00', 'view', '{"b": [1, 2]}');
INSERT INTO audit."Change Log" VALUES (1, 'kim'), (1, 'lee'), (2, 'Park');
"""


def seed_shop(database: str, **kw) -> None:
    execute(database, SHOP_SQL, **kw)


def then_a_client_writes(write):
    """Fault injection for ``restore._apply``: the real pg_restore, then ``write()`` right after the
    restore's commit (a client of the target still writing); the rollback's pg_restore is left alone."""
    from backup_dr.core.postgres import apply as apply_mod

    def apply(pg, path, **kw):
        apply_mod.apply_dump(pg, path, **kw)
        if kw["label"] == "restore":
            write()

    return apply


class Writer(threading.Thread):
    """Commits one small transaction after another into ``orders`` (insert, update, delete)
    until stopped; ``commits`` counts them, ``marks`` records (time, commits) on request."""

    def __init__(self, database: str, **kw):
        super().__init__(daemon=True, name="pg-test-writer")
        self.database, self.kw = database, kw
        self.commits = 0
        self.errors: list[str] = []
        self._halt = threading.Event()

    def run(self) -> None:
        db = connect(self.database, autocommit=False, **self.kw)
        try:
            with db.cursor() as cur:
                while not self._halt.is_set():
                    try:  # one transaction: the row count of orders stays the same
                        cur.execute("INSERT INTO orders (customer, amount, note) VALUES (7, 1.5, 'during backup')")
                        cur.execute("UPDATE customers SET score = score + 1 WHERE id = %s", (1 + self.commits % 2000,))
                        cur.execute("DELETE FROM orders WHERE id = (SELECT min(id) FROM orders)")
                        db.commit()
                        self.commits += 1
                    except psycopg2.Error as e:  # noqa: PERF203 - a test writer that keeps going
                        db.rollback()
                        self.errors.append(str(e))
                        time.sleep(0.01)
        finally:
            db.close()

    def stop(self) -> int:
        self._halt.set()
        self.join(timeout=30)
        return self.commits
