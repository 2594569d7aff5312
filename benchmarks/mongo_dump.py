"""Benchmark: our MongoDB dump vs stock mongodump and vs draining the collections, same server, same run.

* Peer (``ratio_vs_stock``): the default path, a consistent dump with its oplog window to a
  gzip archive (the policy default), vs ``mongodump --oplog --archive --gzip`` (stock's
  consistent dump; the server holds only the benchmark database). Runs alternate, ours then
  stock, and the fastest of each counts (the machine is shared and noisy).
* Baseline (``ratio``): ``find_raw_batches`` over every collection, bytes discarded, vs our
  dump to a zstd archive; and our dump without the oplog window, which isolates our pipeline.
  SecantusDB scans its whole oplog for every oplog query (mongod seeks by ``ts``), so the
  server's oplog is capped at ``OPLOG_CAP`` entries (the seeding's inserts would otherwise make
  every oplog query of both tools a scan of the whole data set again).
* Size and speed per codec/level: the uncompressed archive of the same data compressed by
  each codec at each level (the work the dump's writer thread does), beside stock mongodump's
  gzip archive of the same data: size, ratio to stock's size, MB/s of archive bytes.
* Memory: peak RSS of our dump at N and 10*N documents (flat while data grows 10x).

Each of our dumps runs in a child process (its own peak RSS). Stock tools come from
``MONGO_TOOLS_BIN`` or PATH; without them the stock figures are null and the reason is printed.

    .venv/bin/python benchmarks/mongo_dump.py [--quick]

The last line printed is one JSON object with the figures.
"""

from __future__ import annotations

import argparse
import gzip
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "plugins"))

DB = "bench"
COLLS = ("c0", "c1")
DEFAULT_CODEC = "gzip"  # MongoSource.compression's default: stock `mongorestore --gzip` reads it
SWEEP = {"gzip": (0, 1, 2, 3), "zstd": (1, 3, 6, 9)}
QUICK_SWEEP = {"gzip": (1, 3), "zstd": (1, 3)}
#: SecantusDB answers every oplog query by scanning its whole oplog (mongod seeks by ``ts``), and
#: both tools' consistent dumps query it several times: capped small, the seeding's entries do not
#: make both sides look many times slower than on mongod.
OPLOG_CAP = 2_000


def child(mode: str, uri: str, out: str) -> None:
    import pymongo

    from backup_dr.core.mongo.dump import dump_database
    from backup_dr.core.mongo.sinks import ArchiveSink

    client = pymongo.MongoClient(uri)
    client.admin.command("ping")
    t = time.perf_counter()
    if mode == "drain":
        n = 0
        for c in COLLS:
            for batch in client[DB][c].find_raw_batches():
                n += len(batch)
    else:
        codec, _, variant = mode.partition("-")
        writer = _Writes(uri) if variant == "writes" else None
        with open(out, "wb") as f:
            sink = ArchiveSink(f, codec, server_version="8.2.11", tool_version="bench")
            result = dump_database(client, DB, sink, progress_every=3600, oplog=variant != "nooplog")
        if writer is not None:
            writer.stop.set()
            writer.join()
        n = os.path.getsize(out)
    seconds = time.perf_counter() - t
    counts_s = 0.0
    if mode != "drain" and result.window is not None:  # what backup_mongodb adds: the counts at the end point
        t = time.perf_counter()
        _end_counts(result, out)
        counts_s = time.perf_counter() - t
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(json.dumps({"seconds": seconds, "rss_mb": rss, "bytes": n, "counts_s": counts_s,
                      "window": result.oplog_entries if mode != "drain" else 0}))


def _end_counts(result, path: str) -> dict:
    from contextlib import contextmanager

    from backup_dr.core.mongo.codecs import decompressed_reader
    from backup_dr.core.mongo.end_counts import archive_documents, resolve

    @contextmanager
    def stream():
        with open(path, "rb") as raw, decompressed_reader(raw) as s:
            yield s

    return resolve(result.window, result.counts, archive_documents(stream, DB))


class _Writes:
    """The application writing during the dump: updates, inserts and deletes in every collection."""

    def __init__(self, uri: str):
        import threading

        import pymongo

        self.stop, self.client = threading.Event(), pymongo.MongoClient(uri)
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self):
        i, run = 0, f"{os.getpid()}-{time.time_ns()}"  # each run inserts new _ids
        while not self.stop.is_set():
            coll = self.client[DB][COLLS[i % len(COLLS)]]
            coll.update_one({"_id": i * 7}, {"$set": {"score": -1.0}})
            coll.insert_one({"_id": f"w{run}-{i}", "title": "during the dump"})
            coll.delete_one({"_id": i * 7 + 1})
            i += 1

    def join(self):
        self.thread.join()
        self.client.close()


