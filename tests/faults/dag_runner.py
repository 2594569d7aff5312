"""Run one DAG with ``dag.test()`` in a CHILD process, for the faults a single process cannot
stage: two runs of the same DAG at the same time, or a worker killed in the middle of a task.

The child inherits the test's environment (AIRFLOW_HOME and its SQLite DB, the
``AIRFLOW_CONN_*`` connections, ``BACKUP_DR_*``), so it runs the very same DAGs against the
very same servers and stores. Usage::

    python -m tests.faults.dag_runner DAG_ID RUN_AFTER_ISO

prints one line ``RESULT {"state": ..., "states": {...}, "run_id": ...}`` at the end.
"""

from __future__ import annotations

import json
import sys
from datetime import datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def main(argv: list[str]) -> int:
    sys.path[:0] = [str(ROOT / "plugins"), str(ROOT)]
    from tests.dags.conftest import run_dag

    dag_id, when = argv[0], datetime.fromisoformat(argv[1])
    dr, states = run_dag(dag_id, logical_date=when, run_after=when)
    print("RESULT " + json.dumps({"state": str(dr.state), "states": states, "run_id": dr.run_id}), flush=True)
    return 0 if str(dr.state) == "success" else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
