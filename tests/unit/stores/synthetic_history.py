"""A synthetic 400-day backup history written with the real ArtifactWriter into a LocalStore.

NOW = 2026-06-20T00:00Z (plans are made "as of" NOW; nothing depends on the wall clock).

* critical_data / mongodb / full: 80 fulls, every 5 days, NOW-400d .. NOW-5d;
  consistent point (end) = id time + 1 h.
* critical_data / mongodb / oplog: 100 daily slices chained by previous_id, ids NOW-99d ..
  NOW; slice j covers [id-23h, id+1h), so slice 0 starts exactly at the end of the full
  taken at NOW-100d and each slice starts where the previous one ended.
* operational_data / redis_cache / rdb: 20 backups every 2 days, NOW-240d .. NOW-202d
  (the source stopped being backed up); verification: newest FAILED, 3rd newest ok, 5th ok.

Each manifest's modification time is set to one minute after its consistent point, as a
real run writes it. 200 complete backups in all, plus the odd ones each test adds.
"""

from __future__ import annotations

import itertools
import os
from datetime import datetime, timedelta, timezone

from backup_dr.core.artifacts.layout import BackupId
from backup_dr.core.artifacts.writer import ArtifactWriter
from backup_dr.core.policy_model import Gfs, Retention
from backup_dr.core.stores.local import LocalStore

NOW = datetime(2026, 6, 20, tzinfo=timezone.utc)
DAY, HOUR = timedelta(days=1), timedelta(hours=1)
RULES = {
    "critical_data": Retention(keep_within=90 * DAY, gfs=Gfs(monthly=6), text="3 months"),
    "operational_data": Retention(keep_within=30 * DAY, text="1 month"),
}
FULLS = [NOW - 400 * DAY + 5 * i * DAY for i in range(80)]
SLICES = [NOW - 99 * DAY + j * DAY for j in range(100)]
RDBS = [NOW - 240 * DAY + 2 * k * DAY for k in range(20)]
_seq = itertools.count()


def point(dt: datetime) -> dict:
    return {"t": int(dt.timestamp()), "i": 1}


def write(store: LocalStore, cls: str, source: str, kind: str, stamp: datetime, *, start: datetime | None = None,
          end: datetime | None = None, previous_id: str | None = None, commit: bool = True) -> BackupId:
    bid = BackupId.new(cls, source, kind, stamp)
    writer = ArtifactWriter(store, bid, source_type="mongodb", retention=RULES.get(cls))
    writer.begin()
    with writer.open_file("data.bin") as out:
        out.write(f"{bid} {next(_seq)}".encode() * 20)
    if not commit:
        writer._release()
        return bid
    cp = {"end": point(end or stamp + HOUR)}
    if start is not None:
        cp["start"] = point(start)
    writer.commit(consistent_point=cp, previous_id=previous_id)
    # as in production, the manifest is written just after the data was captured (the catalog
    # uses the manifest's modification time as an upper bound of the capture time)
    written = ((end or stamp + HOUR) + timedelta(minutes=1)).timestamp()
    os.utime(store.path(bid.manifest_key), (written, written))
    return bid
