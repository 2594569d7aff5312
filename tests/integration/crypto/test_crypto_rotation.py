"""Key rotation: back up with k1, rotate to k2, back up with k2; both restore with {k1, k2};
dropping k1 too early is caught by ``keys needed`` and by the restore, clearly."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from backup_dr.core.crypto.keys import EncryptionKeyError
from backup_dr.core.crypto.rotation import keys_needed
from backup_dr.core.files import backup_files, restore_files
from backup_dr.core.policy_model import FilesSource


def tree(root: Path) -> dict[str, bytes | None]:
    return {p.relative_to(root).as_posix(): (p.read_bytes() if p.is_file() else None) for p in sorted(root.rglob("*"))}


@pytest.fixture
def rotated(app_dir, keys, enc_writer, store):
    """Backup 1 with keyring {k1} (active k1), then rotation to {k1, k2} (active k2) and backup 2."""
    source = FilesSource("app_config", str(app_dir / "config"))
    keys.use("k1", "k1")
    first = backup_files(source, enc_writer("app_config", "files", "files", backup_class="configuration"))
    (app_dir / "config" / "added-after-rotation.yaml").write_text("rotated: true\n")
    keys.use("k2", "k1", "k2")
    second = backup_files(source, enc_writer("app_config", "files", "files", backup_class="configuration"))
    return first, second


def test_old_and_new_backups_restore_with_the_keyring(rotated, app_dir, store, tmp_path):
    first, second = rotated
    assert first.files[0].encryption["key_id"] == "k1" and second.files[0].encryption["key_id"] == "k2"
    restore_files(store, second, tmp_path / "r2", workdir=tmp_path / "w")
    assert tree(tmp_path / "r2") == tree(app_dir / "config")
    restore_files(store, first, tmp_path / "r1", workdir=tmp_path / "w")
    assert "added-after-rotation.yaml" not in tree(tmp_path / "r1") and len(tree(tmp_path / "r1")) == len(tree(app_dir / "config")) - 1


def test_keys_needed_lists_both_keys_until_their_backups_expire(rotated, store, keys):
    first, second = rotated
    report = keys_needed({"local": store}, check_connections=["backup_encryption_key"])
    assert report["backups"] == 2 and report["encrypted_backups"] == 2 and report["active"] == {"backup_encryption_key": "k2"}
    k1, k2 = report["keys"]
    assert (k1["key_id"], k1["backups"], k1["oldest_backup"], k1["in_keyring"]) == ("k1", 1, first.backup_id, True)
    assert (k2["key_id"], k2["backups"], k2["newest_backup"], k2["in_keyring"]) == ("k2", 1, second.backup_id, True)
    assert k1["keep_until"] == first.retention["expires_at"] and k2["keep_until"] == second.retention["expires_at"]

    keys.use("k2", "k2")  # k1 dropped while a backup still needs it
    report = keys_needed({"local": store}, check_connections=["backup_encryption_key"])
    assert [(k["key_id"], k["in_keyring"]) for k in report["keys"]] == [("k1", False), ("k2", True)]


def test_restoring_the_k1_backup_with_only_k2_fails_clearly_and_restores_nothing(rotated, store, keys, tmp_path):
    first, second = rotated
    keys.use("k2", "k2")
    target = tmp_path / "r1"
    with pytest.raises(EncryptionKeyError) as err:
        restore_files(store, first, target, workdir=tmp_path / "w")
    message = str(err.value)
    assert "master key 'k1'" in message and "connection 'backup_encryption_key' does not hold (it has: k2)" in message
    assert "keys needed" in message and all(t not in message for t in keys.texts)
    assert not target.exists()
    restore_files(store, second, tmp_path / "r2", workdir=tmp_path / "w")  # the new one still restores


def test_cli_keys_needed_and_generate(rotated, store, keys, run_cli, key_var):
    env = {"BACKUP_DR_LOCAL_PATH": str(store.root), **key_var()}
    out = run_cli("keys", "needed", "--store", "local", "--json", env=env)
    assert out.returncode == 0, out.stderr
    report = json.loads(out.stdout)
    assert [(k["key_id"], k["in_keyring"]) for k in report["keys"]] == [("k1", True), ("k2", True)]

    keys.use("k2", "k2")
    out = run_cli("keys", "needed", "--store", "local", env={**env, **key_var()})
    assert out.returncode == 1
    assert "MISSING" in out.stdout and "k1" in out.stdout and "cannot be restored" in out.stdout
    assert all(t not in out.stdout + out.stderr for t in keys.texts)

    out = run_cli("keys", "generate", "--id", "k3", "--keyring-conn", "backup_encryption_key", env={**env, **key_var()})
    assert out.returncode == 0, out.stderr
    new = json.loads(out.stdout)["extra"]
    assert new["active"] == "k3" and set(new["keys"]) == {"k2", "k3"} and new["keys"]["k2"] == keys.texts[1]
    out = run_cli("keys", "generate", "--id", "k2", "--keyring-conn", "backup_encryption_key", env={**env, **key_var()})
    assert out.returncode == 2 and "already in connection" in out.stderr
