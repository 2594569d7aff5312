"""Benchmark: point-in-time recovery (oplog slice archiving and restore-to-time) vs hand-made baselines.

Same server, same run. A full backup is taken, then a workload of mixed inserts, updates and
deletes (bulk writes, so the oplog holds one entry per operation).

* Archive. Baseline: copy the database's oplog entries after the backup's end (the same
  ``ts`` range and namespace query) with ``find_raw_batches`` into an uncompressed file (what
  a script around ``mongodump -d local -c oplog.rs --query`` does). Ours: :func:`archive_slice` (namespace filter, gzip, sha256,
  manifest last, chain and gap checks).
* Restore. Baseline: the restore engine on the full backup's archive, then the live oplog
  window replayed with the client-side applier (no verification, no safety backup, no
  validation: only possible while the oplog still holds the window). Ours: ``restore_to_time``
  to the exact last position (fetch + sha256 of every artifact, slice checks, safe restore,
  replay from the slice, validation).

Fastest of N runs counts (the machine is shared and noisy).

    .venv/bin/python benchmarks/pitr.py [--quick]
"""

from __future__ import annotations

import argparse
import json
import random
import re
import resource
import sys
import tempfile
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "plugins"))

DB = "korea_public_data"


def _policy():
    import dataclasses

    from backup_dr.core.policy import load_policy

    policy = load_policy(REPO / "include" / "policy.yaml")
    src = dataclasses.replace(policy.sources["mongodb"], database=DB)
    return dataclasses.replace(policy, sources={**policy.sources, "mongodb": src})


def _seed(client, docs: int) -> None:
    db = client[DB]
    third = docs // 3
    db.announcements.insert_many([{"_id": i, "title": f"공고 {i}", "region": i % 17, "views": 0, "body": "x" * 300}
                                  for i in range(third)])
    db.businesses.insert_many([{"_id": i, "name": f"사업체 {i}", "status": "open", "employees": i % 50} for i in range(third)])
    db.contents.insert_many([{"_id": i, "body": "y" * 500, "rev": 1} for i in range(third)])
    db.announcements.create_index("region")


