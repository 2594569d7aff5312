"""Is someone holding this lock file? The one liveness test for writers, restores and work dirs.

Backup writers, restore journal records and restore work directories each keep an
``flock`` on a file while their process runs. The kernel drops the lock when the process
dies, however it dies (SIGKILL, OOM, power loss), so "the lock can be taken" means "the
owner is gone" without guessing from PIDs (which are reused).
"""

from __future__ import annotations

import fcntl
import os


def is_locked(path: str | os.PathLike) -> bool:
    """True while another process (or another open of the file) holds an ``flock`` on ``path``;
    False when it is free or the file does not exist."""
    try:
        fd = os.open(path, os.O_RDWR)
    except FileNotFoundError:
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        fcntl.flock(fd, fcntl.LOCK_UN)
        return False
    except BlockingIOError:
        return True
    finally:
        os.close(fd)
