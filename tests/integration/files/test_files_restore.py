"""Files restore: verified bytes only, safe extraction, and a target that is never half-restored."""

from __future__ import annotations

import os
import tarfile
from pathlib import Path

import pytest

from backup_dr.core.errors import IntegrityError, RestoreError, RestoreRefused
from backup_dr.core.files import UnsafeArchiveError, backup_files, restore_files
from backup_dr.core.files import restore as restore_mod
from backup_dr.core.policy_model import FilesSource


@pytest.fixture
def config_backup(app_dir, new_writer):
    return backup_files(FilesSource("app_config", str(app_dir / "config")), new_writer("app_config"))


@pytest.fixture
def old_target(tmp_path):
    """A live directory with content of its own (what a restore may overwrite)."""
    target = tmp_path / "live" / "config"
    (target / "nginx").mkdir(parents=True)
    (target / "app.yaml").write_text("the running config, not in the backup\n")
    (target / "nginx" / "api.conf").write_text("server { listen 8080; }\n")
    (target / "local-only.txt").write_text("only here\n")
    return target


def _siblings(target: Path) -> list[str]:
    return sorted(p.name for p in target.parent.iterdir())


def test_bit_flipped_archive_is_refused_and_target_untouched(config_backup, store, stored_archive, old_target,
                                                             snapshot_tree, tmp_path):
    path = stored_archive(config_backup)
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0x01
    path.write_bytes(bytes(data))
    before = snapshot_tree(old_target)

    with pytest.raises(IntegrityError) as err:
        restore_files(store, config_backup, old_target, workdir=tmp_path / "work", overwrite=True)

    assert "does not match its manifest" in str(err.value)
    assert snapshot_tree(old_target) == before
    assert _siblings(old_target) == ["config"]


def test_non_empty_target_is_refused_without_overwrite(config_backup, store, old_target, snapshot_tree, tmp_path):
    before = snapshot_tree(old_target)
    with pytest.raises(RestoreRefused) as err:
        restore_files(store, config_backup, old_target, workdir=tmp_path / "work")
    assert f"restore target {old_target} is not empty" in str(err.value) and "overwrite" in str(err.value)
    assert snapshot_tree(old_target) == before and _siblings(old_target) == ["config"]


def test_overwrite_swaps_in_the_backup_and_keeps_a_safety_copy(config_backup, app_dir, store, old_target,
                                                              snapshot_tree, tmp_path):
    before = snapshot_tree(old_target)
    result = restore_files(store, config_backup, old_target, workdir=tmp_path / "work", overwrite=True)

    assert snapshot_tree(old_target) == snapshot_tree(app_dir / "config")
    assert result.safety_copy and Path(result.safety_copy).parent == old_target.parent
    assert Path(result.safety_copy).name.startswith("config.pre-restore-")
    assert snapshot_tree(Path(result.safety_copy)) == before
    assert _siblings(old_target) == sorted(["config", Path(result.safety_copy).name])


@pytest.mark.parametrize("target_state", ["absent", "empty"])
def test_restore_into_absent_or_empty_target(target_state, config_backup, app_dir, store, snapshot_tree, tmp_path):
    target = tmp_path / "new" / "config"
    if target_state == "empty":
        target.mkdir(parents=True)
    result = restore_files(store, config_backup, target, workdir=tmp_path / "work")
    assert snapshot_tree(target) == snapshot_tree(app_dir / "config")
    assert result.safety_copy is None and result.files == config_backup.counts["files"] == 3


