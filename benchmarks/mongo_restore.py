"""Benchmark: our MongoDB restore vs stock mongorestore and vs a raw insert, same server, same run.

The documents are dumped once by our backup job (default codec, gzip) into a local store, with
its manifest. Each round restores the same backup into fresh databases, alternating:

* ours, verified (``ratio_vs_stock``): what ``python -m backup_dr restore mongo`` runs:
  ``restore_mongodb`` (the file's sha256 against the manifest, the archive's structure and
  CRCs, the refusal/safety-backup step, the restore, then validation: ``validate`` on every
  collection, document counts, every index);
* stock: ``mongorestore --archive=<the same file> --gzip --drop`` into a renamed database
  (``--nsFrom/--nsTo``; it builds the same indexes, verifies nothing beyond the CRCs);
* ours, bare: ``restore_archive`` alone (decompress, parse, CRC-check, insert, indexes);
* baseline: the archive's documents, already in memory, inserted with unordered ``insert_many``.

Fastest of N rounds counts (the machine is shared and noisy); each round starts with a different
one of the four, and the restored databases are dropped only at the end (a drop makes the test
server busy for a while afterwards). Stock tools come from
``MONGO_TOOLS_BIN`` or PATH; without them the stock figures are null.

    .venv/bin/python benchmarks/mongo_restore.py [--quick]

The last line printed is one JSON object with the figures.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "plugins"))

from mongo_dump import COLLS, DB, OPLOG_CAP, seed, stock_tools_or_reason  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true")
    args = ap.parse_args()

    from bson.raw_bson import RawBSONDocument

    from backup_dr.core.artifacts.layout import BackupId
    from backup_dr.core.artifacts.writer import ArtifactWriter
    from backup_dr.core.mongo.backup import backup_mongodb, restore_mongodb
    from backup_dr.core.mongo.restore import open_archive, restore_archive
    from backup_dr.core.policy_model import Job, MongoSource
    from backup_dr.core.stores.local import LocalStore
    from backup_dr.devstack.servers import MongoServer

    tools, why = stock_tools_or_reason()
    if tools is None:
        print(f"stock mongorestore unavailable, stock figures are null: {why}")
    docs = 10_000 if args.quick else 40_000
    repeat = 2 if args.quick else 3
    with tempfile.TemporaryDirectory(prefix="bench-mongo-restore-") as tmp, \
            MongoServer(Path(tmp) / "srv", oplog_max_entries=OPLOG_CAP) as server:
        client = server.client()
        seed(client, docs)
        store = LocalStore(Path(tmp) / "store")
        bid = BackupId.new("critical_data", "mongodb", "full", datetime.now(timezone.utc))
        manifest = backup_mongodb(client, MongoSource(name="mongodb", conn_id="x", database=DB),
                                  Job(source="mongodb"), ArtifactWriter(store, bid, source_type="mongodb"))
        path = store.path(bid.key(manifest.files[0].name))
        by_coll: dict[str, list[RawBSONDocument]] = {}
        with open_archive(path) as reader:
            for db, coll, doc in reader.documents():
                if doc is not None and db:
                    by_coll.setdefault(coll, []).append(RawBSONDocument(doc))
        n = sum(len(v) for v in by_coll.values())

        def timed(fn) -> float:
            t = time.perf_counter()
            fn()
            return time.perf_counter() - t

        def baseline(i: int) -> None:
            db = client[f"base{i}"]
            for coll, items in by_coll.items():
                for s in range(0, len(items), 5000):
                    db[coll].insert_many(items[s:s + 5000], ordered=False)

        def verified(i: int) -> None:
            restore_mongodb(client, store, manifest, workdir=Path(tmp) / "work", safety_dir=Path(tmp) / "safety",
                            target_db=f"ours{i}")

        def stock(i: int) -> None:
            res = subprocess.run([str(tools.path("mongorestore")), f"--uri={server.uri}", f"--archive={path}", "--gzip",
                                  "--drop", f"--nsFrom={DB}.*", f"--nsTo=stock{i}.*", "--quiet"], capture_output=True, text=True)
            if res.returncode != 0:
                raise RuntimeError(f"stock mongorestore failed: {res.stderr[-2000:]}")

        def bare(i: int) -> None:
            restore_archive(client, path, target_db=f"bare{i}", progress_every=3600)

        runs = {"verified": verified, "stock": stock, "bare": bare, "baseline": baseline}
        if tools is None:
            del runs["stock"]
        times: dict[str, list[float]] = {k: [] for k in ("verified", "stock", "bare", "baseline")}
        for i in range(repeat):  # alternate, starting each round with another one; drops only at the end
            order = list(runs)[i % len(runs):] + list(runs)[:i % len(runs)]
            for name in order:
                times[name].append(timed(lambda: runs[name](i)))
        for i in range(repeat):
            for prefix in ("ours", "stock", "bare", "base"):
                client.drop_database(f"{prefix}{i}")
        fast = {k: min(v) if v else None for k, v in times.items()}
        ratio_vs_stock = round(fast["verified"] / fast["stock"], 3) if fast["stock"] else None
        bare_vs_stock = round(fast["bare"] / fast["stock"], 3) if fast["stock"] else None
        print(f"docs={n}  verified restore {fast['verified']:.2f}s  stock mongorestore --drop "
              + (f"{fast['stock']:.2f}s  ratio_vs_stock {ratio_vs_stock}  " if fast["stock"] else "n/a  ")
              + f"bare restore {fast['bare']:.2f}s ({n / fast['bare']:.0f} docs/s)  raw insert {fast['baseline']:.2f}s")
        print(json.dumps({"benchmark": "mongo_restore", "docs": n, "collections": list(COLLS),
                          "verified_s": round(fast["verified"], 3), "stock_s": round(fast["stock"], 3) if fast["stock"] else None,
                          "ratio_vs_stock": ratio_vs_stock, "bare_ratio_vs_stock": bare_vs_stock,
                          "stock_tools": tools.version if tools else why,
                          "baseline_s": round(fast["baseline"], 3), "ours_s": round(fast["bare"], 3),
                          "ratio": round(fast["bare"] / fast["baseline"], 3), "ours_docs_per_s": round(n / fast["bare"]),
                          "safe_ratio": round(fast["verified"] / fast["baseline"], 3)}))
        client.close()


if __name__ == "__main__":
    main()
