"""Benchmark: archive a directory tree with backup_files vs the stock ``tar --zstd -cf`` (and gzip).

Generates a tree of mixed files (compressible log text, incompressible random "uploads",
many small config-like files), warms the page cache, then alternates baseline and ours on
the same tree in the same run and keeps each one's best time. Ours runs in a child
process so its peak RSS is its own (the claim: memory does not grow with the tree).

    .venv/bin/python benchmarks/files_archive.py --quick     # ~50 MB, under a minute
    .venv/bin/python benchmarks/files_archive.py             # ~300 MB

The last line printed is one JSON object with the figures.
"""

from __future__ import annotations

import argparse
import json
import random
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "plugins"))

MB = 1024 * 1024


def make_tree(root: Path, total_mb: int, seed: int = 7) -> tuple[int, int]:
    """~40% log text, ~45% random binaries, ~15% small files; returns (files, bytes)."""
    rng = random.Random(seed)
    words = ["GET", "POST", "/api/v1/announcements", "/api/v1/businesses", "200", "404", "서울특별시", "부산광역시",
             "INFO", "WARN", "cache hit", "cache miss", "user=", "region=", "latency_ms="]
    pool = [" ".join(rng.choice(words) for _ in range(rng.randint(6, 14))) + f" {rng.randint(0, 99999)}\n"
            for _ in range(5000)]
    budget = total_mb * MB
    files = written = 0
    targets = [("logs", 0.40, (2 * MB, 12 * MB)), ("uploads", 0.45, (256 * 1024, 8 * MB)), ("config", 0.15, (1024, 16 * 1024))]
    for top, share, (lo, hi) in targets:
        left = int(budget * share)
        i = 0
        while left > 0:
            size = min(rng.randint(lo, hi), left)
            d = root / top / f"d{i % 7}" / f"e{i % 3}"
            d.mkdir(parents=True, exist_ok=True)
            p = d / f"{top}-{i:05d}.{'log' if top == 'logs' else 'bin' if top == 'uploads' else 'yaml'}"
            if top == "uploads":
                data = rng.randbytes(size)
            else:
                chunks, n = [], 0
                while n < size:
                    line = pool[rng.randrange(len(pool))]
                    chunks.append(line)
                    n += len(line.encode())
                data = "".join(chunks).encode()[:size]
            p.write_bytes(data)
            files += 1
            written += len(data)
            left -= len(data)
            i += 1
    return files, written


def warm(root: Path) -> None:
    for p in root.rglob("*"):
        if p.is_file():
            with open(p, "rb") as f:
                while f.read(MB):
                    pass


def run_baseline(src: Path, out: Path, codec: str) -> float:
    out.unlink(missing_ok=True)
    if codec == "zstd":
        has_zstd_flag = subprocess.run(["tar", "--zstd", "--version"], capture_output=True).returncode == 0
        cmd = (["tar", "--zstd", "-cf", str(out), "-C", str(src), "."] if has_zstd_flag
               else ["sh", "-c", f'tar -cf - -C "{src}" . | zstd -q -o "{out}"'])
    else:
        cmd = ["tar", "-czf", str(out), "-C", str(src), "."]
    t0 = time.perf_counter()
    subprocess.run(cmd, check=True)
    return time.perf_counter() - t0


def run_verified_baseline(src: Path, out: Path) -> float:
    """tar --zstd plus what a backup also needs: the archive's sha256 and an fsync (ours does both)."""
    out.unlink(missing_ok=True)
    t0 = time.perf_counter()
    subprocess.run(["tar", "--zstd", "-cf", str(out), "-C", str(src), "."], check=True)
    subprocess.run(["sha256sum", str(out)], check=True, capture_output=True)
    subprocess.run(["sync", str(out)], check=True)
    return time.perf_counter() - t0


def run_ours(src: Path, store_root: Path, codec: str, n: int) -> dict:
    """backup_files in a child process: returns its own timing and peak RSS."""
    shutil.rmtree(store_root, ignore_errors=True)
    out = subprocess.run([sys.executable, __file__, "--worker", str(src), str(store_root), codec, str(n)],
                         check=True, capture_output=True, text=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def worker(src: str, store_root: str, codec: str, n: str) -> None:
    from datetime import datetime, timezone

    from backup_dr.core.artifacts.layout import BackupId
    from backup_dr.core.artifacts.writer import ArtifactWriter
    from backup_dr.core.files import backup_files
    from backup_dr.core.policy_model import FilesSource
    from backup_dr.core.stores.local import LocalStore

    store = LocalStore(store_root)
    bid = BackupId.new("bench", "tree", "files", datetime(2026, 1, 1, 0, 0, int(n), tzinfo=timezone.utc))
    t0 = time.perf_counter()
    manifest = backup_files(FilesSource("tree", src, compression=codec), ArtifactWriter(store, bid, source_type="files"))
    seconds = time.perf_counter() - t0
    print(json.dumps({"seconds": seconds, "size": manifest.total_size, "files": manifest.counts["files"],
                      "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)}))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="~50 MB tree (under a minute)")
    ap.add_argument("--size-mb", type=int, default=None, help="tree size (default 300, quick 50)")
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--worker", nargs=4, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.worker:
        worker(*args.worker)
        return
    size_mb = args.size_mb or (50 if args.quick else 300)
    tmp = Path(tempfile.mkdtemp(prefix="bench-files-"))
    try:
        src = tmp / "src"
        t0 = time.perf_counter()
        files, nbytes = make_tree(src, size_mb)
        print(f"generated {files} files, {nbytes / MB:.0f} MB in {time.perf_counter() - t0:.1f}s", flush=True)
        warm(src)
        result: dict = {"benchmark": "files_archive", "mb": round(nbytes / MB), "files": files}
        run = 0
        for codec in ("zstd", "gzip"):
            base_times, verified_times, ours = [], [], []
            for _ in range(args.rounds):
                base_times.append(run_baseline(src, tmp / f"baseline.{codec}", codec))
                if codec == "zstd":
                    verified_times.append(run_verified_baseline(src, tmp / "verified.zstd"))
                run += 1
                ours.append(run_ours(src, tmp / "store", codec, run))
            best = min(ours, key=lambda r: r["seconds"])
            base_s = min(base_times)
            assert best["files"] == files, f"archived {best['files']} files, generated {files}"
            base_size = (tmp / f"baseline.{codec}").stat().st_size
            print(f"{codec}: baseline {base_s:.2f}s {base_size / MB:.1f} MB | ours {best['seconds']:.2f}s "
                  f"{best['size'] / MB:.1f} MB | peak RSS {best['peak_rss_mb']} MB", flush=True)
            prefix = "" if codec == "zstd" else "gzip_"
            result.update({
                f"{prefix}baseline_s": round(base_s, 2), f"{prefix}ours_s": round(best["seconds"], 2),
                f"{prefix}ratio": round(best["seconds"] / base_s, 2),
                f"{prefix}baseline_mb_s": round(nbytes / MB / base_s, 1),
                f"{prefix}ours_mb_s": round(nbytes / MB / best["seconds"], 1),
                f"{prefix}size_ratio": round(best["size"] / base_size, 3),
                f"{prefix}peak_rss_mb": max(r["peak_rss_mb"] for r in ours),
            })
            if verified_times:
                result["verified_baseline_s"] = round(min(verified_times), 2)
                result["verified_ratio"] = round(best["seconds"] / min(verified_times), 2)
        result["baseline"] = "tar --zstd -cf / tar -czf (GNU tar 1.34, zstd 1.5, gzip -6); verified = + sha256sum + sync"
        print(json.dumps(result, ensure_ascii=False))
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