def test_failure_mid_extraction_leaves_the_old_content_in_place(new_writer, hand_built_backup, member, store,
                                                                old_target, snapshot_tree, tmp_path):
    # Valid entries first (they get extracted), then one that must stop the restore.
    manifest = hand_built_backup(new_writer("app_config"), [
        member("app.yaml", data=b"from the backup\n"),
        member("nginx", kind=tarfile.DIRTYPE),
        member("nginx/api.conf", data=b"server {}\n"),
        member("../escaped.txt", data=b"should never exist\n"),
    ])
    before = snapshot_tree(old_target)

    with pytest.raises(UnsafeArchiveError) as err:
        restore_files(store, manifest, old_target, workdir=tmp_path / "work", overwrite=True)

    assert "'../escaped.txt' is unsafe: path contains '..'" in str(err.value)
    assert snapshot_tree(old_target) == before
    assert _siblings(old_target) == ["config"]  # staging directory removed, no safety copy needed
    assert not list(tmp_path.rglob("escaped.txt"))


def test_failure_at_the_final_swap_puts_the_old_content_back(config_backup, store, old_target, snapshot_tree,
                                                             tmp_path, monkeypatch):
    before = snapshot_tree(old_target)
    real_rename = os.rename

    def rename(src, dst):  # fault injection: the disk refuses exactly the staging -> target move
        if Path(src).name.startswith(".config.restore-"):
            raise OSError(5, "Input/output error (injected)")
        return real_rename(src, dst)

    monkeypatch.setattr(restore_mod.os, "rename", rename)
    with pytest.raises(RestoreError) as err:
        restore_files(store, config_backup, old_target, workdir=tmp_path / "work", overwrite=True)

    assert "previous content was put back" in str(err.value)
    assert snapshot_tree(old_target) == before
    assert _siblings(old_target) == ["config"]


def _evil(member, case: str):
    if case == "dotdot":
        return [member("ok.txt", data=b"x"), member("sub/../../evil.txt", data=b"pwned")]
    if case == "absolute":
        return [member("/tmp/backup-dr-evil-abs.txt", data=b"pwned")]
    if case == "symlink_absolute":
        return [member("etc", kind=tarfile.SYMTYPE, linkname="/etc")]
    if case == "symlink_escape":
        return [member("d", kind=tarfile.DIRTYPE), member("d/up", kind=tarfile.SYMTYPE, linkname="../../..")]
    if case == "through_symlink":
        return [member("sub", kind=tarfile.DIRTYPE), member("ln", kind=tarfile.SYMTYPE, linkname="sub"),
                member("ln/evil.txt", data=b"pwned")]
    if case == "hardlink":
        return [member("passwd", kind=tarfile.LNKTYPE, linkname="/etc/passwd")]
    if case == "device":
        return [member("null", kind=tarfile.CHRTYPE)]
    if case == "duplicate":
        return [member("a.txt", data=b"one"), member("a.txt", data=b"two")]
    raise AssertionError(case)


@pytest.mark.parametrize("case,reason", [
    ("dotdot", "'sub/../../evil.txt' is unsafe: path contains '..'"),
    ("absolute", "'/tmp/backup-dr-evil-abs.txt' is unsafe: absolute path"),
    ("symlink_absolute", "'etc' is unsafe: symlink to the absolute path '/etc'"),
    ("symlink_escape", "'d/up' is unsafe: symlink to '../../..' points outside the target"),
    ("through_symlink", "'ln/evil.txt' is unsafe: path goes through the symlink 'ln'"),
    ("hardlink", "'passwd' is unsafe: hard link"),
    ("device", "'null' is unsafe: device, FIFO or other special file"),
    ("duplicate", "'a.txt' is unsafe: appears twice in the archive"),
])
def test_unsafe_archives_are_refused(case, reason, new_writer, hand_built_backup, member, store, tmp_path):
    manifest = hand_built_backup(new_writer("evil"), _evil(member, case))
    target = tmp_path / "restore-here" / "target"
    with pytest.raises(UnsafeArchiveError) as err:
        restore_files(store, manifest, target, workdir=tmp_path / "work")
    assert reason in str(err.value)
    assert not target.exists()
    assert list((tmp_path / "restore-here").iterdir()) == []
    assert not Path("/tmp/backup-dr-evil-abs.txt").exists()
    assert not list(tmp_path.rglob("evil.txt"))


