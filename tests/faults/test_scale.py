"""Row 11: a 10x larger dataset than the demo: the dump's memory stays flat, the run finishes,
progress is logged.

The demo seeds ~5,000 documents (``sample_data.DEFAULT_COUNTS``); the 10x database holds
50,000 documents of the same shapes with ~2 KB more text each (~24x the bytes). Each dump runs
in its own child process (the job function the operator and the CLI call), which reports its
peak RSS (VmHWM). The 10x dump must finish with every document counted, log progress lines
with docs/s and MB/s, and peak within a small constant of the 1x dump's peak: the dump
streams raw BSON batches, it never holds a collection.
"""

from __future__ import annotations

import json
import random
import re
import subprocess
import sys

import pytest

from backup_dr.devstack import sample_data
from backup_dr.devstack.servers import MongoServer
from tests.faults.conftest import ROOT

pytestmark = pytest.mark.slow

PROGRESS = re.compile(r"collection (\w+)\.(\w+): (\d+)(?:/\d+)? docs(?: \([\d.]+%\))?, ([\d.]+) MB, (\d+) docs/s, ([\d.]+) MB/s")


def _seed_10x(db) -> dict[str, int]:
    rng = random.Random(10)
    words = "지원 사업 공고 신청 대상 기업 선정 평가 예산 협약 접수 기간 제출 서류 문의 담당 부서 안내".split()
    counts = {name: n * 10 for name, n in sample_data.DEFAULT_COUNTS.items()}
    for name, n in counts.items():
        make = sample_data._MAKERS[name]  # the demo's document shapes
        for start in range(0, n, 2000):
            db[name].insert_many([{**make(rng, i), "notes": " ".join(rng.choice(words) for _ in range(300))}
                                  for i in range(start, min(start + 2000, n))], ordered=False)
    sample_data.create_indexes(db)
    return counts


def _dump(server, database: str, store) -> tuple[dict, str]:
    out = subprocess.run([sys.executable, "-m", "tests.faults.dump_child", server.uri, database, str(store)], cwd=ROOT,
                         capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stderr[-3000:]
    return json.loads(out.stdout.strip().splitlines()[-1]), out.stderr


def test_ten_times_the_data_dumps_in_flat_memory_with_progress(tmp_path):
    with MongoServer(tmp_path / "mongo") as server:
        client = server.client()
        one = sample_data.seed_mongo(client, database="demo_1x")
        ten = _seed_10x(client["demo_10x"])
        small, _ = _dump(server, "demo_1x", tmp_path / "store-1x")
        big, log = _dump(server, "demo_10x", tmp_path / "store-10x")
        client.close()
    # the run finished with every document
    assert small["counts"] == one and big["counts"] == ten
    assert big["bytes"] > 20 * small["bytes"], (small["bytes"], big["bytes"])
    # memory stays flat: the 10x dump's peak is within a few MB of the 1x dump's, nowhere near 10x
    grow_small = small["peak_rss_mb"] - small["rss_before_mb"]
    grow_big = big["peak_rss_mb"] - big["rss_before_mb"]
    print(f"RSS 1x: peak {small['peak_rss_mb']} MB (+{grow_small:.1f} MB during the dump, {small['bytes'] / 1e6:.1f} MB of BSON); "
          f"10x: peak {big['peak_rss_mb']} MB (+{grow_big:.1f} MB, {big['bytes'] / 1e6:.1f} MB of BSON in {big['seconds']}s)")
    assert big["peak_rss_mb"] < small["peak_rss_mb"] * 1.5, (small, big)
    assert grow_big < grow_small + 40, (small, big)
    # progress was logged with rates
    lines = [m for m in PROGRESS.finditer(log) if m.group(1) == "demo_10x"]
    assert {m.group(2) for m in lines} == set(ten), log[-2000:]
    assert all(int(m.group(5)) > 0 and float(m.group(6)) > 0 for m in lines)
    finals = {m.group(2): int(m.group(3)) for m in lines}
    assert finals == ten
