"""Benchmark: PostgreSQL backup, plain ``pg_dump -Fc > file`` vs our engine, same server, same run.

    .venv/bin/python benchmarks/postgres_dump.py            # 1M rows (~250 MB of table data)
    .venv/bin/python benchmarks/postgres_dump.py --quick    # 100k rows, well under a minute

It creates its own database on the PostgreSQL at ``$PGHOST:$PGPORT`` (default 127.0.0.1:5432,
user postgres; the machine's server here, as the tests use it), seeds tables shaped like
Airflow's busiest ones (an audit log with a primary key, task history without one), and
drops the database at the end. Baseline: ``pg_dump --format=custom`` to a file. Ours:
``backup_postgres`` into a local store - an exported snapshot, the same pg_dump streamed
through sha256 and fsync, and every table counted and hashed in the same snapshot
concurrently, manifest last. Runs alternate (and which goes first alternates too); medians
are compared. ``hash_s`` is the table hashing alone (``database_fingerprints``), to show what
the extra time is. The last line printed is one JSON object with the figures.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from datetime import datetime, timedelta, timezone
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "plugins"))

import psycopg2  # noqa: E402

from backup_dr.core.artifacts.layout import BackupId  # noqa: E402
from backup_dr.core.artifacts.writer import ArtifactWriter  # noqa: E402
from backup_dr.core.connections import ConnInfo  # noqa: E402
from backup_dr.core.postgres import PostgresSource  # noqa: E402
from backup_dr.core.postgres.backup import backup_postgres  # noqa: E402
from backup_dr.core.postgres.conn import PgConn  # noqa: E402
from backup_dr.core.postgres.tables import Scope, database_fingerprints  # noqa: E402
from backup_dr.core.stores.local import LocalStore  # noqa: E402

HOST, PORT, USER = os.environ.get("PGHOST", "127.0.0.1"), int(os.environ.get("PGPORT", "5432")), os.environ.get("PGUSER", "postgres")

SEED = """
CREATE TABLE log (id bigint PRIMARY KEY, dttm timestamptz, dag_id varchar(250), task_id varchar(250), event varchar(60),
                  owner varchar(500), extra text);
CREATE TABLE task_history (dag_id varchar(250), task_id varchar(250), run_id varchar(250), try_number int,
                           start_date timestamptz, duration float8, state varchar(20), executor_config bytea);
INSERT INTO log SELECT i, '2026-11-26 17:00+09'::timestamptz + i * interval '1 second', 'backup_critical_data',
       'dump_' || (i %% 7), (ARRAY['running', 'success', 'failed', 'cli_task_run'])[1 + i %% 4], 'airflow',
       '{"host_name": "worker-' || (i %% 5) || '", "full_command": "' || md5(i::text) || repeat('x', 60) || '"}'
  FROM generate_series(1, %(rows)s) i;
INSERT INTO task_history SELECT 'backup_critical_data', 'dump_' || (i %% 7), 'scheduled__' || (i / 7), 1 + i %% 3,
       '2026-11-26 08:00+00'::timestamptz + i * interval '1 minute', i / 13.0, 'success', decode(md5(i::text), 'hex')
  FROM generate_series(1, %(rows)s / 2) i;
ANALYZE;
"""


def admin(sql: str) -> None:
    db = psycopg2.connect(host=HOST, port=PORT, user=USER, dbname="postgres")
    db.autocommit = True
    with db.cursor() as cur:
        cur.execute(sql)
    db.close()


def seed(database: str, rows: int) -> int:
    db = psycopg2.connect(host=HOST, port=PORT, user=USER, dbname=database)
    with db, db.cursor() as cur:
        cur.execute(SEED, {"rows": rows})
        cur.execute("SELECT pg_database_size(current_database())")
        size = cur.fetchone()[0]
    db.close()
    return size


def run_pg_dump(database: str, dest: Path) -> float:
    env = {**os.environ, "PGHOST": HOST, "PGPORT": str(PORT), "PGUSER": USER, "PGDATABASE": database}
    t0 = time.perf_counter()
    with open(dest, "wb") as out:
        subprocess.run([shutil.which("pg_dump") or "pg_dump", "--format=custom"], stdout=out, env=env, check=True)
    return time.perf_counter() - t0


def run_ours(database: str, store: LocalStore, stamp: datetime) -> tuple[float, int]:
    conn = ConnInfo("bench_pg", "postgres", HOST, PORT, USER, None, database)
    writer = ArtifactWriter(store, BackupId.new("configuration", "bench", "full", stamp), source_type="postgresql")
    t0 = time.perf_counter()
    manifest = backup_postgres(conn, PostgresSource("bench", "bench_pg"), writer)
    seconds = time.perf_counter() - t0
    store.delete_tree(writer.bid.prefix)
    return seconds, manifest.total_size


def run_hash_only(database: str) -> float:
    pg = PgConn.from_conninfo(ConnInfo("bench_pg", "postgres", HOST, PORT, USER, None, database))
    t0 = time.perf_counter()
    database_fingerprints(pg, Scope())
    return time.perf_counter() - t0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="100k rows instead of 1M")
    ap.add_argument("--rows", type=int)
    ap.add_argument("--rounds", type=int, help="runs of each (default 5 with --quick, else 3)")
    args = ap.parse_args()
    rows = args.rows or (100_000 if args.quick else 1_000_000)
    rounds = args.rounds or (5 if args.quick else 3)
    database = f"bench_pg_{uuid.uuid4().hex[:8]}"
    work = Path(tempfile.mkdtemp(prefix="bench-pg-dump-"))
    admin(f"CREATE DATABASE {database}")
    try:
        t0 = time.perf_counter()
        db_bytes = seed(database, rows)
        print(f"seeded {rows} + {rows // 2} rows ({db_bytes / 1e6:.0f} MB on disk) in {time.perf_counter() - t0:.1f}s", flush=True)
        store = LocalStore(work / "store")
        stamp = datetime(2026, 11, 26, tzinfo=timezone.utc)
        run_ours(database, store, stamp)  # warm-up: caches, first pg_dump exec
        base_times, our_times, hash_times, size = [], [], [], 0
        for i in range(rounds):
            stamp += timedelta(seconds=1)
            if i % 2:
                seconds, size = run_ours(database, store, stamp)
                base_times.append(run_pg_dump(database, work / "plain.pgdump"))
            else:
                base_times.append(run_pg_dump(database, work / "plain.pgdump"))
                seconds, size = run_ours(database, store, stamp)
            our_times.append(seconds)
            hash_times.append(run_hash_only(database))
            print(f"round {i + 1}: pg_dump {base_times[-1]:.3f}s, ours {our_times[-1]:.3f}s ({size / 1e6:.1f} MB), "
                  f"hashing alone {hash_times[-1]:.3f}s", flush=True)
        base_size = (work / "plain.pgdump").stat().st_size
    finally:
        admin(f"DROP DATABASE IF EXISTS {database} WITH (FORCE)")
        shutil.rmtree(work, ignore_errors=True)
    base, ours = statistics.median(base_times), statistics.median(our_times)
    print(json.dumps({
        "benchmark": "postgres_dump", "rows": rows + rows // 2, "database_mb": round(db_bytes / 1e6, 1),
        "dump_mb": round(size / 1e6, 1), "baseline_dump_mb": round(base_size / 1e6, 1), "baseline_s": round(base, 3),
        "ours_s": round(ours, 3), "ratio": round(ours / base, 3), "hash_s": round(statistics.median(hash_times), 3),
        "rounds": rounds,
        "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
    }))


if __name__ == "__main__":
    main()
