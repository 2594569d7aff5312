"""Benchmark: remote RDB snapshot, ``redis-cli --rdb`` vs our replication fetch, same server, same run.

    .venv/bin/python benchmarks/redis_rdb.py            # 500k keys
    .venv/bin/python benchmarks/redis_rdb.py --quick    # 100k keys, well under a minute

Both ask the same private redis-server for a diskless rdb-only snapshot and write it to a
local file (fsynced). Ours also sha256-hashes it and checks its CRC-64 on the way (what a
backup does before it counts); redis-cli only writes. Runs alternate (and which goes
first alternates too), the median of each is compared. The password reaches redis-cli through REDISCLI_AUTH, never its argv.
The last line printed is one JSON object with the figures.
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
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "plugins"))

from backup_dr.core.connections import ConnInfo  # noqa: E402
from backup_dr.core.redis.replication import fetch_rdb  # noqa: E402
from backup_dr.core.stores.local import LocalStore  # noqa: E402
from backup_dr.devstack.servers import RedisServer  # noqa: E402

PASSWORD = "bench-secret"

_SEED = """
local prefix, first, n = ARGV[1], tonumber(ARGV[2]), tonumber(ARGV[3])
for i = first, first + n - 1 do
  local kind = i % 6
  local key = prefix .. kind .. ':' .. i
  if kind == 0 then redis.call('SET', key, '{"title": "announcement ' .. i .. '", "region": "r' .. (i % 17) .. '"}')
  elseif kind == 1 then redis.call('SET', key, i * 7)
  elseif kind == 2 then redis.call('HSET', key, 'name', 'business ' .. i, 'employees', i % 500, 'region', 'r' .. (i % 17))
  elseif kind == 3 then redis.call('RPUSH', key, 'page:' .. i, 'page:' .. (i + 1), 'page:' .. (i + 2))
  elseif kind == 4 then redis.call('ZADD', key, i, 'announcement:' .. i, i / 3, 'b' .. i)
  else redis.call('SADD', key, 'region-' .. (i % 17), 'm' .. i) end
  if i % 10 == 3 then redis.call('PEXPIRE', key, 86400000) end
end
"""


def seed(r, keys: int) -> None:
    for first in range(0, keys, 50_000):  # batches keep each script short
        r.eval(_SEED, 0, "cache:", first, min(50_000, keys - first))


def run_redis_cli(port: int, dest: Path) -> float:
    env = {**os.environ, "REDISCLI_AUTH": PASSWORD}
    t0 = time.perf_counter()
    subprocess.run([shutil.which("redis-cli") or "redis-cli", "-h", "127.0.0.1", "-p", str(port), "--rdb", str(dest)],
                   env=env, check=True, capture_output=True)
    return time.perf_counter() - t0


def run_ours(conn: ConnInfo, store: LocalStore, key: str) -> tuple[float, int]:
    t0 = time.perf_counter()
    with store.open_write(key) as out:  # temp file, fsync, rename: what the artifact writer does
        fetch = fetch_rdb(conn, out)
    return time.perf_counter() - t0, fetch.size


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="100k keys instead of 500k")
    ap.add_argument("--keys", type=int)
    ap.add_argument("--rounds", type=int, help="runs of each (default 11 with --quick, else 5)")
    args = ap.parse_args()
    keys = args.keys or (100_000 if args.quick else 500_000)
    args.rounds = args.rounds or (11 if args.quick else 5)
    work = Path(tempfile.mkdtemp(prefix="bench-redis-rdb-"))
    try:
        with RedisServer(work / "redis", password=PASSWORD) as server, server.client() as r:
            t0 = time.perf_counter()
            seed(r, keys)
            print(f"seeded {r.dbsize()} keys in {time.perf_counter() - t0:.1f}s", flush=True)
            conn = ConnInfo("bench_redis", "redis", "127.0.0.1", server.port, None, PASSWORD)
            store = LocalStore(work / "store")
            run_ours(conn, store, "warmup.rdb")  # numpy tables, first replica link
            cli_times, our_times, size = [], [], 0
            for i in range(args.rounds):  # alternate who goes first: the box is shared and noisy
                if i % 2:
                    seconds, size = run_ours(conn, store, "ours.rdb")
                    cli_times.append(run_redis_cli(server.port, work / "cli.rdb"))
                else:
                    cli_times.append(run_redis_cli(server.port, work / "cli.rdb"))
                    seconds, size = run_ours(conn, store, "ours.rdb")
                our_times.append(seconds)
                print(f"round {i + 1}: redis-cli {cli_times[-1]:.3f}s, ours {our_times[-1]:.3f}s ({size / 1e6:.1f} MB)", flush=True)
            cli_size = (work / "cli.rdb").stat().st_size
    finally:
        shutil.rmtree(work, ignore_errors=True)
    base, ours = statistics.median(cli_times), statistics.median(our_times)
    result = {
        "benchmark": "redis_rdb", "keys": keys, "rdb_mb": round(size / 1e6, 1), "baseline_rdb_mb": round(cli_size / 1e6, 1),
        "baseline_s": round(base, 3), "ours_s": round(ours, 3), "ratio": round(ours / base, 3),
        "baseline_mb_s": round(cli_size / 1e6 / base, 1), "ours_mb_s": round(size / 1e6 / ours, 1),
        "rounds": args.rounds, "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
    }
    print(json.dumps(result))


if __name__ == "__main__":
    main()