def run_child(mode: str, uri: str, out: str) -> dict:
    res = subprocess.run([sys.executable, __file__, "--child", mode, "--uri", uri, "--out", out],
                         capture_output=True, text=True, check=True)
    return json.loads(res.stdout.strip().splitlines()[-1])


def run_stock(tools, uri: str, out: str) -> dict:
    t = time.perf_counter()
    res = subprocess.run([str(tools.path("mongodump")), f"--uri={uri}", "--oplog", f"--archive={out}", "--gzip", "--quiet"],
                         capture_output=True, text=True)
    seconds = time.perf_counter() - t
    if res.returncode != 0:
        raise RuntimeError(f"stock mongodump failed: {res.stderr[-2000:]}")
    return {"seconds": seconds, "bytes": os.path.getsize(out)}


def seed(client, docs: int, start: int = 0) -> None:
    import random

    rng = random.Random(start)
    words = "지원 사업 공고 신청 대상 기업 선정 평가 예산 협약 접수 기간 제출 서류".split()
    per = docs // len(COLLS)
    for c in COLLS:
        coll = client[DB][c]
        for s in range(start // len(COLLS), start // len(COLLS) + per, 5000):
            coll.insert_many([{"_id": i, "title": f"공고 {i}", "body": " ".join(rng.choice(words) for _ in range(120)),
                               "n": i, "score": rng.random(), "tags": rng.sample(words, 3)}
                              for i in range(s, min(s + 5000, start // len(COLLS) + per))], ordered=False)


def best(mode: str, uri: str, out: str, repeat: int) -> dict:
    runs = [run_child(mode, uri, out) for _ in range(repeat)]
    return min(runs, key=lambda r: r["seconds"]) | {"max_rss_mb": max(r["rss_mb"] for r in runs)}


def codec_sweep(raw_archive: Path, sweep: dict[str, tuple[int, ...]]) -> list[dict]:
    """Compress the uncompressed archive with every codec/level: seconds, MB/s, size."""
    import io

    from backup_dr.core.mongo.codecs import compressed_writer

    data = raw_archive.read_bytes()
    rows = []
    for codec, levels in sweep.items():
        for level in levels:
            out = io.BytesIO()
            t = time.perf_counter()
            with compressed_writer(out, codec, level=level) as w:
                for i in range(0, len(data), 1 << 20):
                    w.write(data[i:i + (1 << 20)])
            seconds = time.perf_counter() - t
            rows.append({"codec": codec, "level": level, "mb": round(len(out.getvalue()) / 1e6, 2),
                         "seconds": round(seconds, 3), "mb_per_s": round(len(data) / 1e6 / seconds, 1)})
    # reference, not a product codec: zlib at stock mongodump's gzip level (Go's compress/gzip default, 6)
    t = time.perf_counter()
    size = len(gzip.compress(data, compresslevel=6))
    seconds = time.perf_counter() - t
    rows.append({"codec": "zlib (stock's level)", "level": 6, "mb": round(size / 1e6, 2), "seconds": round(seconds, 3),
                 "mb_per_s": round(len(data) / 1e6 / seconds, 1)})
    return rows


def stock_tools_or_reason():
    from backup_dr.devstack.mongo_tools import ToolsUnavailable, find_stock_tools

    try:
        return find_stock_tools(), None
    except ToolsUnavailable as e:
        return None, str(e)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--child")
    ap.add_argument("--uri")
    ap.add_argument("--out")
    args = ap.parse_args()
    if args.child:
        return child(args.child, args.uri, args.out)

    from backup_dr.core.mongo.codecs import _GZIP_LEVEL, _ZSTD_LEVEL
    from backup_dr.devstack.servers import MongoServer

    tools, why = stock_tools_or_reason()
    if tools is None:
        print(f"stock mongodump unavailable, stock figures are null: {why}")
    small = 2_000 if args.quick else 20_000
    repeat = 2 if args.quick else 3
    with tempfile.TemporaryDirectory(prefix="bench-mongo-dump-") as tmp, \
            MongoServer(Path(tmp) / "srv", oplog_max_entries=OPLOG_CAP) as server:
        client = server.client()
        out, stock_out, raw = (str(Path(tmp) / n) for n in ("out.archive", "stock.archive.gz", "raw.archive"))
        seed(client, small)
        rss_small = best("zstd", server.uri, out, 1)["rss_mb"]
        seed(client, small * 9, start=small)  # grow 10x
        docs = sum(client[DB][c].estimated_document_count() for c in COLLS)
        oplog_n = client.local["oplog.rs"].estimated_document_count()
        base = best("drain", server.uri, out, repeat)
        ours_runs, stock_runs = [], []
        for _ in range(repeat):  # alternate: ours, stock, ours, stock, ...
            ours_runs.append(run_child(DEFAULT_CODEC, server.uri, out))
            if tools is not None:
                stock_runs.append(run_stock(tools, server.uri, stock_out))
        ours = min(ours_runs, key=lambda r: r["seconds"])
        stock = min(stock_runs, key=lambda r: r["seconds"]) if stock_runs else None
        zstd = best("zstd", server.uri, out, repeat)
        nooplog = best("zstd-nooplog", server.uri, out, repeat)
        best("none-nooplog", server.uri, raw, 1)
        sweep = codec_sweep(Path(raw), QUICK_SWEEP if args.quick else SWEEP)
        if stock is not None:
            for row in sweep:
                row["size_vs_stock_gzip"] = round(row["mb"] * 1e6 / stock["bytes"], 3)
        raw_mb = os.path.getsize(raw) / 1e6
        ratio_vs_stock = round(ours["seconds"] / stock["seconds"], 3) if stock else None
        print(f"docs={docs} archive={raw_mb:.1f} MB  drain {base['seconds']:.2f}s  ours gzip+oplog {ours['seconds']:.2f}s "
              f"({ours['bytes'] / 1e6:.1f} MB)  stock mongodump --oplog --gzip "
              + (f"{stock['seconds']:.2f}s ({stock['bytes'] / 1e6:.1f} MB)  ratio_vs_stock {ratio_vs_stock}" if stock else "n/a"))
        for row in sweep:
            print(f"  {row['codec']:20} level {row['level']}: {row['mb']:7.2f} MB  {row['mb_per_s']:7.1f} MB/s"
                  + (f"  size vs stock gzip {row['size_vs_stock_gzip']}" if stock else ""))
        print(f"  rss {rss_small:.0f} MB at {small} docs -> {zstd['max_rss_mb']:.0f} MB at {docs}")
        # writes during the dump: the counts at the end point read the dumped data back (end_counts)
        busy = best("zstd-writes", server.uri, out, repeat)
        print(f"  end counts: {zstd['counts_s']:.2f}s quiet; {busy['counts_s']:.2f}s of a {busy['seconds']:.2f}s dump "
              f"with {busy['window']} window entries")
        print(json.dumps({
            "benchmark": "mongo_dump", "docs": docs, "data_mb": round(base["bytes"] / 1e6, 1), "archive_mb": round(raw_mb, 1),
            "default_codec": f"{DEFAULT_CODEC}-{_GZIP_LEVEL}", "zstd_level": _ZSTD_LEVEL,
            "ours_s": round(ours["seconds"], 3), "ours_mb": round(ours["bytes"] / 1e6, 2),
            "stock_s": round(stock["seconds"], 3) if stock else None, "stock_mb": round(stock["bytes"] / 1e6, 2) if stock else None,
            "ratio_vs_stock": ratio_vs_stock, "stock_tools": tools.version if tools else why,
            "baseline_s": round(base["seconds"], 3), "zstd_s": round(zstd["seconds"], 3),
            "ratio": round(zstd["seconds"] / base["seconds"], 3),
            "nooplog_s": round(nooplog["seconds"], 3), "nooplog_ratio": round(nooplog["seconds"] / base["seconds"], 3),
            "oplog_entries_on_server": oplog_n, "zstd_mb": round(zstd["bytes"] / 1e6, 2),
            "codecs": sweep,
            "peak_rss_mb_small": round(rss_small, 1), "peak_rss_mb": round(zstd["max_rss_mb"], 1),
            "baseline_rss_mb": round(base["max_rss_mb"], 1), "small_docs": small,
            "end_counts_quiet_s": round(zstd["counts_s"], 3),
            "writes_dump_s": round(busy["seconds"], 3), "writes_window_entries": busy["window"],
            "end_counts_writes_s": round(busy["counts_s"], 3),
            "end_counts_writes_share": round(busy["counts_s"] / busy["seconds"], 3),
        }))
        client.close()


if __name__ == "__main__":
    main()
