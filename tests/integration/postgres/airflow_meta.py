"""A real Airflow metadata database for the PostgreSQL engine tests: the venv's ``airflow``
CLI (``airflow db migrate`` into a fresh database on the machine's server, a real fernet key),
with a connection, a variable and a DAG run. ``conftest.py`` migrates one template per
session (~30 s) and tests clone it (``CREATE DATABASE ... TEMPLATE``)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from pg_support import HOST, PORT, USER

CLI = Path(__file__).with_name("airflow_cli.py")
CONN_PASSWORD = "S3cr3t-AF-conn-5d21"
BASE_URL = "https://apis.data.go.kr/1230000/ad/BidPublicInfoService"
DAG_RUN = ("INSERT INTO dag_run (dag_id, run_id, run_type, state, logical_date, run_after, conf) VALUES "
           "('backup_critical_data', 'scheduled__2026-11-26T08:00:00+00:00', 'scheduled', 'success', "
           "'2026-11-26 17:00:00+09', '2026-11-26 17:00:00+09', '{\"source\": \"mongodb\"}')")


class Airflow:
    """The venv's airflow CLI against one metadata database (one process per call)."""

    def __init__(self, home: Path, fernet_key: str):
        self.home, self.fernet_key = home, fernet_key

    def run(self, database: str, *commands: list[str]) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("AIRFLOW")}
        env.update({"AIRFLOW_HOME": str(self.home), "AIRFLOW__CORE__FERNET_KEY": self.fernet_key,
                    "AIRFLOW__CORE__LOAD_EXAMPLES": "False", "AIRFLOW__CORE__DAGS_FOLDER": str(self.home / "dags"),
                    "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"postgresql+psycopg2://{USER}@{HOST}:{PORT}/{database}"})
        argv = [sys.executable, str(CLI)]
        for i, command in enumerate(commands):
            argv += (["--next"] if i else []) + command
        out = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=600)
        assert out.returncode == 0, out.stderr[-3000:]
        sections, name = {}, None
        for line in out.stdout.splitlines():
            if line.startswith("=== "):
                name = line[4:]
                sections[name] = ""
            elif name:
                sections[name] += line + "\n"
        return sections
