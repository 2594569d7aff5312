"""Every other engine through an encrypted class, unchanged: files, git bundles, Redis RDB."""

from __future__ import annotations

import os
import stat
import subprocess
from pathlib import Path

from backup_dr.core.connections import conn_from_env
from backup_dr.core.crypto.stream import MAGIC
from backup_dr.core.files import backup_files, restore_files
from backup_dr.core.gitbundle import backup_git, restore_git
from backup_dr.core.policy_model import FilesSource, GitSource, RedisSource
from backup_dr.core.redis import backup_redis
from backup_dr.core.redis.verify import verify_rdb_restore
from backup_dr.devstack import sample_data


def tree(root: Path) -> dict[str, tuple]:
    out = {}
    for dirpath, dirnames, filenames in os.walk(root):
        for name in dirnames + filenames:
            p = Path(dirpath) / name
            st = p.lstat()
            content = p.read_bytes() if stat.S_ISREG(st.st_mode) else os.readlink(p) if stat.S_ISLNK(st.st_mode) else None
            out[p.relative_to(root).as_posix()] = (stat.S_IFMT(st.st_mode), stat.S_IMODE(st.st_mode), content)
    return out


def stored_bytes(store, manifest) -> bytes:
    return store.path(manifest.id.key(manifest.files[0].name)).read_bytes()


def test_files_backup_round_trip_through_an_encrypted_class(app_dir, keys, enc_writer, store, tmp_path):
    source = FilesSource("app_config", str(app_dir / "config"), compression="gzip")
    m = backup_files(source, enc_writer("app_config", "files", "files", backup_class="configuration"))
    entry = m.files[0]
    assert entry.encryption and entry.format == "tar" and stored_bytes(store, m).startswith(MAGIC)
    some_file = next(p for p in (app_dir / "config").rglob("*") if p.is_file() and p.stat().st_size > 20)
    assert some_file.read_bytes()[:20] not in stored_bytes(store, m)

    target = tmp_path / "restored" / "config"
    restore_files(store, m, target, workdir=tmp_path / "work")
    assert tree(target) == tree(app_dir / "config")


def git(repo: Path, *args: str) -> str:
    return subprocess.run(["git", *args], cwd=repo, check=True, capture_output=True, text=True).stdout.strip()


def test_git_bundle_is_verified_plain_then_stored_encrypted(app_dir, keys, enc_writer, store, tmp_path):
    repo = app_dir / "repo"
    m = backup_git(GitSource("app_repository", str(repo)),
                   enc_writer("app_repository", "bundle", "git", backup_class="application_code"))
    data = stored_bytes(store, m)
    assert data.startswith(MAGIC) and b"# v2 git bundle" not in data and m.files[0].plain_size > 0
    target = tmp_path / "restored" / "repo"
    restore_git(store, m, target, tmp_path / "work")
    assert git(target, "rev-parse", "HEAD") == git(repo, "rev-parse", "HEAD") == m.consistent_point["commit"]


def test_redis_rdb_is_checked_plain_then_encrypted_and_loads_in_a_scratch_server(redis_server, keys, enc_writer, store,
                                                                                  tmp_path):
    with redis_server.client() as r:
        sample_data.seed_redis(r, 3000)
        want = r.dbsize()
    m = backup_redis(conn_from_env("redis_cache"), RedisSource("redis_cache", "redis_cache"),
                     enc_writer("redis_cache", "rdb", "redis", backup_class="operational_data"))
    data = stored_bytes(store, m)
    assert data.startswith(MAGIC) and b"REDIS00" not in data and m.files[0].encryption["key_id"] == "k1"
    assert sum(m.counts.values()) == want  # counted by redis-check-rdb on the plaintext, before encryption
    (tmp_path / "work").mkdir()
    report = verify_rdb_restore(store, m, workdir=tmp_path / "work", sample=50)
    assert report["ok"] and sum(report["restored"].values()) == want
