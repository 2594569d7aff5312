"""The README's emergency restore with the stock tools only, run verbatim on a dump the engine wrote."""

from __future__ import annotations

import os
import re
import subprocess
from pathlib import Path

from backup_dr.core.postgres import PostgresSource
from backup_dr.core.postgres.backup import backup_postgres

from pg_support import HOST, PORT, USER, conninfo, databases, drop_db, unique
from test_pg_tables import prints

README = Path(__file__).resolve().parents[3] / "README.md"


def readme_commands() -> str:
    text = README.read_text(encoding="utf-8")
    section = text[text.index("**Emergency restore with the stock tools only**"):]
    return re.search(r"```sh\n(.*?)```", section, re.S).group(1)


def test_the_readme_stock_commands_restore_a_backup_exactly(shop_db, store, new_writer):
    manifest = backup_postgres(conninfo(shop_db), PostgresSource("shop", "pg_test"), new_writer())
    script = readme_commands()
    assert "pg_restore --clean --if-exists --single-transaction" in script
    target = unique("bdr_stock")
    env = {k: v for k, v in os.environ.items() if not k.startswith("PG")}
    env.update({"PGHOST": HOST, "PGPORT": str(PORT), "PGUSER": USER, "TARGET_DB": target,
                "BACKUP_DIR": str(store.path(manifest.id.prefix))})
    try:
        out = subprocess.run(["bash", "-euo", "pipefail", "-c", script], env=env, capture_output=True, text=True, timeout=300)
        assert out.returncode == 0, out.stderr
        assert out.stdout.strip() == f"restored {shop_db}.pgdump into {target}"
        assert prints(target) == manifest.details["tables"]
    finally:
        drop_db(target)


def test_the_readme_check_stops_at_a_corrupt_copy(shop_db, store, new_writer):
    manifest = backup_postgres(conninfo(shop_db), PostgresSource("shop", "pg_test"), new_writer())
    dump = store.path(manifest.id.key(manifest.details["dump_file"]))
    data = bytearray(dump.read_bytes())
    data[100] ^= 1
    dump.write_bytes(bytes(data))
    target = unique("bdr_stock")
    env = {**os.environ, "PGHOST": HOST, "PGPORT": str(PORT), "PGUSER": USER, "TARGET_DB": target,
           "BACKUP_DIR": str(store.path(manifest.id.prefix))}
    try:
        out = subprocess.run(["bash", "-euo", "pipefail", "-c", readme_commands()], env=env, capture_output=True,
                             text=True, timeout=300)
        assert out.returncode != 0 and "restored" not in out.stdout and target not in databases("bdr_stock")
    finally:
        drop_db(target)  # only there if the commands went on past the check