def test_restore_refuses_a_backup_that_is_not_a_files_archive(new_writer, store, tmp_path):
    writer = new_writer("app_repository", kind="bundle", source_type="git")
    writer.begin()
    with writer.open_file("app_repository.bundle", format="git-bundle") as out:
        out.write(b"# v2 git bundle\n")
    manifest = writer.commit()
    with pytest.raises(RestoreRefused) as err:
        restore_files(store, manifest, tmp_path / "t", workdir=tmp_path / "work")
    assert "not a files archive" in str(err.value)


@pytest.fixture
def many_files_backup(tmp_path, new_writer):
    """A directory of 4,000 small files: extracting it takes long enough to be interrupted."""
    src = tmp_path / "uploads"
    for d in range(40):
        (src / f"d{d:02d}").mkdir(parents=True)
        for i in range(100):
            (src / f"d{d:02d}" / f"f{i:03d}.bin").write_bytes(os.urandom(2048))
    return backup_files(FilesSource("app_uploads", str(src)), new_writer("app_uploads"))


def _staging_filling(target: Path):
    def check() -> bool:
        for p in target.parent.glob(f".{target.name}.restore-*"):
            if sum(1 for _ in p.rglob("*.bin")) >= 200:
                return True
        return False
    return check


def test_sigterm_while_extracting_leaves_the_target_and_nothing_else(many_files_backup, store, old_target, snapshot_tree,
                                                                     tmp_path):
    import signal

    from backup_dr.core.restores.journal import JournalDir
    from backup_dr.core.restores.signals import RestoreInterrupted
    from tests.faults.conftest import FaultThread

    before = snapshot_tree(old_target)
    journal = JournalDir(tmp_path / "local")
    with FaultThread(_staging_filling(old_target), lambda: os.kill(os.getpid(), signal.SIGTERM), every=0.002) as fault:
        with pytest.raises(RestoreInterrupted) as e:
            restore_files(store, many_files_backup, old_target, workdir=tmp_path / "work", overwrite=True, journal=journal)
    assert fault.fired == 1 and e.value.signum == signal.SIGTERM
    assert e.value.untouched == f"directory {old_target}"  # what the CLI reports: "... before it was changed"
    assert snapshot_tree(old_target) == before and _siblings(old_target) == ["config"]
    assert journal.entries() == []


def test_sigkill_while_extracting_is_cleaned_up_by_the_next_restore(many_files_backup, store, old_target, tmp_path):
    import json
    import signal
    import subprocess
    import sys
    import time

    from backup_dr.core.restores.journal import JournalDir

    journal = JournalDir(tmp_path / "local")
    args = {"store": str(store.root), "backup_id": many_files_backup.backup_id, "target": str(old_target),
            "workdir": str(tmp_path / "work"), "journal": str(journal.root)}
    child = subprocess.Popen([sys.executable, str(Path(__file__).with_name("files_restore_child.py")), json.dumps(args)],
                             env={**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[3] / "plugins")})
    filling, deadline = _staging_filling(old_target), time.monotonic() + 60
    while not filling():
        assert child.poll() is None and time.monotonic() < deadline
        time.sleep(0.002)
    child.send_signal(signal.SIGKILL)
    child.wait(10)
    [entry] = journal.interrupted()
    assert entry.engine == "files" and not entry.touched  # it died extracting: the target was never changed
    assert (old_target / "local-only.txt").read_text() == "only here\n"
    assert len(_siblings(old_target)) == 2  # config + the dead restore's staging directory

    result = restore_files(store, many_files_backup, old_target, workdir=tmp_path / "work", overwrite=True, journal=journal)
    assert result.files == 4000
    assert sorted(_siblings(old_target)) == sorted(["config", Path(result.safety_copy).name])  # the staging dir is gone
    assert journal.entries() == []
