"""A MongoDB dump in a CHILD process, for measuring its peak memory (VmHWM) in isolation.

``python -m tests.faults.dump_child MONGO_URI DATABASE STORE_DIR`` runs the very job function the
MongoDumpOperator and the CLI run (``backup_mongodb``, gzip archive into a local store, the
policy's ``mongodb`` source with all its collections) and prints, last, one JSON line with
the manifest's counts and size and the process's peak RSS.
"""

from __future__ import annotations

import json
import logging
import sys
from dataclasses import replace
from datetime import datetime, timezone
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def peak_rss_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError("no VmHWM")


def main(uri: str, database: str, store_dir: str) -> None:
    sys.path.insert(0, str(ROOT / "plugins"))
    import pymongo

    from backup_dr.core.artifacts.layout import BackupId
    from backup_dr.core.artifacts.writer import ArtifactWriter
    from backup_dr.core.mongo.backup import backup_mongodb
    from backup_dr.core.policy import load_policy
    from backup_dr.core.policy_model import Job
    from backup_dr.core.stores.local import LocalStore

    logging.basicConfig(level=logging.INFO, stream=sys.stderr, format="%(levelname)s %(name)s %(message)s")
    policy = load_policy(ROOT / "include" / "policy.yaml")
    source = replace(policy.sources["mongodb"], database=database, collections=())
    before = peak_rss_mb()
    writer = ArtifactWriter(LocalStore(store_dir), BackupId.new("critical_data", "mongodb", "full", datetime.now(timezone.utc)),
                            source_type="mongodb")
    with pymongo.MongoClient(uri) as client:
        manifest = backup_mongodb(client, source, Job(source="mongodb"), writer, progress_every=1.0)
    print(json.dumps({"counts": manifest.counts, "bytes": manifest.details["bytes"], "stored": manifest.total_size,
                      "seconds": manifest.details["seconds"], "rss_before_mb": round(before, 1),
                      "peak_rss_mb": round(peak_rss_mb(), 1)}), flush=True)


if __name__ == "__main__":
    main(*sys.argv[1:4])
