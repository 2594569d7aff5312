"""The table comparison every PostgreSQL step relies on: counts and ordered-content hashes."""

from __future__ import annotations

from backup_dr.core.postgres.conn import PgConn
from backup_dr.core.postgres.tables import BLOCK, Scope, compare_tables, database_fingerprints

from pg_support import conninfo, execute, query

SHUFFLED = """
CREATE TABLE t (id int PRIMARY KEY, v text, at timestamptz, f float8);
CREATE TABLE n (x int, y text);
"""


def prints(database: str, scope: Scope = Scope()) -> dict:
    return database_fingerprints(PgConn.from_conninfo(conninfo(database)), scope)


def test_same_rows_hash_the_same_whatever_order_they_were_written_in(new_db):
    a, b = new_db(), new_db()
    execute(a, SHUFFLED, "INSERT INTO t SELECT i, 'v' || i, '2026-01-01 00:00+00', i / 3.0 FROM generate_series(1, 5000) i",
            "INSERT INTO n VALUES (1, 'a'), (1, 'a'), (2, NULL)")
    execute(b, SHUFFLED, "INSERT INTO t SELECT i, 'v' || i, '2026-01-01 00:00+00', i / 3.0 FROM generate_series(5000, 1, -1) i",
            "INSERT INTO n VALUES (2, NULL), (1, 'a'), (1, 'a')",
            "UPDATE t SET v = v WHERE id % 2 = 0")  # new row versions: a different physical order again
    pa, pb = prints(a), prints(b)
    assert pa == pb and compare_tables(pa, pb) == []
    assert pa["public.t"]["rows"] == 5000 and pa["public.n"]["rows"] == 3
    assert pa["public.t"]["order"] == "primary key (id)" and pa["public.n"]["order"] == "row text"


def test_one_changed_value_a_null_or_a_lost_duplicate_is_a_difference(new_db):
    base = new_db()
    execute(base, SHUFFLED, "INSERT INTO t SELECT i, 'v' || i, NULL, 1.5 FROM generate_series(1, 100) i",
            "INSERT INTO n VALUES (1, 'a'), (1, 'a'), (2, '')")
    before = prints(base)
    execute(base, "UPDATE t SET f = 1.5000000000000002 WHERE id = 77")  # a float that only differs in its last bit
    after_float = prints(base)
    assert compare_tables(before, after_float) == [
        f"public.t: same 100 rows but different contents (hash {after_float['public.t']['md5'][:12]}… "
        f"vs {before['public.t']['md5'][:12]}…)"]
    execute(base, "UPDATE t SET f = 1.5 WHERE id = 77", "UPDATE n SET y = NULL WHERE x = 2")  # '' -> NULL
    assert compare_tables(before, prints(base))[0].startswith("public.n: same 3 rows but different contents")
    execute(base, "UPDATE n SET y = '' WHERE x = 2", "DELETE FROM n WHERE ctid = (SELECT min(ctid) FROM n WHERE x = 1)")
    assert compare_tables(before, prints(base)) == ["public.n: 2 rows, expected 3"]
    execute(base, "DROP TABLE n", "CREATE TABLE extra (i int)")
    assert compare_tables(before, prints(base))[:2] == ["table(s) missing: public.n", "table(s) not in the backup: public.extra"]


def test_session_settings_of_the_database_do_not_change_a_hash(new_db, shop_template):
    """A database whose users see KST, SQL-style dates, few float digits and escaped bytea
    (as a Korean team's server may be configured) hashes like one left at the defaults."""
    plain, kst = new_db(template=shop_template), new_db(template=shop_template)
    execute("postgres", f"ALTER DATABASE {kst} SET TimeZone = 'Asia/Seoul'", f"ALTER DATABASE {kst} SET DateStyle = 'SQL, DMY'",
            f"ALTER DATABASE {kst} SET extra_float_digits = -3", f"ALTER DATABASE {kst} SET bytea_output = 'escape'")
    row = "SELECT (c.*)::text FROM customers c WHERE id = 5"
    assert query(plain, row) != query(kst, row)  # what a naive row rendering would hash
    assert prints(plain) == prints(kst)


