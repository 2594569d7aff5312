"""Table-by-table comparison: row count and a hash of each table's ORDERED contents.

One implementation for the three places that must agree: the backup (into the manifest, in
the very snapshot ``pg_dump`` reads), the drill (scratch copy vs manifest) and the restore's
validation (target vs manifest, and after a rollback target vs the safety dump).

The hash is computed by the server in one streaming query per table, so nothing but a few
numbers crosses the network and memory stays constant whatever the table's size:

* each row is rendered by PostgreSQL's own row output (``(r.*)::text``) under fixed session
  settings (:data:`~.conn.STABLE_SETTINGS`: UTC, ISO dates, shortest exact floats, hex
  bytea), converted to UTF-8 and md5-hashed, so a KST session, another server encoding or
  another client encoding renders the same bytes;
* rows are ordered by the primary key (collatable columns ``COLLATE "C"``, so the scratch
  server's locale does not reorder them), or by the row text when there is no primary key;
* the row hashes are folded in blocks of :data:`BLOCK` rows (md5 of the concatenated row
  hashes), then the block hashes into the table hash, so no aggregate string grows with
  the table.

``(rows, md5)`` equal means same rows in the same key order, byte for byte as PostgreSQL
renders them. md5 is a content fingerprint against accidents (a lossy restore, a wrong
snapshot), not a defence against an attacker: the dump file itself is sha256-checked.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

from backup_dr.core.progress import Progress

log = logging.getLogger(__name__)

#: Recorded in manifests: a later change of the recipe must not compare against old hashes.
HASH_RECIPE = "pg-ordered-row-md5-v1"
BLOCK = 4096

_LIST = """
SELECT n.nspname, c.relname, pg_relation_size(c.oid), coalesce(pk.cols, '{}'), coalesce(pk.coll, '{}')
FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
LEFT JOIN LATERAL (
    SELECT array_agg(a.attname::text ORDER BY k.ord) AS cols, array_agg(a.attcollation <> 0 ORDER BY k.ord) AS coll
    FROM pg_index i CROSS JOIN LATERAL unnest(i.indkey::int2[]) WITH ORDINALITY AS k(attnum, ord)
    JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = k.attnum
    WHERE i.indrelid = c.oid AND i.indisprimary) pk ON true
WHERE c.relkind = 'r' AND c.relpersistence <> 't' AND n.nspname <> 'information_schema' AND n.nspname !~ '^pg_'
  AND NOT EXISTS (SELECT 1 FROM pg_depend d
                  WHERE d.classid = 'pg_class'::regclass AND d.objid = c.oid AND d.deptype = 'e')
  AND (cardinality(%(schemas)s::text[]) = 0 OR n.nspname = ANY(%(schemas)s::text[]))
ORDER BY 1, 2
"""

#: Each row is rendered once (``t``): without a primary key the same text is both the sort
#: key and what is hashed, and ``OFFSET 0`` keeps the planner from inlining the subquery and
#: rendering every row twice (rendering is most of the query's cost). With a key the subquery
#: is inlined, so the primary key's index still gives the order.
_HASH = """
SELECT coalesce(sum(n), 0)::bigint, md5(coalesce(string_agg(h, '' ORDER BY blk), ''))
FROM (SELECT (rn - 1) / {block} AS blk, count(*) AS n, md5(string_agg(h, '' ORDER BY rn)) AS h
      FROM (SELECT row_number() OVER (ORDER BY {order}) AS rn, md5(convert_to(t, 'UTF8')) AS h
            FROM (SELECT {key}(r.*)::text AS t FROM ONLY {table} AS r{fence}) AS rendered) AS numbered
      GROUP BY 1) AS blocks
"""
#: The sorts of a hash query (key order, then blocks) stay in memory up to this much per
#: table instead of spilling to temporary files at the default 4 MB; larger tables still
#: spill, so the server's memory stays bounded.
WORK_MEM = "64MB"


@dataclass(frozen=True)
class Scope:
    """Which tables a source covers: ``schemas`` (empty = all non-system) minus ``exclude_tables``."""

    schemas: tuple[str, ...] = ()
    exclude_tables: tuple[str, ...] = ()

    def as_dict(self) -> dict[str, list[str]]:
        return {"schemas": list(self.schemas), "exclude_tables": list(self.exclude_tables)}

    @classmethod
    def from_dict(cls, data: dict[str, Any] | None) -> "Scope":
        data = data or {}
        return cls(tuple(data.get("schemas") or ()), tuple(data.get("exclude_tables") or ()))


@dataclass(frozen=True)
class Table:
    schema: str
    name: str
    bytes: int
    key: tuple[str, ...]  # primary key columns, in key order ("" = no primary key)
    collatable: tuple[bool, ...]

    @property
    def qualified(self) -> str:
        return f"{self.schema}.{self.name}"


def list_tables(db, scope: Scope) -> list[Table]:
    """The ordinary tables of ``scope`` that ``pg_dump`` dumps (no partitioned parents, views,
    temp or extension-owned tables), as the current transaction's snapshot sees them."""
    with db.cursor() as cur:
        cur.execute(_LIST, {"schemas": list(scope.schemas)})
        rows = cur.fetchall()
    excluded = set(scope.exclude_tables)
    return [Table(s, n, int(size), tuple(cols), tuple(coll)) for s, n, size, cols, coll in rows
            if f"{s}.{n}" not in excluded]


