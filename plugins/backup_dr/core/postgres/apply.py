"""Apply a ``pg_dump`` custom-format file to a database with the stock ``pg_restore``.

One runner for the drill (into an empty scratch database) and the restore (onto a target,
``--clean --if-exists``, and the rollback onto the same target). Always
``--single-transaction`` (which implies ``--exit-on-error``): pg_restore's whole work is one
server transaction, so a failure anywhere in it - a missing role, a lock timeout, a killed
worker - leaves the database exactly as it was. Progress (tables/s, ETA) is read from
``--verbose`` lines against the dump's table-of-contents.
"""

from __future__ import annotations

import logging
import re
import subprocess
from pathlib import Path

from backup_dr.core.errors import RestoreError
from backup_dr.core.postgres.conn import PgConn, translate
from backup_dr.core.postgres.tables import Table
from backup_dr.core.postgres.tools import ToolRun, find_tool
from backup_dr.core.progress import Progress

log = logging.getLogger(__name__)

#: how long pg_restore waits for a lock held by another client of the target before failing
LOCK_TIMEOUT = "60s"
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

    with pg.tool_env(options=f"-c lock_timeout={LOCK_TIMEOUT}") as env, \
            ToolRun(argv, env, scrub=pg.scrub, on_line=on_line) as run:
        code = run.wait()
    if code != 0:
        why = run.errors()
        hint = "the transaction was rolled back by the server: nothing of this dump was applied"
        if "lock timeout" in why:
            hint += f"; another client held a lock for over {LOCK_TIMEOUT}: stop the clients of {pg.database!r} and retry"
        elif "role" in why and "does not exist" in why:
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
            cur.execute("SET LOCAL lock_timeout = %s", (LOCK_TIMEOUT,))
            for t in tables:
                cur.execute(sql.SQL("DROP TABLE IF EXISTS {} CASCADE").format(sql.Identifier(t.schema, t.name)))
            cur.execute("COMMIT")
    finally:
        db.close()
