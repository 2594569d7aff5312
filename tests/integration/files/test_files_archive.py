"""File archives: what goes in, exactly; stock tar can read them; changing files never corrupt them."""

from __future__ import annotations

import io
import os
import socket
import subprocess
import tarfile
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
import zstandard

from backup_dr.core.errors import NotFoundError, SourceError
from backup_dr.core.files import archive as archive_mod
from backup_dr.core.files import backup_files, restore_files
from backup_dr.core.policy_model import FilesSource


def _tar_names(path: Path, codec: str) -> list[str]:
    flag = "--zstd" if codec == "zstd" else "-z"
    out = subprocess.run(["tar", flag, "-tf", str(path)], check=True, capture_output=True)
    return [n.rstrip("/") for n in out.stdout.decode("utf-8").splitlines()]


def _enrich_config(config: Path) -> None:
    """Modes, an empty dir, an in-tree symlink and nanosecond mtimes the round trip must keep."""
    script = config / "bin" / "reload.sh"
    script.parent.mkdir()
    script.write_text("#!/bin/sh\nnginx -s reload\n")
    script.chmod(0o750)
    secret = config / "secrets.env"
    secret.write_text("API_KEY_FILE=/run/secrets/api\n")
    secret.chmod(0o440)
    (config / "empty.d").mkdir()
    (config / "current.yaml").symlink_to("app.yaml")
    for i, p in enumerate(sorted(config.rglob("*"))):
        if not p.is_symlink():
            ns = 1_760_000_000_123_456_789 + i * 1_000_000_007
            os.utime(p, ns=(ns, ns))
    config.chmod(0o750)
    os.utime(config, ns=(1_760_000_000_987_654_321,) * 2)


def test_config_archive_round_trips_byte_identically(app_dir, store, new_writer, snapshot_tree, tmp_path):
    config = app_dir / "config"
    _enrich_config(config)
    before = snapshot_tree(config)

    manifest = backup_files(FilesSource("app_config", str(config)), new_writer("app_config"))
    result = restore_files(store, manifest, tmp_path / "restored", workdir=tmp_path / "work")

    assert snapshot_tree(tmp_path / "restored") == before
    files = [k for k, v in before.items() if v[0] == "file"]
    assert manifest.counts["files"] == len(files) == result.files
    assert manifest.counts["bytes"] == sum(len(before[k][3]) for k in files) == result.bytes
    assert manifest.counts["symlinks"] == 1
    assert manifest.details["top_level"] == sorted(os.listdir(config))
    assert manifest.files[0].name == "app_config.tar.zst"
    assert (manifest.files[0].codec, manifest.files[0].format, manifest.kind) == ("zstd", "tar", "files")


def test_logs_archive_holds_exactly_the_logs_of_the_last_30_days(app_dir, store, new_writer, stored_archive):
    logs = app_dir / "logs"
    now = datetime.now(timezone.utc)
    cutoff = (now - timedelta(days=30)).timestamp()
    expected = sorted(p.name for p in logs.iterdir() if p.name.endswith(".log") and p.stat().st_mtime > cutoff)
    older = [p.name for p in logs.iterdir() if p.name.endswith(".log") and p.stat().st_mtime <= cutoff]
    assert expected and older and (logs / "debug.trace").exists()  # the sample really has all three kinds

    source = FilesSource("app_logs", str(logs), include=("*.log",), modified_within=timedelta(days=30))
    manifest = backup_files(source, new_writer("app_logs"), now=now)

    assert _tar_names(stored_archive(manifest), "zstd") == expected
    assert manifest.counts["files"] == len(expected)
    assert manifest.details["modified_within"] and manifest.details["include"] == ["*.log"]


@pytest.mark.parametrize("codec", ["zstd", "gzip"])
def test_stock_tar_extracts_our_archives(codec, app_dir, new_writer, stored_archive, snapshot_tree, tmp_path):
    uploads = app_dir / "uploads"
    (uploads / "latest").symlink_to("2026/11")
    manifest = backup_files(FilesSource("app_uploads", str(uploads), compression=codec), new_writer("app_uploads"))
    path = stored_archive(manifest)
    assert path.name == f"app_uploads.tar.{'zst' if codec == 'zstd' else 'gz'}"

    out = tmp_path / "by-stock-tar"
    out.mkdir()
    flag = "--zstd" if codec == "zstd" else "-z"
    subprocess.run(["tar", flag, "-xf", str(path), "-C", str(out)], check=True, capture_output=True)

    assert snapshot_tree(out, with_root=False) == snapshot_tree(uploads, with_root=False)
    assert any("공고문" in k for k in snapshot_tree(out, with_root=False))