def _hash_query(table: Table):
    from psycopg2 import sql

    if table.key:
        # the key columns ride along as k1, k2, ... next to the rendered row
        key = sql.SQL("").join(sql.SQL("r.{} AS {}, ").format(sql.Identifier(c), sql.Identifier(f"k{i}"))
                               for i, c in enumerate(table.key, 1))
        order = sql.SQL(", ").join(
            sql.SQL("{} COLLATE \"C\"").format(sql.Identifier(f"k{i}")) if coll else sql.Identifier(f"k{i}")
            for i, coll in enumerate(table.collatable, 1))
    else:
        key, order = sql.SQL(""), sql.SQL('t COLLATE "C"')
    fence = sql.SQL("" if table.key else " OFFSET 0")
    return sql.SQL(_HASH).format(block=sql.Literal(BLOCK), order=order, key=key, fence=fence,
                                 table=sql.Identifier(table.schema, table.name))


def fingerprint_tables(db, tables: list[Table], *, label: str = "hash tables") -> dict[str, dict[str, Any]]:
    """``{"schema.table": {"rows", "md5", "order"}}`` for ``tables``, in the caller's transaction
    (and so its snapshot). Logs progress per table (tables/s, MB/s of table data, ETA)."""
    progress = Progress(label, total_items=len(tables), total_bytes=sum(t.bytes for t in tables) or None, unit="tables")
    out: dict[str, dict[str, Any]] = {}
    with db.cursor() as cur:
        cur.execute("SET LOCAL work_mem = %s", (WORK_MEM,))  # until the caller's transaction ends
        for table in tables:
            cur.execute(_hash_query(table))
            rows, digest = cur.fetchone()
            out[table.qualified] = {"rows": int(rows), "md5": digest,
                                    "order": f"primary key ({', '.join(table.key)})" if table.key else "row text"}
            progress.add(1, table.bytes)
    progress.done()
    return out


def database_fingerprints(pg, scope: Scope, *, label: str | None = None) -> dict[str, dict[str, Any]]:
    """Fingerprints of every table in ``scope`` of ``pg``'s database, in one REPEATABLE READ
    READ ONLY transaction (a consistent view even while others write)."""
    db = pg.connect(what=f"comparing the tables of {pg.describe()}")
    try:
        with db.cursor() as cur:
            cur.execute("BEGIN ISOLATION LEVEL REPEATABLE READ, READ ONLY")
        tables = list_tables(db, scope)
        prints = fingerprint_tables(db, tables, label=label or f"hash tables of {pg.database}")
        with db.cursor() as cur:
            cur.execute("COMMIT")
        return prints
    finally:
        db.close()


def compare_tables(expected: dict[str, dict[str, Any]], actual: dict[str, dict[str, Any]]) -> list[str]:
    """Every difference between two fingerprint maps, as sentences (empty = equal)."""
    problems = []
    missing = sorted(set(expected) - set(actual))
    extra = sorted(set(actual) - set(expected))
    if missing:
        problems.append(f"table(s) missing: {', '.join(missing)}")
    if extra:
        problems.append(f"table(s) not in the backup: {', '.join(extra)}")
    for name in sorted(set(expected) & set(actual)):
        want, got = expected[name], actual[name]
        if want["rows"] != got["rows"]:
            problems.append(f"{name}: {got['rows']} rows, expected {want['rows']}")
        elif want["md5"] != got["md5"]:
            problems.append(f"{name}: same {got['rows']} rows but different contents (hash {got['md5'][:12]}… "
                            f"vs {want['md5'][:12]}…)")
    return problems


def current_tables(pg, scope: Scope) -> list[Table]:
    """The tables of ``scope`` in ``pg``'s database right now."""
    db = pg.connect(what=f"listing the tables of {pg.describe()}")
    try:
        return list_tables(db, scope)
    finally:
        db.close()
