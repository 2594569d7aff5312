"""Apply a ``pg_dump`` custom-format file to a database with the stock ``pg_restore``.

One runner for the drill (into an empty scratch database) and the restore (onto a target,
``--clean --if-exists``, and the rollback onto the same target). Always
``--single-transaction`` (which implies ``--exit-on-error``): pg_restore's whole work is one
server transaction, so a failure anywhere in it - a missing role, a lock timeout, a killed
worker - leaves the database exactly as it was. Progress (tables/s, ETA) is read from
``--verbose`` lines against the dump's table-of-contents.

pg_restore has no lock timeout (the dump's preamble even sets ``lock_timeout = 0``), so a
client of the target holding a lock would make a restore wait forever. :class:`LockWatch`
watches our pg_restore's session (found by its unique ``application_name``) and cancels it
once it has waited :data:`LOCK_TIMEOUT` seconds for a lock, naming the sessions that held it.
"""

from __future__ import annotations

import logging
import re
import subprocess
import threading
import time
import uuid
from pathlib import Path

from backup_dr.core.errors import RestoreError
from backup_dr.core.postgres.conn import PgConn, translate
from backup_dr.core.postgres.tables import Table
from backup_dr.core.postgres.tools import ToolRun, find_tool
from backup_dr.core.progress import Progress

log = logging.getLogger(__name__)

#: seconds pg_restore (and our DROP TABLEs) may wait for a lock another client of the target holds
LOCK_TIMEOUT = 60.0
_DATA_LINE = re.compile(r"processing data for table ")


def toc_table_data(pg_restore: str, path: str | Path) -> int:
    """How many TABLE DATA entries the dump holds (the restore progress total)."""
    out = subprocess.run([pg_restore, "--list", str(path)], capture_output=True, text=True, timeout=300)
    if out.returncode != 0:
        raise RestoreError(f"pg_restore cannot read {path}", detail=out.stderr.strip()[-2000:],
                           hint="the file is not a pg_dump custom-format archive, or was written by a newer pg_dump "
                                "(install that version's postgresql-client)")
    return sum(1 for line in out.stdout.splitlines() if " TABLE DATA " in line)


def conninfo_dbname(database: str) -> str:
    """``--dbname`` value that is always read as a database NAME (a name holding ``=`` would
    otherwise be parsed as a connection string)."""
    return "dbname='" + database.replace("\\", "\\\\").replace("'", "\\'") + "'"


def apply_dump(pg: PgConn, path: str | Path, *, clean: bool, keep_owners: bool = True, bin_dir: str | None = None,
               label: str = "pg_restore") -> None:
    """Run ``pg_restore --single-transaction`` of ``path`` into ``pg.database``; RestoreError
    (saying nothing was applied) on failure.

    :param clean: ``--clean --if-exists``: drop the dump's objects before recreating them
    :param keep_owners: restore owners and privileges (False: ``--no-owner --no-privileges``,
        for a scratch server that lacks the source's roles)
    """
    pg_restore = find_tool("pg_restore", bin_dir)
    total = toc_table_data(pg_restore, path)
    argv = [pg_restore, "--verbose", "--no-password", "--single-transaction", "--exit-on-error"]
    if clean:
        argv += ["--clean", "--if-exists"]
    if not keep_owners:
        argv += ["--no-owner", "--no-privileges"]
    argv += [f"--dbname={conninfo_dbname(pg.database)}", str(path)]
    progress = Progress(f"{label} into {pg.database}", total_items=total, unit="tables")

    def on_line(line: str) -> None:
        if _DATA_LINE.search(line):
            progress.add(1)

    app = f"backup_dr {label} {uuid.uuid4().hex[:8]}"
    watch = LockWatch(pg, app, LOCK_TIMEOUT)
    with pg.tool_env() as env:
        env["PGAPPNAME"] = app  # replaces a connection's application_name: the watch finds the session by it
        with ToolRun(argv, env, scrub=pg.scrub, on_line=on_line) as run:
            watch.start()
            try:
                code = run.wait()
            finally:
                watch.stop()
    if code != 0:
        why = run.errors()
        hint = "the transaction was rolled back by the server: nothing of this dump was applied"
        if watch.blockers:
            raise RestoreError(f"{label} into {pg.describe()} gave up after waiting {LOCK_TIMEOUT:.0f}s for a lock (lock timeout)",
                               detail="held by " + "; ".join(watch.blockers),
                               hint=f"{hint}; stop those clients of {pg.database!r} (Airflow scheduler, API server, "
                                    "workers) and retry")
        if "role" in why and "does not exist" in why:
            hint += "; create the missing role(s) on the target server (or restore with keep_owners=False)"
        raise RestoreError(f"{label} into {pg.describe()} failed (exit code {code})", detail=why, hint=hint)
    progress.done()


