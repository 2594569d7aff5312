"""Benchmark: our restore engine vs a raw unordered insert of the same documents.

Same server, same run. The documents are dumped once to a zstd archive. Baseline: the
archive's documents, already in memory as RawBSONDocument, inserted with unordered
``insert_many`` batches into a fresh database. Ours: ``restore_archive`` from the file
(decompress, parse, CRC-check, insert, build the _id index set, no oplog). The full safe
restore (verify pass + safety backup + validation) is timed too, for reference.
Fastest of N runs counts (the machine is shared and noisy).

    .venv/bin/python benchmarks/mongo_restore.py [--quick]
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "plugins"))

from mongo_dump import COLLS, DB, seed  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true")
    args = ap.parse_args()

    from bson.raw_bson import RawBSONDocument

    from backup_dr.core.mongo.dump import dump_database
    from backup_dr.core.mongo.restore import open_archive, restore_archive
    from backup_dr.core.mongo.safe_restore import safe_restore
    from backup_dr.core.mongo.sinks import ArchiveSink
    from backup_dr.core.stores.local import LocalStore
    from backup_dr.devstack.servers import MongoServer

    docs = 10_000 if args.quick else 40_000
    repeat = 2
    with tempfile.TemporaryDirectory(prefix="bench-mongo-restore-") as tmp, MongoServer(Path(tmp) / "srv") as server:
        client = server.client()
        seed(client, docs)
        path = Path(tmp) / "bench.archive.zst"
        with open(path, "wb") as f:
            dump_database(client, DB, ArchiveSink(f, "zstd", server_version="8.2.11", tool_version="bench"), oplog=False)
        by_coll: dict[str, list[RawBSONDocument]] = {}
        with open_archive(path) as reader:
            for _db, coll, doc in reader.documents():
                if doc is not None:
                    by_coll.setdefault(coll, []).append(RawBSONDocument(doc))
        n = sum(len(v) for v in by_coll.values())

        def baseline(i: int) -> float:
            db = client[f"base{i}"]
            t = time.perf_counter()
            for coll, items in by_coll.items():
                for s in range(0, len(items), 5000):
                    db[coll].insert_many(items[s:s + 5000], ordered=False)
            return time.perf_counter() - t

        def ours(i: int) -> float:
            t = time.perf_counter()
            restore_archive(client, path, target_db=f"ours{i}", progress_every=3600)
            return time.perf_counter() - t

        def safe(i: int) -> float:
            t = time.perf_counter()
            safe_restore(client, path, target_db=f"safe{i}", safety_store=LocalStore(Path(tmp) / "safety"))
            return time.perf_counter() - t

        base_s, ours_s, safe_s = [], [], []
        for i in range(repeat):
            base_s.append(baseline(i))
            ours_s.append(ours(i))
            safe_s.append(safe(i))
            for prefix in ("base", "ours", "safe"):
                client.drop_database(f"{prefix}{i}")
        b, o, s = min(base_s), min(ours_s), min(safe_s)
        print(f"docs={n}  raw insert {b:.2f}s ({n / b:.0f} docs/s)  restore {o:.2f}s ({n / o:.0f} docs/s)  "
              f"safe restore {s:.2f}s")
        print(json.dumps({"benchmark": "mongo_restore", "docs": n, "baseline_s": round(b, 3), "ours_s": round(o, 3),
                          "ratio": round(o / b, 3), "ours_docs_per_s": round(n / o), "safe_restore_s": round(s, 3),
                          "safe_ratio": round(s / b, 3), "collections": list(COLLS)}))
        client.close()


if __name__ == "__main__":
    main()
