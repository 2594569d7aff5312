"""The stock PostgreSQL client tools, run as children that cannot outlive us or leak a secret.

* :func:`find_tool` - ``pg_dump``/``pg_restore`` from ``$BACKUP_DR_PG_BIN`` or ``PATH``
  (Debian ``postgresql-client``), with a clear error when missing.
* :class:`ToolRun` - a running tool: its stderr is read by a thread into a bounded tail
  (so a chatty child never blocks on a full pipe and memory stays constant), secrets are
  redacted from it, and the child gets ``PR_SET_PDEATHSIG`` on Linux so a killed worker
  does not leave a ``pg_restore`` finishing a restore unsupervised.
"""

from __future__ import annotations

import collections
import ctypes
import logging
import os
import re
import shutil
import signal
import subprocess
import sys
import threading
from pathlib import Path
from typing import Callable, Iterable

from backup_dr.core.errors import ConnectionConfigError

log = logging.getLogger(__name__)

_ENV_BIN = "BACKUP_DR_PG_BIN"
_TAIL_LINES = 40


def find_tool(name: str, bin_dir: str | os.PathLike | None = None) -> str:
    """Path of a client tool; ``bin_dir`` (or ``$BACKUP_DR_PG_BIN``) first, then ``PATH``."""
    where = bin_dir or os.environ.get(_ENV_BIN)
    path = shutil.which(name, path=str(where)) if where else shutil.which(name)
    if not path:
        raise ConnectionConfigError(
            f"{name} is not installed on this worker" + (f" (looked in {where})" if where else ""),
            hint=f"install the Debian package postgresql-client (scripts/setup.sh does), or point ${_ENV_BIN} "
                 "at a directory holding pg_dump and pg_restore of the server's major version or newer")
    return path


def tool_version(path: str) -> str:
    """``15.20`` from ``pg_dump (PostgreSQL) 15.20 (Debian 15.20-0+deb12u1)``."""
    out = subprocess.run([path, "--version"], capture_output=True, text=True, timeout=30, check=True).stdout
    m = re.search(r"\(PostgreSQL\)\s+(\S+)", out)
    return m.group(1) if m else out.strip()


def _die_with_parent() -> None:  # pragma: no cover - runs in the child between fork and exec
    if sys.platform.startswith("linux"):
        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG


class ToolRun:
    """A started tool. Use as a context manager: leaving early (an exception, a signal
    turned into an exception) kills the child and waits for it."""

    def __init__(self, argv: list[str], env: dict[str, str], *, scrub: Callable[[str], str], stdout=None,
                 on_line: Callable[[str], None] | None = None):
        self.argv, self.scrub, self.on_line = argv, scrub, on_line
        self.tail: collections.deque[str] = collections.deque(maxlen=_TAIL_LINES)
        log.info("running %s", " ".join(argv))  # argv never holds a secret: the password is in PGPASSFILE
        self.proc = subprocess.Popen(argv, env=env, stdin=subprocess.DEVNULL, stdout=stdout, stderr=subprocess.PIPE,
                                     preexec_fn=_die_with_parent if sys.platform.startswith("linux") else None)
        self._reader = threading.Thread(target=self._read_stderr, daemon=True, name=f"{Path(argv[0]).name}-stderr")
        self._reader.start()

    def _read_stderr(self) -> None:
        for raw in iter(self.proc.stderr.readline, b""):
            line = self.scrub(raw.decode("utf-8", "replace").rstrip())
            self.tail.append(line)
            if self.on_line is not None:
                try:
                    self.on_line(line)
                except Exception:  # noqa: BLE001 - progress display must not break the tool
                    log.debug("stderr callback failed", exc_info=True)

    def wait(self, timeout: float | None = None) -> int:
        code = self.proc.wait(timeout=timeout)
        self._reader.join(timeout=10)
        return code

    def errors(self) -> str:
        """The tool's last stderr lines, ``error:`` lines first (they say why)."""
        lines = list(self.tail)
        important = [ln for ln in lines if "error" in ln.lower() or "fatal" in ln.lower()]
        rest = [ln for ln in lines if ln not in important][-5:]
        return "; ".join(important[-8:] + rest) or "(no output)"

    def __enter__(self) -> "ToolRun":
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if self.proc.poll() is None:
            if exc_type is not None:
                self.proc.kill()
            self.wait()
        elif self._reader.is_alive():
            self._reader.join(timeout=10)
        for stream in (self.proc.stdout, self.proc.stderr):
            if stream is not None:
                stream.close()


def quote_pattern(schema: str, table: str | None = None) -> str:
    """A pg_dump ``--schema``/``--table`` pattern that matches exactly this name (double quotes
    make wildcards and case literal)."""
    q = lambda s: '"' + s.replace('"', '""') + '"'  # noqa: E731
    return q(schema) if table is None else f"{q(schema)}.{q(table)}"


def scope_args(schemas: Iterable[str], exclude_tables: Iterable[str]) -> list[str]:
    """pg_dump switches for a source's schemas and excluded tables."""
    args = [f"--schema={quote_pattern(s)}" for s in schemas]
    for name in exclude_tables:
        schema, table = name.split(".", 1)
        args.append(f"--exclude-table={quote_pattern(schema, table)}")
    return args
