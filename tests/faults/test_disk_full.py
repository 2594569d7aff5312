"""Row 4: the local (staging) store's disk is full.

The local store is a real 8 MB tmpfs mounted for the test (``mount -t tmpfs -o size=8m``),
filled by an unrelated file so the dump cannot fit. Mounting needs root (or CAP_SYS_ADMIN);
without it the test re-runs itself in a child ``unshare --user --map-root-user --mount``
(an unprivileged user namespace, where a tmpfs may be mounted) and passes or fails with it;
only where neither works does it skip, saying why. The backup task fails for good (a full
disk does not heal by retrying) with an error naming the store, where it is and the space
involved; the alert goes out; nothing partial is committed or left on the disk. After the
space is freed, the next run of the same backup succeeds.
"""

from __future__ import annotations

import os
import re
import subprocess
import tempfile
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest

from backup_dr.core.catalog import Catalog
from backup_dr.core.verify import verify_copy
from tests.dags.conftest import run_dag
from tests.faults.conftest import backup_dirs, task_tries, tmp_leftovers, xcom


_IN_NAMESPACE = "BACKUP_DR_TEST_IN_USERNS"


def _mount_tmpfs(mnt: Path) -> str | None:
    """Mount an 8 MB tmpfs on ``mnt``; None on success, else why not."""
    if os.environ.get("BACKUP_DR_TEST_NO_DIRECT_MOUNT") and not os.environ.get(_IN_NAMESPACE):
        return "direct mount disabled (BACKUP_DR_TEST_NO_DIRECT_MOUNT)"
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=8m", "tmpfs", str(mnt)], capture_output=True, text=True)
    return None if done.returncode == 0 else (done.stderr.strip() or f"mount exited {done.returncode}")


def _in_user_namespace(why: str) -> None:
    """No privilege to mount here: run this file again as root of a new user + mount namespace."""
    import shutil
    import sys

    unshare = shutil.which("unshare")
    if os.environ.get(_IN_NAMESPACE) or unshare is None:
        pytest.skip(f"cannot mount a tmpfs here ({why}) and no user namespace to do it in: run as root or with CAP_SYS_ADMIN")
    probe = subprocess.run([unshare, "--user", "--map-root-user", "--mount", "true"], capture_output=True, text=True)
    if probe.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here ({why}) and unprivileged user namespaces are off ({probe.stderr.strip()})")
    child = subprocess.run([unshare, "--user", "--map-root-user", "--mount", sys.executable, "-m", "pytest", __file__, "-q",
                            "-p", "no:cacheprovider"], env={**os.environ, _IN_NAMESPACE: "1"}, capture_output=True, text=True,
                           timeout=900)
    assert child.returncode == 0 and " passed" in child.stdout, child.stdout[-4000:] + child.stderr[-2000:]


@pytest.fixture
def small_disk(local_store_root, monkeypatch):
    """An 8 MB tmpfs as the policy's local store (BACKUP_DR_LOCAL_PATH, set after the default one);
    None when the test ran in a user namespace instead (see the module docstring)."""
    mnt = Path(tempfile.mkdtemp(prefix="backup-dr-fullfs-"))
    why = _mount_tmpfs(mnt)
    if why is not None:
        mnt.rmdir()
        _in_user_namespace(why)
        yield None
        return
    monkeypatch.setenv("BACKUP_DR_LOCAL_PATH", str(mnt))
    try:
        yield mnt
    finally:
        subprocess.run(["umount", "-l", str(mnt)], check=False)
        mnt.rmdir()


def _fill(root: Path, leave: int) -> Path:
    """An unrelated big file that leaves only ``leave`` bytes free on the filesystem."""
    st = os.statvfs(root)
    filler = root / "old-export.tar"
    with open(filler, "wb") as f:
        f.write(b"\0" * max(0, st.f_bavail * st.f_frsize - leave))
    return filler


def _free(root: Path) -> int:
    st = os.statvfs(root)
    return st.f_bavail * st.f_frsize


def test_full_local_disk_fails_clearly_commits_nothing_and_the_next_run_succeeds(
        airflow_db, small_disk, seeded_mongo, s3_bucket, gcs_bucket, sinks, policy_stores, output):
    if small_disk is None:
        return  # it ran, and passed, in a child process in a user namespace (the fixture asserted that)
    smtp, slack = sinks
    filler = _fill(small_disk, leave=200_000)
    free_before = _free(small_disk)
    when = datetime.now(timezone.utc).replace(microsecond=0) - timedelta(hours=1)
    dr, states = run_dag("backup_critical_data", logical_date=when, run_after=when)

    # what happens: the dump fails at once and for good (retrying cannot free a disk)
    assert str(dr.state) == "failed"
    assert states["backup_mongodb"] == "failed" and task_tries(dr, "backup_mongodb") == 1, states
    assert states["replicate_mongodb[0]"] == states["replicate_mongodb[1]"] == "upstream_failed"

    # what the user sees: the store, its path, the file, the space involved, what to do
    head = f"local store 'local' ({small_disk}) is full writing backup-dr-v1/critical_data/mongodb/"
    log = output.text()
    assert head in log and "korea_public_data.archive.gz" in log
    need = re.search(r"needs more than (\d+\.\d) MB \(the disk filled after [\d.]+ MB of this file\), (\d+\.\d) MB free", log)
    assert need, log[-3000:]
    assert float(need.group(1)) > 0 and abs(float(need.group(2)) * 1e6 - free_before) < 100_000
    assert f"hint: free space under {small_disk} or prune old backups" in log
    mails = smtp.wait_for(lambda m: "backup_mongodb" in m["Subject"])
    assert mails and head in smtp.text(mails[0]) and "MB free" in smtp.text(mails[0])
    assert slack.wait_for(lambda p: "backup_mongodb" in str(p["body"]) and "is full writing" in p["body"]["text"])

    # what is left behind: nothing partial, and the partial file's space was given back
    assert backup_dirs(small_disk) == {} and tmp_leftovers(small_disk) == []
    assert abs(_free(small_disk) - free_before) < 64 * 1024
    for name, store in policy_stores.items():
        assert Catalog([store]).list(include_incomplete=True) == [], name

    # space freed: the same run, re-run, makes its backup (same id), complete and verified everywhere
    filler.unlink()
    dr, states = run_dag("backup_critical_data", logical_date=when, run_after=when)
    assert str(dr.state) == "success", states
    entry = Catalog(policy_stores).find(xcom(dr, "backup_mongodb")["backup_id"])
    assert entry is not None and sorted(entry.complete_in) == ["gcs", "local", "s3"]
    for name, store in policy_stores.items():
        assert verify_copy(store, entry.manifest())["ok"], name
    assert tmp_leftovers(small_disk) == []
