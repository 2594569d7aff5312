"""Benchmark: how each engine grows with data — every engine at 1x and 10x data in the same run.

The baseline is the 1x run of the same engine on the same servers; the figures that matter are
ratios: time 10x/1x (linear growth = 10), peak RSS 10x/1x (flat = 1), local disk and network
bytes per GB of source data. Engines, each run in a child process so its own peak RSS counts:

* ``mongo_dump``    our dump (raw batches -> mongodump archive) with gzip and with zstd, oplog
                    window off (SecantusDB scans its oplog per query; mongod seeks);
* ``mongo_restore`` our restore engine from that archive into a fresh database;
* ``redis_rdb``     RDB over the replication protocol into the local store;
* ``files``         tar.zst of a mixed tree (logs, binaries, configs);
* ``replicate``     one artifact to S3 (moto) and to GCS (emulator), each alone, read back and
                    hashed (network per store = the artifact up once and back once: not measured
                    here, /proc/<pid>/io does not count socket send/recv).

    .venv/bin/python benchmarks/scale.py --quick    # 1x = ~4 MB per engine (under two minutes)
    .venv/bin/python benchmarks/scale.py            # 1x = ~20 MB, 10x = ~200 MB

Reuses the other benchmarks' data generators and children (mongo_dump, redis_rdb,
files_archive, replicate). The last line printed is one JSON object with the figures.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(REPO / "plugins"))
MB = 1024 * 1024


def _bench(name: str):
    """Another benchmark script as a module (its generators and children are reused, not copied)."""
    spec = importlib.util.spec_from_file_location(f"bench_{name}", HERE / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _run(*argv: str) -> dict:
    out = subprocess.run([sys.executable, *argv], capture_output=True, text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


# ----------------------------------------------------------------------------- children


def child(mode: str, *args: str) -> None:
    t0 = time.perf_counter()
    if mode == "mongo_restore":
        import pymongo

        from backup_dr.core.mongo.restore import restore_archive

        uri, path, target = args
        client = pymongo.MongoClient(uri)
        result = restore_archive(client, path, target_db=target, progress_every=3600)
        client.drop_database(target)
        out = {"docs": sum(result.inserted.values())}
    elif mode == "redis_rdb":
        from backup_dr.core.connections import ConnInfo
        from backup_dr.core.redis.replication import fetch_rdb
        from backup_dr.core.stores.local import LocalStore

        port, password, root = args
        store = LocalStore(root)
        with store.open_write("dump.rdb") as f:
            fetch = fetch_rdb(ConnInfo("bench", "redis", "127.0.0.1", int(port), None, password), f)
        out = {"bytes": fetch.size}
    elif mode == "replicate":
        from backup_dr.core.artifacts.manifest import Manifest
        from backup_dr.core.replicate import replicate
        from backup_dr.core.stores.local import LocalStore

        root, manifest_path, kind, endpoint, bucket = args
        local = LocalStore(root)
        if kind == "s3":
            import boto3

            from backup_dr.core.stores.s3 import S3Store

            client = boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1", aws_access_key_id="bench",
                                  aws_secret_access_key="bench")
            dest = S3Store(client, bucket, prefix="backup-dr", name="s3")
        else:
            import os

            from google.auth.credentials import AnonymousCredentials
            from google.cloud import storage

            from backup_dr.core.stores.gcs import GCSStore

            os.environ["STORAGE_EMULATOR_HOST"] = endpoint
            dest = GCSStore(storage.Client(project="test", credentials=AnonymousCredentials()), bucket, prefix="backup-dr", name="gcs")
        replicate(local, Manifest.from_json(Path(manifest_path).read_bytes()), dest)
        out = {}
    else:
        raise SystemExit(f"unknown child {mode}")
    print(json.dumps({**out, "seconds": time.perf_counter() - t0, "rss_mb": _rss_mb()}))


# ----------------------------------------------------------------------------- engines at one size


def mongo_at(mongo_dump, server, client, docs: int, work: Path) -> dict:
    client.drop_database(mongo_dump.DB)
    mongo_dump.seed(client, docs)
    raw = sum(client[mongo_dump.DB].command("collStats", c)["size"] for c in mongo_dump.COLLS)
    out = {"data_mb": raw / MB}
    for codec in ("gzip", "zstd"):
        path = work / f"dump.{codec}"
        r = mongo_dump.run_child(f"{codec}-nooplog", server.uri, str(path))
        out[f"dump_{codec}"] = {"s": r["seconds"], "rss_mb": r["rss_mb"], "disk_mb": path.stat().st_size / MB}
    r = _run(__file__, "--child", "mongo_restore", server.uri, str(work / "dump.zstd"), "scale_restore")
    out["restore"] = {"s": r["seconds"], "rss_mb": r["rss_mb"]}
    return out


def redis_at(redis_rdb, server, keys: int, work: Path) -> dict:
    r = server.client()
    r.flushall()
    redis_rdb.seed(r, keys)
    used = r.info("memory")["used_memory"]
    root = work / "redis-store"
    shutil.rmtree(root, ignore_errors=True)
    res = _run(__file__, "--child", "redis_rdb", str(server.port), redis_rdb.PASSWORD, str(root))
    return {"keys": keys, "data_mb": used / MB, "s": res["seconds"], "rss_mb": res["rss_mb"], "disk_mb": res["bytes"] / MB}


def files_at(files_archive, mb: int, work: Path) -> dict:
    src = work / f"tree-{mb}"
    shutil.rmtree(src, ignore_errors=True)
    _files, size = files_archive.make_tree(src, mb)
    r = files_archive.run_ours(src, work / "files-store", "zstd", 1)
    shutil.rmtree(src, ignore_errors=True)
    return {"data_mb": size / MB, "s": r["seconds"], "rss_mb": r["peak_rss_mb"], "disk_mb": r["size"] / MB}


def replicate_at(replicate_bench, moto, gcs, mb: int, work: Path) -> dict:
    import uuid

    from backup_dr.core.stores.local import LocalStore

    root = work / f"rep-{mb}"
    local = LocalStore(root)
    manifest = replicate_bench.make_artifact(local, mb)
    mpath = work / "manifest.json"
    mpath.write_bytes(manifest.to_json())
    out = {"data_mb": manifest.total_size / MB}
    for kind, server in (("s3", moto), ("gcs", gcs)):
        bucket = f"scale-{uuid.uuid4().hex[:8]}"
        (moto.client().create_bucket(Bucket=bucket) if kind == "s3" else gcs.client().create_bucket(bucket))
        res = _run(__file__, "--child", "replicate", str(root), str(mpath), kind, server.endpoint_url, bucket)
        out[kind] = {"s": res["seconds"], "rss_mb": res["rss_mb"]}
    shutil.rmtree(root, ignore_errors=True)
    return out


# ----------------------------------------------------------------------------- report


def _growth(one: dict, ten: dict, data_key: str = "data_mb") -> dict:
    """10x/1x ratios and per-GB figures at 10x of one engine measurement pair."""
    gb = ten[data_key] / 1024
    g = {"s_1x": round(one["s"], 2), "s_10x": round(ten["s"], 2), "time_ratio": round(ten["s"] / one["s"], 2),
         "s_per_gb": round(ten["s"] / gb, 1), "rss_1x_mb": round(one["rss_mb"]), "rss_10x_mb": round(ten["rss_mb"]),
         "rss_ratio": round(ten["rss_mb"] / one["rss_mb"], 2)}
    if "disk_mb" in ten:
        g["disk_gb_per_gb"] = round(ten["disk_mb"] / ten[data_key], 3)
    return g


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--only", choices=("mongo", "redis", "files", "replicate"), help="one engine group only")
    ap.add_argument("--child", nargs=argparse.REMAINDER)
    args = ap.parse_args()
    if args.child:
        return child(*args.child)

    from backup_dr.devstack.servers import GcsEmulator, MongoServer, MotoServer, RedisServer

    mongo_dump, redis_rdb, files_archive, replicate_bench = (_bench(n) for n in ("mongo_dump", "redis_rdb", "files_archive", "replicate"))
    docs, keys, mb = (4_000, 20_000, 4) if args.quick else (20_000, 100_000, 20)
    results: dict[str, dict] = {}
    t_start = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="bench-scale-") as tmp:
        work = Path(tmp)
        if args.only in (None, "mongo"):
            with MongoServer(work / "mongo") as server:
                client = server.client()
                m1, m10 = (mongo_at(mongo_dump, server, client, n, work) for n in (docs, docs * 10))
                client.close()
            for codec in ("gzip", "zstd"):
                results[f"mongo_dump_{codec}"] = _growth({**m1[f"dump_{codec}"], "data_mb": m1["data_mb"]},
                                                         {**m10[f"dump_{codec}"], "data_mb": m10["data_mb"]})
            results["mongo_restore"] = _growth({**m1["restore"], "data_mb": m1["data_mb"]}, {**m10["restore"], "data_mb": m10["data_mb"]})
        if args.only in (None, "redis"):
            with RedisServer(work / "redis", password=redis_rdb.PASSWORD) as rs:
                r1, r10 = (redis_at(redis_rdb, rs, n, work) for n in (keys, keys * 10))
            results["redis_rdb"] = _growth(r1, r10)
        if args.only in (None, "files"):
            f1, f10 = (files_at(files_archive, n, work) for n in (mb, mb * 10))
            results["files_zstd"] = _growth(f1, f10)
        if args.only in (None, "replicate"):
            with MotoServer(work / "moto") as moto, GcsEmulator(work / "gcs") as gcs:
                p1, p10 = (replicate_at(replicate_bench, moto, gcs, n, work) for n in (mb, mb * 10))
            for kind in ("s3", "gcs"):
                results[f"replicate_{kind}"] = _growth({**p1[kind], "data_mb": p1["data_mb"]},
                                                       {**p10[kind], "data_mb": p10["data_mb"]})
    for name, g in results.items():
        print(f"{name:18} 1x {g['s_1x']:7.2f}s  10x {g['s_10x']:7.2f}s  time x{g['time_ratio']:<5}  {g['s_per_gb']:7.1f} s/GB  "
              f"RSS {g['rss_1x_mb']}->{g['rss_10x_mb']} MB" + (f"  disk {g['disk_gb_per_gb']} GB/GB" if "disk_gb_per_gb" in g else ""))
    print(json.dumps({"benchmark": "scale", "quick": args.quick, "mongo_docs_1x": docs, "redis_keys_1x": keys, "files_mb_1x": mb,
                      "seconds_total": round(time.perf_counter() - t_start, 1), "engines": results}))


if __name__ == "__main__":
    main()