def test_same_tree_gives_the_same_archive_bytes(app_dir, new_writer):
    for codec in ("zstd", "gzip"):
        source = FilesSource("app_uploads", str(app_dir / "uploads"), compression=codec)
        first = backup_files(source, new_writer("app_uploads"))
        second = backup_files(source, new_writer("app_uploads"))
        assert first.backup_id != second.backup_id
        assert first.files[0].sha256 == second.files[0].sha256


def test_special_files_and_escaping_symlinks_are_skipped_with_reasons(tmp_path, new_writer, stored_archive):
    src = tmp_path / "src"
    (src / "sub").mkdir(parents=True)
    (src / "sub" / "data.txt").write_text("kept\n")
    (src / "alias").symlink_to("sub")  # in-tree directory link: stored as a link, not entered
    (src / "passwd").symlink_to("/etc/passwd")
    (src / "up").symlink_to("../outside")
    os.mkfifo(src / "pipe")
    sock = socket.socket(socket.AF_UNIX)
    sock.bind(str(src / "app.sock"))
    try:
        manifest = backup_files(FilesSource("odd", str(src)), new_writer("odd"))
    finally:
        sock.close()

    reasons = {s["path"]: s["reason"] for s in manifest.details["skipped"]}
    assert set(reasons) == {"passwd", "up", "pipe", "app.sock"}
    assert "outside the source directory" in reasons["passwd"] and "outside" in reasons["up"]
    assert reasons["pipe"].startswith("named pipe") and reasons["app.sock"].startswith("socket")
    assert manifest.counts["skipped"] == 4
    with _open_zstd_tar(stored_archive(manifest)) as tar:
        members = {m.name: m for m in tar}
    assert sorted(members) == ["alias", "sub", "sub/data.txt"]
    assert members["alias"].issym() and members["alias"].linkname == "sub"


def _open_zstd_tar(path: Path) -> tarfile.TarFile:
    with open(path, "rb") as f:
        data = zstandard.ZstdDecompressor().stream_reader(f).read()
    return tarfile.open(fileobj=io.BytesIO(data), mode="r:")


def test_exclude_globs_prune_directories_and_files(tmp_path, new_writer, stored_archive):
    src = tmp_path / "src"
    (src / "cache" / "deep").mkdir(parents=True)
    (src / "cache" / "deep" / "blob.bin").write_bytes(b"x" * 100)
    (src / "keep").mkdir()
    (src / "keep" / "a.txt").write_text("a")
    (src / "keep" / "b.tmp").write_text("b")
    manifest = backup_files(FilesSource("ex", str(src), exclude=("cache", "*.tmp")), new_writer("ex"))
    assert _tar_names(stored_archive(manifest), "zstd") == ["keep", "keep/a.txt"]


def test_missing_source_directory_names_the_path_and_the_policy_field(tmp_path, new_writer, local_store_root):
    missing = tmp_path / "no-such-dir"
    with pytest.raises(NotFoundError) as err:
        backup_files(FilesSource("app_config", str(missing)), new_writer("app_config"))
    assert str(missing) in str(err.value) and "sources.app_config.path" in str(err.value)
    assert list(local_store_root.iterdir()) == []  # nothing started, nothing left behind


def test_retry_after_success_returns_the_existing_backup(app_dir, new_writer, stored_archive):
    source = FilesSource("app_config", str(app_dir / "config"))
    first = backup_files(source, new_writer("app_config", stamp=datetime(2026, 1, 1, tzinfo=timezone.utc)))
    mtime = stored_archive(first).stat().st_mtime_ns
    (app_dir / "config" / "new.yaml").write_text("changed after the backup\n")
    again = backup_files(source, new_writer("app_config", stamp=datetime(2026, 1, 1, tzinfo=timezone.utc)))
    assert again == first and stored_archive(first).stat().st_mtime_ns == mtime


# ---------------------------------------------------------------- files changing under the archiver


def _inject(monkeypatch, name: str, victim: Path, action) -> list[int]:
    """Wrap archive._open/_read so ``action`` runs (on the real file) the first time ``victim`` is touched."""
    real = getattr(archive_mod, name)
    fired: list[int] = []
    victim_ino = victim.stat().st_ino

    def wrapper(arg, *rest):
        hit = (str(arg) == str(victim)) if name == "_open" else (os.fstat(arg).st_ino == victim_ino)
        if hit and not fired:
            fired.append(1)
            action()
        return real(arg, *rest)

    monkeypatch.setattr(archive_mod, name, wrapper)
    return fired