def test_partitions_inheritance_and_scope(new_db):
    db = new_db()
    execute(db, "CREATE TABLE m (id int, at date, PRIMARY KEY (id, at)) PARTITION BY RANGE (at)",
            "CREATE TABLE m_2025 PARTITION OF m FOR VALUES FROM ('2025-01-01') TO ('2026-01-01')",
            "CREATE TABLE m_2026 PARTITION OF m FOR VALUES FROM ('2026-01-01') TO ('2027-01-01')",
            "INSERT INTO m SELECT i, '2025-06-01'::date + i FROM generate_series(1, 400) i",
            "CREATE TABLE parent (i int)", "CREATE TABLE child () INHERITS (parent)",
            "INSERT INTO parent VALUES (1)", "INSERT INTO child VALUES (2), (3)",
            "CREATE SCHEMA side", "CREATE TABLE side.s (i int)", "CREATE UNLOGGED TABLE side.u (i int)",
            "CREATE MATERIALIZED VIEW mv AS SELECT 1")
    every = prints(db)
    assert {k: v["rows"] for k, v in every.items()} == {
        "public.m_2025": 213, "public.m_2026": 187, "public.parent": 1, "public.child": 2, "side.s": 0, "side.u": 0}
    only = prints(db, Scope(schemas=("side",), exclude_tables=("side.u",)))
    assert list(only) == ["side.s"]


def _recipe_v1(db, table: str, order: str) -> dict:
    """``pg-ordered-row-md5-v1`` recomputed in Python from the rows PostgreSQL renders, so a
    faster hash query cannot drift from the hashes already in manifests."""
    from hashlib import md5

    with db.cursor() as cur:
        cur.execute(f"SELECT (r.*)::text{order} FROM ONLY {table} AS r")
        rows = cur.fetchall()
    texts = [r[0] for r in sorted(rows, key=lambda r: r[1:])] if order else sorted(r[0] for r in rows)
    hashes = [md5(t.encode()).hexdigest() for t in texts]
    blocks = [md5("".join(hashes[i:i + BLOCK]).encode()).hexdigest() for i in range(0, len(hashes), BLOCK)]
    return {"rows": len(texts), "md5": md5("".join(blocks).encode()).hexdigest()}


def test_the_hash_query_computes_recipe_v1_exactly(new_db):
    """Composite text key (C order), a key column called like the query's aliases, no key at
    all, several 4096-row blocks, and an empty table."""
    db = new_db()
    execute(db, "CREATE TABLE k (k2 text, t int, at timestamptz, f float8, b bytea, PRIMARY KEY (k2, t))",
            "INSERT INTO k SELECT (ARRAY['b', 'B', 'ä', 'a'])[1 + i % 4] || (i % 97), i, "
            "'2026-01-01 00:00+09'::timestamptz + i * interval '1 minute', i / 7.0, decode(md5(i::text), 'hex') "
            "FROM generate_series(1, 9000) i",
            "CREATE TABLE n (t text, x int)", "INSERT INTO n SELECT 'Z' || (i % 50), i % 3 FROM generate_series(1, 5000) i",
            "CREATE TABLE e (i int PRIMARY KEY)")
    got = prints(db)
    pg = PgConn.from_conninfo(conninfo(db))
    conn = pg.connect(what="recomputing the recipe")  # the same STABLE_SETTINGS session
    try:
        want = {"public.k": _recipe_v1(conn, "k", ', k2 COLLATE "C", t'), "public.n": _recipe_v1(conn, "n", ""),
                "public.e": _recipe_v1(conn, "e", ", i")}
    finally:
        conn.close()
    assert {name: {"rows": p["rows"], "md5": p["md5"]} for name, p in got.items()} == want
    assert want["public.k"]["rows"] == 9000 and want["public.e"] == {"rows": 0, "md5": "d41d8cd98f00b204e9800998ecf8427e"}
