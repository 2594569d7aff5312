"""A throwaway ``redis-server`` loaded with a backup: for verification, drills and AOF->RDB.

It listens on 127.0.0.1 on a free port, keeps its files in its own temp directory, never
saves (``save ""``), and has a random password written to a 0600 config file (never on
the command line): restored data is production data even on a scratch server. It is
stopped by its PID, never by name. Unless told to outlive its parent (``restore redis --to
scratch --detach``), it gets SIGTERM from the kernel when the process that started it dies,
however it dies, and its directory is an owned work dir that the next restore sweeps away
(:mod:`backup_dr.core.restores.workdirs`): a killed restore leaves no server and no copy of
production data behind.
"""

from __future__ import annotations

import logging
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

from backup_dr.core.connections import ConnInfo
from backup_dr.core.errors import NotFoundError, RestoreError
from backup_dr.core.restores.workdirs import OwnedDir

log = logging.getLogger(__name__)


def redis_server_binary() -> str:
    path = shutil.which("redis-server")
    if path is None:
        raise NotFoundError("redis-server is not installed on this machine; scratch restores need it",
                            hint="install it (Debian/Ubuntu: apt-get install redis-server) or run the drill elsewhere")
    return path


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _link_or_copy(src: Path, dest: Path) -> None:
    """A hard link when possible (Redis only reads it; a SAVE replaces it by rename)."""
    try:
        os.link(src, dest)
    except OSError:
        shutil.copyfile(src, dest)


def _die_with_parent() -> None:  # runs in the child between fork and exec (Linux)
    import ctypes

    PR_SET_PDEATHSIG = 1
    ctypes.CDLL("libc.so.6", use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGTERM)


class ScratchRedis:
    """``with ScratchRedis(rdb=path) as s: s.client().dbsize()``; or ``aof_dir=`` for an AOF
    directory; neither: an empty server (a safety copy is loaded into one)."""

    def __init__(self, *, rdb: str | Path | None = None, aof_dir: str | Path | None = None,
                 appendfilename: str = "appendonly.aof", workdir: str | Path | None = None, outlive_parent: bool = False):
        if rdb is not None and aof_dir is not None:
            raise ValueError("give at most one of rdb= or aof_dir=")
        self.rdb = Path(rdb) if rdb else None
        self.aof_dir = Path(aof_dir) if aof_dir else None
        self.appendfilename = appendfilename
        self.outlive_parent = outlive_parent
        self._owned = OwnedDir("backup-dr-scratch-redis-", workdir)
        self.workdir = self._owned.path
        self.data_dir = self.workdir / "data"
        self.password = secrets.token_hex(16)
        self.port: int | None = None
        self.proc: subprocess.Popen | None = None
        self.load_seconds: float | None = None

    def __repr__(self) -> str:
        return f"ScratchRedis(port={self.port}, pid={self.pid}, workdir={str(self.workdir)!r})"

    @property
    def pid(self) -> int | None:
        return self.proc.pid if self.proc else None

    @property
    def logfile(self) -> Path:
        return self.workdir / "redis.log"

    def _write_config(self) -> Path:
        lines = [
            "bind 127.0.0.1", f"port {self.port}", f"dir {self.data_dir}", "daemonize no", "protected-mode yes",
            'save ""', "dbfilename dump.rdb", f"logfile {self.logfile}", "enable-debug-command local",
            f"requirepass {self.password}",
        ]
        if self.aof_dir is not None:
            lines += ["appendonly yes", f"appenddirname {self.aof_dir.name}", f"appendfilename {self.appendfilename}"]
        else:
            lines.append("appendonly no")
        path = self.workdir / "redis.conf"
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as f:
            f.write("\n".join(lines) + "\n")
        return path

    def _place_files(self) -> None:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        if self.rdb is not None:
            _link_or_copy(self.rdb, self.data_dir / "dump.rdb")
        elif self.aof_dir is not None:  # copied: Redis appends to the last incr file of the directory it loads
            shutil.copytree(self.aof_dir, self.data_dir / self.aof_dir.name)

    def start(self, timeout: float = 600.0) -> "ScratchRedis":
        """Start and wait until the dataset is loaded; RestoreError (with Redis's log) if it fails."""
        if self.proc is not None:
            raise RuntimeError(f"{self!r} is already started")
        binary = redis_server_binary()
        self._place_files()
        for attempt in range(3):
            self.port = _free_port()
            config = self._write_config()
            t0 = time.monotonic()
            with open(self.workdir / "stdout.log", "ab") as out:
                die = None if self.outlive_parent or not sys.platform.startswith("linux") else _die_with_parent
                self.proc = subprocess.Popen([binary, str(config)], stdout=out, stderr=subprocess.STDOUT,
                                             cwd=self.workdir, start_new_session=True, preexec_fn=die)
            try:
                self._wait_loaded(t0 + timeout)
            except RestoreError:
                if "Address already in use" in self._log_tail() and attempt < 2:
                    self.stop(remove=False)
                    continue
                self.stop(remove=False)
                raise
            self.load_seconds = time.monotonic() - t0
            log.info("scratch redis on 127.0.0.1:%s (pid %s) loaded in %.2fs", self.port, self.pid, self.load_seconds)
            return self
        raise RestoreError("scratch redis-server could not find a free port")

    def _log_tail(self) -> str:
        try:
            return self.logfile.read_text(errors="replace")[-1500:]
        except OSError:
            return ""

    def _wait_loaded(self, deadline: float) -> None:
        import redis

        while True:
            if self.proc.poll() is not None:
                raise RestoreError(f"scratch redis-server exited with code {self.proc.returncode} while loading the backup",
                                   detail=self._log_tail(), hint="the backup files may be corrupt or from a newer Redis")
            try:
                with self.client(socket_timeout=2) as r:
                    if r.info("persistence").get("loading", 1) == 0 and r.ping():
                        return
            except (redis.ConnectionError, redis.TimeoutError, redis.ResponseError):
                pass  # not listening yet, or still loading
            if time.monotonic() > deadline:
                raise RestoreError("scratch redis-server did not finish loading in time", detail=self._log_tail())
            time.sleep(0.05)

    def client(self, db: int = 0, **kw):
        import redis

        return redis.Redis(host="127.0.0.1", port=self.port, password=self.password, db=db, **kw)

    def conn_info(self, conn_id: str = "scratch_redis") -> ConnInfo:
        """Connection details, so the core's own functions (backup, INFO) can run against it."""
        return ConnInfo(conn_id, "redis", "127.0.0.1", self.port, None, self.password)

    def save_rdb(self) -> Path:
        """SAVE the loaded dataset; return the dump's path (how an AOF backup becomes an RDB)."""
        with self.client(socket_timeout=3600) as r:
            r.save()
        return self.data_dir / "dump.rdb"

    def stop(self, remove: bool = True) -> None:
        if self.proc is not None and self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                os.kill(self.proc.pid, signal.SIGKILL)
                self.proc.wait(10)
        self.proc = None
        if remove:
            self._owned.remove()

    def hand_over(self) -> None:
        """Leave the server running after this process (``--detach``): its directory is no longer
        this process's work dir, so no sweep removes it; whoever stops it removes it."""
        self._owned.disown()
        self.proc = None

    def __enter__(self) -> "ScratchRedis":
        return self if self.proc is not None else self.start()  # restore_to_scratch hands it over started

    def __exit__(self, *exc) -> None:
        self.stop()