def drop_tables(pg: PgConn, tables: list[Table]) -> None:
    """``DROP TABLE ... CASCADE`` of ``tables``, all in one transaction."""
    if not tables:
        return
    from psycopg2 import sql

    names = [t.qualified for t in tables]
    log.warning("dropping %d table(s) of %s that the dump does not have: %s", len(names), pg.describe(), ", ".join(names))
    db = pg.connect(what=f"dropping tables of {pg.describe()}")
    try:
        with translate(pg, f"dropping {', '.join(names)}", cls=RestoreError), db.cursor() as cur:
            cur.execute("BEGIN")
            cur.execute("SET LOCAL lock_timeout = %s", (f"{int(LOCK_TIMEOUT * 1000)}ms",))
            for t in tables:
                cur.execute(sql.SQL("DROP TABLE IF EXISTS {} CASCADE").format(sql.Identifier(t.schema, t.name)))
            cur.execute("COMMIT")
    finally:
        db.close()


class LockWatch(threading.Thread):
    """Cancel the session named ``app`` once it has waited ``timeout`` seconds for a lock;
    ``blockers`` then describes the sessions that held it."""

    _SESSIONS = "SELECT pid, wait_event_type = 'Lock', pg_blocking_pids(pid) FROM pg_stat_activity WHERE application_name = %s"
    _WHO = ("SELECT pid, usename, coalesce(nullif(application_name, ''), '(no application_name)'), "
            "coalesce(client_addr::text, 'local'), state FROM pg_stat_activity WHERE pid = ANY(%s) ORDER BY pid")

    def __init__(self, pg: PgConn, app: str, timeout: float, every: float = 0.25):
        super().__init__(daemon=True, name="pg-lock-watch")
        self.pg, self.app, self.timeout, self.every = pg, app, timeout, every
        self.blockers: list[str] = []
        self._halt = threading.Event()

    def stop(self) -> None:
        self._halt.set()
        if self.is_alive():
            self.join(timeout=10)

    def run(self) -> None:
        try:
            db = self.pg.connect(what="watching the restore for lock waits")
        except Exception:  # noqa: BLE001 - without a watch the restore still runs; say so
            log.warning("cannot watch %s for lock waits; it will wait as long as a lock is held", self.app, exc_info=True)
            return
        since: dict[int, float] = {}
        try:
            with db.cursor() as cur:
                while not self._halt.wait(self.every):
                    cur.execute(self._SESSIONS, (self.app,))
                    for pid, waiting, blocking in cur.fetchall():
                        if not waiting:
                            since.pop(pid, None)
                            continue
                        if time.monotonic() - since.setdefault(pid, time.monotonic()) < self.timeout:
                            continue
                        cur.execute(self._WHO, (list(blocking),))
                        self.blockers = [f"pid {p} (user {u}, {a}, from {c}, {s})" for p, u, a, c, s in cur.fetchall()] \
                            or ["a session that has ended"]
                        log.error("%s waited %.0fs for a lock held by %s: cancelling it", self.app, self.timeout,
                                  "; ".join(self.blockers))
                        cur.execute("SELECT pg_cancel_backend(%s)", (pid,))
                        return
        except Exception:  # noqa: BLE001 - the watch is best effort; the restore's own outcome decides
            log.warning("lock watch of %s stopped", self.app, exc_info=True)
        finally:
            db.close()
