"""Benchmark: our MongoDB dump vs draining the same collections with raw batches.

Same server, same run: (a) baseline = ``find_raw_batches`` over every collection, bytes
discarded; (b) ours = ``dump_database`` to a local zstd archive (and gzip for reference).
Each measurement runs in a child process (so its own peak RSS is measured) and is repeated;
the fastest run counts (the machine is shared and noisy). Peak RSS of our dump is measured
at N and 10*N documents to show memory stays flat while data grows 10x.

    .venv/bin/python benchmarks/mongo_dump.py [--quick]

The last line printed is one JSON object with the figures.
"""

from __future__ import annotations

import argparse
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


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--child")
    ap.add_argument("--uri")
    ap.add_argument("--out")
    args = ap.parse_args()
    if args.child:
        return child(args.child, args.uri, args.out)

    from backup_dr.devstack.servers import MongoServer

    small = 4_000 if args.quick else 20_000
    repeat = 2 if args.quick else 3
    with tempfile.TemporaryDirectory(prefix="bench-mongo-dump-") as tmp, MongoServer(Path(tmp) / "srv") as server:
        client = server.client()
        out = str(Path(tmp) / "out.archive")
        seed(client, small)
        rss_small = best("zstd", server.uri, out, 1)["rss_mb"]
        seed(client, small * 9, start=small)  # grow 10x
        docs = sum(client[DB][c].estimated_document_count() for c in COLLS)
        oplog_n = client.local["oplog.rs"].estimated_document_count()
        base = best("drain", server.uri, out, repeat)
        zstd = best("zstd", server.uri, out, repeat)
        gz = best("gzip", server.uri, out, repeat)
        # the same dump without the oplog window: SecantusDB scans its whole oplog for every
        # oplog query (mongod seeks by ts), so this isolates our pipeline's own overhead
        nooplog = best("zstd-nooplog", server.uri, out, repeat)
        # writes during the dump: the counts at the end point read the dumped data back (end_counts)
        busy = best("zstd-writes", server.uri, out, repeat)
        print(f"docs={docs} raw={base['bytes'] / 1e6:.1f} MB  drain {base['seconds']:.2f}s  "
              f"zstd {zstd['seconds']:.2f}s ({zstd['bytes'] / 1e6:.1f} MB)  gzip {gz['seconds']:.2f}s ({gz['bytes'] / 1e6:.1f} MB)  "
              f"rss {rss_small:.0f} MB at {small} docs -> {zstd['max_rss_mb']:.0f} MB at {docs}")
        print(json.dumps({
            "benchmark": "mongo_dump", "docs": docs, "data_mb": round(base["bytes"] / 1e6, 1),
            "baseline_s": round(base["seconds"], 3), "ours_s": round(zstd["seconds"], 3),
            "ratio": round(zstd["seconds"] / base["seconds"], 3),
            "gzip_s": round(gz["seconds"], 3), "gzip_ratio": round(gz["seconds"] / base["seconds"], 3),
            "nooplog_s": round(nooplog["seconds"], 3), "nooplog_ratio": round(nooplog["seconds"] / base["seconds"], 3),
            "oplog_entries_on_server": oplog_n,
            "zstd_mb": round(zstd["bytes"] / 1e6, 1), "gzip_mb": round(gz["bytes"] / 1e6, 1),
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
