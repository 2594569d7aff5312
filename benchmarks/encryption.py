"""Benchmark: client-side encryption (write + verified read) vs a plain copy of the same bytes.

What a backup pays for ``classes.<name>.encryption``:

* write: the same source bytes written into the local store through ArtifactWriter, plain
  (baseline: hash + fsync) vs encrypted (ours: AES-256-GCM chunks + both hashes + fsync);
* read: the stored file read back verified into a work directory, as a restore does, plain
  (baseline: copy + sha256, what ``fetch_verified`` does for a remote copy) vs encrypted
  (ours: ``fetch_verified`` decrypting: header, every chunk's tag, both sha256).

Source data is random (like a compressed dump). Baseline and ours alternate on the same
file in the same run; each keeps its best round. Ours also runs once in a child process
so its peak RSS is its own (the claim: memory stays flat whatever the size).

    .venv/bin/python benchmarks/encryption.py --quick     # 128 MB, well under a minute
    .venv/bin/python benchmarks/encryption.py             # 512 MB

The last line printed is one JSON object with the figures.
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "plugins"))

from backup_dr.core.artifacts.layout import BackupId  # noqa: E402
from backup_dr.core.artifacts.reader import fetch_verified  # noqa: E402
from backup_dr.core.artifacts.writer import ArtifactWriter  # noqa: E402
from backup_dr.core.connections import ConnInfo  # noqa: E402
from backup_dr.core.crypto.keys import BackupEncryption, Keyring  # noqa: E402
from backup_dr.core.stores.local import LocalStore  # noqa: E402

MB = 1024 * 1024
NAME = "data.archive.gz"
STAMP = datetime(2026, 11, 26, 8, 0, tzinfo=timezone.utc)


def make_source(path: Path, size_mb: int) -> None:
    block = os.urandom(MB)
    with open(path, "wb") as f:
        for i in range(size_mb):
            f.write(hashlib.sha256(i.to_bytes(4, "big")).digest() + block[32:])  # distinct random-looking MBs


def write_backup(store: LocalStore, src: Path, round_no: int, keyring: Keyring | None):
    bid = BackupId.new("critical_data", "mongodb", "full", STAMP + timedelta(minutes=round_no))
    writer = ArtifactWriter(store, bid, source_type="mongodb",
                            encryption=BackupEncryption.from_keyring(keyring) if keyring else None)
    writer.begin()
    with open(src, "rb") as f, writer.open_file(NAME, codec="gzip", format="mongodump-archive") as out:
        for block in iter(lambda: f.read(MB), b""):
            out.write(block)
    return writer.commit()


def read_plain(store: LocalStore, manifest, workdir: Path) -> Path:
    """The baseline read: copy the stored bytes to the work dir while hashing them, then compare."""
    dest = workdir / NAME
    h = hashlib.sha256()
    with open(store.path(manifest.id.key(NAME)), "rb") as src, open(dest, "wb") as out:
        for block in iter(lambda: src.read(MB), b""):
            h.update(block)
            out.write(block)
    assert h.hexdigest() == manifest.files[0].sha256
    return dest


def timed(fn, *args):
    t0 = time.perf_counter()
    result = fn(*args)
    return time.perf_counter() - t0, result


def one_round(root: Path, src: Path, i: int, keyring: Keyring | None) -> tuple[float, float]:
    store = LocalStore(root / f"store-{i}")
    work = root / f"work-{i}"
    work.mkdir()
    w, manifest = timed(write_backup, store, src, i, keyring)
    if keyring is None:
        r, path = timed(read_plain, store, manifest, work)
    else:
        r, path = timed(lambda: fetch_verified(store, manifest, NAME, work, keyring=keyring))
        assert manifest.files[0].plain_sha256 and path.stat().st_size == manifest.files[0].plain_size
    shutil.rmtree(store.root)
    shutil.rmtree(work)
    return w, r


def child(root: Path, src: Path, key_b64: str) -> None:
    keyring = Keyring.from_conn(ConnInfo("bench_key", password=key_b64))
    w, r = one_round(root, src, 99, keyring)
    print(json.dumps({"write_s": w, "read_s": r, "peak_rss_mb": peak_rss_mb()}))


def peak_rss_mb() -> float:
    """This process's own peak RSS (VmHWM: getrusage's ru_maxrss would include the forking parent's)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return round(int(line.split()[1]) / 1024, 1)
    return round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="128 MB (default 512 MB)")
    ap.add_argument("--size-mb", type=int, default=None)
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--child", nargs=3, metavar=("ROOT", "SRC", "KEYFILE"), help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        child(Path(args.child[0]), Path(args.child[1]), Path(args.child[2]).read_text().strip())
        return
    size_mb = args.size_mb or (128 if args.quick else 512)
    key_b64 = base64.b64encode(os.urandom(32)).decode()
    keyring = Keyring.from_conn(ConnInfo("bench_key", password=key_b64))
    root = Path(tempfile.mkdtemp(prefix="bench-encryption-"))
    try:
        src = root / "source.bin"
        make_source(src, size_mb)
        with open(src, "rb") as f:  # warm the page cache
            while f.read(MB):
                pass
        base_w, base_r, ours_w, ours_r = [], [], [], []
        for i in range(args.rounds):
            w, r = one_round(root, src, 2 * i, None)
            base_w.append(w)
            base_r.append(r)
            w, r = one_round(root, src, 2 * i + 1, keyring)
            ours_w.append(w)
            ours_r.append(r)
            print(f"round {i + 1}: plain write {base_w[-1]:.2f}s read {base_r[-1]:.2f}s | "
                  f"encrypted write {ours_w[-1]:.2f}s read {ours_r[-1]:.2f}s", flush=True)
        keyfile = root / "key"
        keyfile.write_text(key_b64)
        keyfile.chmod(0o600)
        out = subprocess.run([sys.executable, __file__, "--child", str(root), str(src), str(keyfile)],
                             capture_output=True, text=True, check=True)
        rss = json.loads(out.stdout.strip().splitlines()[-1])["peak_rss_mb"]
    finally:
        shutil.rmtree(root, ignore_errors=True)
    bw, br, ow, orr = min(base_w), min(base_r), min(ours_w), min(ours_r)
    result = {
        "benchmark": "encryption", "mb": size_mb, "rounds": args.rounds,
        "baseline_write_s": round(bw, 3), "ours_write_s": round(ow, 3), "write_ratio": round(ow / bw, 2),
        "baseline_read_s": round(br, 3), "ours_read_s": round(orr, 3), "read_ratio": round(orr / br, 2),
        "baseline_s": round(bw + br, 3), "ours_s": round(ow + orr, 3), "ratio": round((ow + orr) / (bw + br), 2),
        "encrypt_mb_s": round(size_mb / ow, 1), "decrypt_mb_s": round(size_mb / orr, 1), "peak_rss_mb": rss,
    }
    print(f"{size_mb} MB: write plain {bw:.2f}s vs encrypted {ow:.2f}s ({result['write_ratio']}x); "
          f"read plain {br:.2f}s vs decrypted {orr:.2f}s ({result['read_ratio']}x); peak RSS {rss} MB", flush=True)
    print(json.dumps(result))


if __name__ == "__main__":
    main()