def _workload(client, ops: int, start_id: int) -> None:
    from pymongo import DeleteOne, InsertOne, UpdateOne

    rng = random.Random(7)
    db = client[DB]
    done, next_id = 0, start_id
    while done < ops:
        batch = []
        for _ in range(min(1000, ops - done)):
            r = rng.random()
            if r < 0.4:
                batch.append(InsertOne({"_id": next_id, "title": "new", "region": next_id % 17, "views": 0, "body": "z" * 300}))
                next_id += 1
            elif r < 0.85:
                batch.append(UpdateOne({"_id": rng.randrange(next_id)}, {"$inc": {"views": 1}, "$set": {"seen": True}}))
            else:
                batch.append(DeleteOne({"_id": rng.randrange(next_id)}))
        db.announcements.bulk_write(batch, ordered=True)
        done += len(batch)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true")
    args = ap.parse_args()

    from bson import Timestamp

    from backup_dr.core.artifacts.layout import BackupId
    from backup_dr.core.artifacts.writer import ArtifactWriter
    from backup_dr.core.mongo.applier import NamespaceMap, OplogApplier
    from backup_dr.core.mongo.backup import backup_mongodb
    from backup_dr.core.mongo.oplog import newest_ts, read_window
    from backup_dr.core.mongo.restore import restore_archive
    from backup_dr.core.pitr import archive_slice, restore_to_time
    from backup_dr.core.stores.local import LocalStore
    from backup_dr.devstack.servers import MongoServer

    docs, ops, repeat = (3_000, 5_000, 2) if args.quick else (15_000, 20_000, 3)
    policy = _policy()
    cls = policy.classes["critical_data"]
    job = next(j for j in cls.jobs if j.source == "mongodb")
    when = datetime(2026, 11, 26, 1, 0, tzinfo=timezone.utc)
    with tempfile.TemporaryDirectory(prefix="bench-pitr-") as tmp, MongoServer(Path(tmp) / "srv", oplog_max_entries=1_000_000) as server:
        client = server.client()
        _seed(client, docs)
        base_store = LocalStore(Path(tmp) / "base", name="local")
        full = backup_mongodb(client, policy.sources["mongodb"], job,
                              ArtifactWriter(base_store, BackupId.new(cls.name, "mongodb", "full", when), source_type="mongodb"))
        start = Timestamp(full.consistent_point["end"]["t"], full.consistent_point["end"]["i"])
        _workload(client, ops, docs)
        end = newest_ts(client)
        archive_path = next(base_store.root.rglob("*.archive.gz"))

        def archive_baseline(i: int) -> float:
            t = time.perf_counter()
            with open(Path(tmp) / f"raw{i}.bson", "wb") as out:
                query = {"ts": {"$gt": start, "$lte": end}, "ns": {"$in": [re.compile(f"^{DB}\\."), "admin.$cmd"]}}
                for batch in client.local["oplog.rs"].find_raw_batches(query):
                    out.write(batch)
            return time.perf_counter() - t

        def archive_ours(i: int) -> tuple[float, LocalStore, object]:
            store = LocalStore(Path(tmp) / f"ours{i}", name="local")
            for src in base_store.root.rglob("*"):  # the chain starts at the full backup's end point
                if src.is_file():
                    dest = store.root / src.relative_to(base_store.root)
                    dest.parent.mkdir(parents=True, exist_ok=True)
                    dest.write_bytes(src.read_bytes())
            t = time.perf_counter()
            result = archive_slice(client, policy, "mongodb", store, {}, when + timedelta(minutes=15))
            return time.perf_counter() - t, store, result

        def restore_baseline(i: int) -> float:
            target = f"base{i}"
            t = time.perf_counter()
            restore_archive(client, archive_path, target_db=target, collections=list(job.collections), progress_every=3600)
            OplogApplier(client, NamespaceMap(DB, target, job.collections)).apply_all(read_window(client, DB, start, end))
            return time.perf_counter() - t

        def restore_ours(i: int, store: LocalStore, at) -> float:
            t = time.perf_counter()
            restore_to_time(client, {"local": store}, policy, "mongodb", at, target_db=f"ours{i}", workdir=Path(tmp) / "w",
                            safety_dir=Path(tmp) / "safety")
            return time.perf_counter() - t

        a_base, a_ours, r_base, r_ours = [], [], [], []
        entries = 0
        for i in range(repeat):
            a_base.append(archive_baseline(i))
            seconds, store, result = archive_ours(i)
            a_ours.append(seconds)
            entries = result.manifest.counts["entries"]
            slice_end = result.manifest.consistent_point["end"]
            r_base.append(restore_baseline(i))
            r_ours.append(restore_ours(i, store, Timestamp(slice_end["t"], slice_end["i"])))
            for prefix in ("base", "ours"):
                client.drop_database(f"{prefix}{i}")
        ab, ao, rb, ro = min(a_base), min(a_ours), min(r_base), min(r_ours)
        rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        print(f"entries={entries} docs={docs}  archive: raw copy {ab:.2f}s, slice {ao:.2f}s  |  restore: engine+live replay "
              f"{rb:.2f}s, restore_to_time {ro:.2f}s ({entries / ro:.0f} entries/s incl. base restore)")
        print(json.dumps({"benchmark": "pitr", "docs": docs, "entries": entries,
                          "baseline_s": round(ab, 3), "ours_s": round(ao, 3), "ratio": round(ao / ab, 3),
                          "restore_baseline_s": round(rb, 3), "restore_ours_s": round(ro, 3), "restore_ratio": round(ro / rb, 3),
                          "peak_rss_mb": round(rss)}))
        client.close()


if __name__ == "__main__":
    main()
