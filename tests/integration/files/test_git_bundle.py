"""Git bundles of the deployed commit: round trip, deploy metadata, clean git environment, bad input."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest

from backup_dr.core.errors import BackupDRError, IntegrityError, NotFoundError, RestoreRefused
from backup_dr.core.gitbundle import backup_git, git_env, restore_git
from backup_dr.core.policy_model import GitSource

DIGEST = "sha256:" + "3f" * 32
IMAGE = "registry.example.kr/korea-public-data-api:1.0.0"


def git(repo: Path, *args: str) -> str:
    env = {**os.environ, "GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@example", "GIT_COMMITTER_NAME": "t",
           "GIT_COMMITTER_EMAIL": "t@example"}
    return subprocess.run(["git", *args], cwd=repo, env=env, check=True, capture_output=True, text=True).stdout.strip()


@pytest.fixture
def repo(app_dir) -> Path:
    """The sample repo with a second commit, an annotated release tag on it, and a lightweight tag."""
    path = app_dir / "repo"
    (path / "app.py").write_text("print('korea public data api v1.1')\n")
    git(path, "commit", "-qam", "release 1.1.0")
    git(path, "tag", "-a", "v1.1.0", "-m", "release 1.1.0")
    return path


@pytest.fixture
def bundle_writer(new_writer):
    return lambda: new_writer("app_repository", kind="bundle", source_type="git")


def test_bundle_round_trip_keeps_commit_tags_and_deploy_metadata(repo, bundle_writer, store, tmp_path):
    head = git(repo, "rev-parse", "HEAD")
    manifest = backup_git(GitSource("app_repository", str(repo)), bundle_writer(), image_ref=IMAGE, image_digest=DIGEST)

    on_disk = json.loads(store.get_bytes(manifest.id.manifest_key))
    assert on_disk["details"]["image_ref"] == IMAGE and on_disk["details"]["image_digest"] == DIGEST
    assert on_disk["details"]["commit"] == head and on_disk["consistent_point"] == {"commit": head}
    assert on_disk["files"][0]["format"] == "git-bundle" and manifest.kind == "bundle"
    assert manifest.counts["commits"] == 2
    bundle = store.path(manifest.id.key("app_repository.bundle"))
    subprocess.run(["git", "bundle", "verify", str(bundle)], cwd=repo, check=True, capture_output=True)  # stock git reads it

    target = tmp_path / "restored" / "repo"
    result = restore_git(store, manifest, target, tmp_path / "work")

    assert git(target, "rev-parse", "HEAD") == head == result.commit
    assert git(target, "rev-parse", "v1.1.0^{commit}") == head
    assert git(target, "cat-file", "-t", "v1.1.0") == "tag"  # annotated tag object kept
    assert git(target, "symbolic-ref", "HEAD") == "refs/heads/main"
    assert git(target, "rev-list", "--count", "HEAD") == "2"
    assert (target / "app.py").read_bytes() == (repo / "app.py").read_bytes()
    assert git(target, "status", "--porcelain") == ""
    assert git(target, "remote") == ""  # no remote pointing at a temporary bundle


def test_bundle_of_a_commit_no_branch_points_at_any_more(repo, bundle_writer, store, tmp_path):
    deployed = git(repo, "rev-parse", "v1.0.0^{commit}")  # the branch has moved on since this deploy
    manifest = backup_git(GitSource("app_repository", str(repo)), bundle_writer(), ref=deployed)
    assert set(manifest.details["refs"]) == {"HEAD", "refs/tags/v1.0.0"}

    target = tmp_path / "restored"
    restore_git(store, manifest, target, tmp_path / "work")
    assert git(target, "rev-parse", "HEAD") == deployed
    assert git(target, "rev-list", "--count", "HEAD") == "1"
    later = git(repo, "rev-parse", "HEAD")
    assert subprocess.run(["git", "cat-file", "-e", later], cwd=target).returncode != 0  # only that ref's history


def test_git_gets_a_clean_environment(repo, bundle_writer, monkeypatch):
    main = git(repo, "rev-parse", "main")
    monkeypatch.setenv("GIT_DIR", "/nonexistent/.git")  # inherited, this would point git elsewhere
    monkeypatch.setenv("AIRFLOW_CONN_SECRET_THING", '{"password": "hunter2"}')
    manifest = backup_git(GitSource("app_repository", str(repo)), bundle_writer(), ref="main")
    assert manifest.details["commit"] == main
    env = git_env("/tmp/x")
    assert "GIT_DIR" not in env and not any("hunter2" in v for v in env.values())
    assert env["GIT_CONFIG_GLOBAL"] == os.devnull


def test_missing_repository_names_the_path_and_field(tmp_path, bundle_writer, local_store_root):
    with pytest.raises(NotFoundError) as err:
        backup_git(GitSource("app_repository", str(tmp_path / "nowhere")), bundle_writer())
    assert str(tmp_path / "nowhere") in str(err.value) and "sources.app_repository.path" in str(err.value)

    plain = tmp_path / "plain"
    plain.mkdir()
    with pytest.raises(BackupDRError) as err:
        backup_git(GitSource("app_repository", str(plain)), bundle_writer())
    assert "is not a git repository (sources.app_repository.path)" in str(err.value)
    assert list(local_store_root.iterdir()) == []


@pytest.mark.parametrize("kwargs,message", [
    ({"ref": "no-such-branch"}, "ref 'no-such-branch' does not name a commit"),
    ({"ref": "--all"}, "git ref '--all' is not a usable ref"),
    ({"image_digest": "latest"}, "image digest 'latest' is not an OCI digest"),
    ({"image_ref": "api:1 ; rm -rf /"}, "is not valid"),
    ({"image_ref": "api@sha256:" + "00" * 32, "image_digest": DIGEST}, "names a different digest"),
])
def test_bad_deploy_input_is_a_clear_error(kwargs, message, repo, bundle_writer, local_store_root):
    with pytest.raises(BackupDRError) as err:
        backup_git(GitSource("app_repository", str(repo)), bundle_writer(), **kwargs)
    assert message in str(err.value)
    assert not [p for p in local_store_root.rglob("*") if p.is_file()]


def test_corrupt_bundle_is_refused_before_anything_is_created(repo, bundle_writer, store, tmp_path):
    manifest = backup_git(GitSource("app_repository", str(repo)), bundle_writer())
    path = store.path(manifest.id.key("app_repository.bundle"))
    data = bytearray(path.read_bytes())
    data[-30] ^= 0xFF
    path.write_bytes(bytes(data))
    target = tmp_path / "restored"
    with pytest.raises(IntegrityError):
        restore_git(store, manifest, target, tmp_path / "work")
    assert not target.exists() and [p.name for p in tmp_path.iterdir() if p.name.startswith(".restored")] == []


def test_restore_git_refuses_a_non_empty_target(repo, bundle_writer, store, tmp_path):
    manifest = backup_git(GitSource("app_repository", str(repo)), bundle_writer())
    target = tmp_path / "busy"
    target.mkdir()
    (target / "keep.txt").write_text("mine\n")
    with pytest.raises(RestoreRefused):
        restore_git(store, manifest, target, tmp_path / "work")
    assert [p.name for p in target.iterdir()] == ["keep.txt"]
