"""Fixtures for file-archive and git-bundle tests: a local store, writers, tree snapshots.

Everything here is real: files on disk, the system ``tar`` and ``git``. The root
conftest's ``app_dir`` (config/, logs/, uploads/ with Korean names, repo/) and
``local_store_root`` are reused.
"""

from __future__ import annotations

import io
import itertools
import os
import stat
import tarfile
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
import zstandard

from backup_dr.core.artifacts.layout import BackupId
from backup_dr.core.artifacts.writer import ArtifactWriter
from backup_dr.core.stores.local import LocalStore

STAMP0 = datetime(2026, 11, 26, 8, 0, tzinfo=timezone.utc)


@pytest.fixture
def store(local_store_root) -> LocalStore:
    return LocalStore(local_store_root)


@pytest.fixture
def new_writer(store):
    """``new_writer(source, kind="files", source_type="files")``: a writer with a fresh backup id."""
    counter = itertools.count()

    def make(source: str, kind: str = "files", source_type: str = "files", stamp: datetime | None = None) -> ArtifactWriter:
        when = stamp or STAMP0 + timedelta(seconds=next(counter))
        return ArtifactWriter(store, BackupId.new("configuration", source, kind, when), source_type=source_type)

    return make


def snapshot(root: Path, *, with_root: bool = True) -> dict[str, tuple]:
    """Every entry under ``root``: (kind, permission bits, mtime_ns, content bytes or link target)."""
    out: dict[str, tuple] = {}
    if with_root:
        st = root.stat()
        out["."] = ("dir", stat.S_IMODE(st.st_mode), st.st_mtime_ns, None)
    for dirpath, dirnames, filenames in os.walk(root):
        for name in sorted(dirnames + filenames):
            p = Path(dirpath) / name
            rel = p.relative_to(root).as_posix()
            st = p.lstat()
            if stat.S_ISLNK(st.st_mode):
                out[rel] = ("symlink", None, None, os.readlink(p))
            elif stat.S_ISDIR(st.st_mode):
                out[rel] = ("dir", stat.S_IMODE(st.st_mode), st.st_mtime_ns, None)
            else:
                out[rel] = ("file", stat.S_IMODE(st.st_mode), st.st_mtime_ns, p.read_bytes())
    return out


@pytest.fixture
def snapshot_tree():
    return snapshot


def archive_path(store: LocalStore, manifest) -> Path:
    return store.path(manifest.id.key(manifest.files[0].name))


def commit_raw_tar(writer: ArtifactWriter, members: list[tuple[tarfile.TarInfo, bytes | None]], name: str = "evil.tar.zst"):
    """Commit a hand-built tar (zstd) as a backup whose manifest matches its bytes exactly."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for info, data in members:
            tar.addfile(info, io.BytesIO(data) if data is not None else None)
    writer.begin()
    with writer.open_file(name, codec="zstd", format="tar") as out:
        out.write(zstandard.ZstdCompressor().compress(buf.getvalue()))
    return writer.commit()


def tar_member(name: str, *, data: bytes | None = None, kind: bytes = tarfile.REGTYPE, linkname: str = "") -> tuple[tarfile.TarInfo, bytes | None]:
    info = tarfile.TarInfo(name)
    info.type = kind
    info.mode = 0o755 if kind == tarfile.DIRTYPE else 0o644
    info.linkname = linkname
    info.mtime = 1_700_000_000
    if data is not None:
        info.size = len(data)
    return info, data


@pytest.fixture
def stored_archive(store):
    """``stored_archive(manifest)``: path of the backup's data file in the local store."""
    return lambda manifest: archive_path(store, manifest)


@pytest.fixture
def hand_built_backup():
    """``hand_built_backup(writer, members)``: commit an arbitrary tar with a matching manifest."""
    return commit_raw_tar


@pytest.fixture
def member():
    """``member(name, data=..., kind=tarfile.SYMTYPE, linkname=...)``: one hand-built tar entry."""
    return tar_member
