"""A throwaway PostgreSQL cluster (Debian's ``initdb``/``postgres``) for the demo and the tests.

The demo backs up Airflow's metadata DB like the shipped policy does (source ``airflow_db``),
but its own Airflow runs on SQLite: this cluster stands in for the PostgreSQL server, with a
password (scram-sha-256 over TCP), so the password path of ``pg_dump``/``pg_restore`` is the
production one. Stopped by its PID (its process group), never by name.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
from pathlib import Path

import psycopg2

from backup_dr.devstack.servers import ManagedProcess, free_port


def _bin_dir() -> Path:
    """The newest installed major's ``bin`` (``$BACKUP_DR_PG_BIN`` first, as the engine reads it)."""
    given = os.environ.get("BACKUP_DR_PG_BIN")
    if given:
        return Path(given)
    found = sorted(Path("/usr/lib/postgresql").glob("*/bin"), key=lambda p: int(p.parent.name) if p.parent.name.isdigit() else 0)
    return found[-1] if found else Path("/usr/lib/postgresql/15/bin")


PG_BIN = _bin_dir()


def _runuser() -> str | None:
    """``runuser`` (root runs the cluster as the postgres user); in sbin, which a bare PATH lacks."""
    return shutil.which("runuser", path=os.pathsep.join([os.environ.get("PATH", ""), "/usr/sbin", "/sbin"]))


class PrivateCluster(ManagedProcess):
    """A throwaway PostgreSQL cluster that demands passwords (scram-sha-256) over TCP (the demo's
    stand-in server; the tests proving the password reaches pg_dump/pg_restore without being on argv)."""

    name = "postgres"

    def __init__(self, workdir=None, *, user: str, password: str):
        super().__init__(workdir)
        self.user, self.password, self.port = user, password, free_port()
        self.data = Path(self.workdir) / "data"
        self.socket_dir = Path(self.workdir) / "sock"

    @staticmethod
    def available() -> bool:
        return (PG_BIN / "initdb").exists() and (os.geteuid() != 0 or _runuser() is not None)

    def _as_owner(self, argv: list[str]) -> list[str]:
        return [_runuser() or "runuser", "-u", "postgres", "--", *argv] if os.geteuid() == 0 else argv

    def start(self, timeout: float = 60.0):
        Path(self.workdir).mkdir(parents=True, exist_ok=True)
        self.socket_dir.mkdir(exist_ok=True)
        if os.geteuid() == 0:
            shutil.chown(self.workdir, "postgres")
            shutil.chown(self.socket_dir, "postgres")
        init = subprocess.run(self._as_owner([str(PG_BIN / "initdb"), "-D", str(self.data), "--auth-local=trust",
                                              "--auth-host=scram-sha-256", "-U", "postgres", "-E", "UTF8",
                                              "--locale=C.UTF-8"]), capture_output=True, text=True, timeout=120)
        if init.returncode != 0:
            raise RuntimeError(f"initdb failed: {init.stderr.strip()}")
        super().start(timeout)
        db = psycopg2.connect(host=str(self.socket_dir), port=self.port, user="postgres", dbname="postgres")
        db.autocommit = True
        with db.cursor() as cur:  # the password travels in the protocol, not on any command line
            cur.execute(f'CREATE ROLE "{self.user}" LOGIN CREATEDB PASSWORD %s', (self.password,))
        db.close()
        return self

    def command(self) -> list[str]:
        return self._as_owner([str(PG_BIN / "postgres"), "-D", str(self.data), "-p", str(self.port),
                               "-c", "listen_addresses=127.0.0.1", "-c", f"unix_socket_directories={self.socket_dir}",
                               "-c", "fsync=off"])

    def stop(self, timeout: float = 20.0) -> None:
        """Fast shutdown (SIGINT) of our process group: runuser and the postmaster it started."""
        if self.proc and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGINT)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(timeout)
        self.proc = None

    def ready(self) -> bool:
        psycopg2.connect(host=str(self.socket_dir), port=self.port, user="postgres", dbname="postgres").close()
        return True