def test_file_vanishing_before_it_is_read_is_skipped(tmp_path, new_writer, stored_archive, monkeypatch):
    src = tmp_path / "src"
    src.mkdir()
    (src / "a.log").write_text("a\n")
    (src / "b.log").write_text("b\n")
    fired = _inject(monkeypatch, "_open", src / "a.log", lambda: (src / "a.log").unlink())
    manifest = backup_files(FilesSource("v", str(src)), new_writer("v"))
    assert fired
    assert manifest.details["skipped"] == [{"path": "a.log", "reason": "vanished before it could be read"}]
    assert _tar_names(stored_archive(manifest), "zstd") == ["b.log"]


def test_small_file_rewritten_while_read_is_read_again(tmp_path, new_writer, store, monkeypatch):
    src = tmp_path / "src"
    src.mkdir()
    victim = src / "app.yaml"
    victim.write_text("version: 1\n" * 50)
    fired = _inject(monkeypatch, "_read", victim, lambda: victim.write_text("version: 2\n"))
    manifest = backup_files(FilesSource("rw", str(src)), new_writer("rw"))
    assert fired
    restore_files(store, manifest, tmp_path / "out", workdir=tmp_path / "work")
    assert (tmp_path / "out" / "app.yaml").read_text() == "version: 2\n"


def test_large_file_shrinking_mid_read_discards_the_archive(tmp_path, new_writer, local_store_root, monkeypatch):
    monkeypatch.setattr(archive_mod, "SMALL_FILE", 64 * 1024)
    monkeypatch.setattr(archive_mod, "CHUNK", 16 * 1024)
    src = tmp_path / "src"
    src.mkdir()
    victim = src / "big.log"
    victim.write_bytes(os.urandom(256 * 1024))
    fired = _inject(monkeypatch, "_read", victim, lambda: os.truncate(victim, 10_000))
    writer = new_writer("shrink")
    with pytest.raises(SourceError) as err:
        backup_files(FilesSource("shrink", str(src)), writer)
    assert fired and err.value.retryable
    assert "shrank from 262144 to 10000 bytes" in str(err.value)
    assert not writer.directory.exists()  # the partial archive is gone; no manifest anywhere
    assert not [p for p in local_store_root.rglob("*") if p.is_file()]


def test_large_file_growing_mid_read_stores_its_first_bytes(tmp_path, new_writer, store, monkeypatch):
    monkeypatch.setattr(archive_mod, "SMALL_FILE", 64 * 1024)
    monkeypatch.setattr(archive_mod, "CHUNK", 16 * 1024)
    src = tmp_path / "src"
    src.mkdir()
    victim = src / "active.log"
    original = os.urandom(200 * 1024)
    victim.write_bytes(original)

    def append():
        with open(victim, "ab") as f:
            f.write(b"new line\n" * 1000)

    fired = _inject(monkeypatch, "_read", victim, append)
    manifest = backup_files(FilesSource("grow", str(src)), new_writer("grow"))
    assert fired
    assert [c["path"] for c in manifest.details["changed_while_read"]] == ["active.log"]
    restore_files(store, manifest, tmp_path / "out", workdir=tmp_path / "work")
    assert (tmp_path / "out" / "active.log").read_bytes() == original


def test_archiving_streams_large_files_in_bounded_memory(tmp_path, new_writer, store):
    import tracemalloc

    src = tmp_path / "src"
    src.mkdir()
    big = os.urandom(32 * 1024 * 1024)
    (src / "upload.bin").write_bytes(big)
    tracemalloc.start()
    try:
        manifest = backup_files(FilesSource("big", str(src)), new_writer("big"))
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 8 * 1024 * 1024, f"Python heap peaked at {peak / 2**20:.1f} MiB for a 32 MiB file"
    restore_files(store, manifest, tmp_path / "out", workdir=tmp_path / "work")
    assert (tmp_path / "out" / "upload.bin").read_bytes() == big


def test_odd_names_long_paths_and_old_mtimes_round_trip(tmp_path, new_writer, store, snapshot_tree):
    src = tmp_path / "src"
    src.mkdir()
    os.mkdir(os.fsencode(src) + b"/caf\xe9")  # not UTF-8: a legacy Latin-1 name
    Path(os.fsdecode(os.fsencode(src) + b"/caf\xe9/men\xfc.txt")).write_bytes(b"latin-1 name\n")
    deep = src / ("a" * 60) / ("b" * 60) / ("c" * 60)
    deep.mkdir(parents=True)
    (deep / ("long-" + "x" * 120 + ".txt")).write_text("deep\n")
    (src / "1969.txt").write_text("before the epoch\n")
    os.utime(src / "1969.txt", ns=(-1_250_000_000, -1_250_000_000))
    manifest = backup_files(FilesSource("odd", str(src)), new_writer("odd"))
    assert "caf\\xe9" in manifest.details["top_level"]  # readable in the JSON manifest
    restore_files(store, manifest, tmp_path / "out", workdir=tmp_path / "work")
    assert snapshot_tree(tmp_path / "out") == snapshot_tree(src)
