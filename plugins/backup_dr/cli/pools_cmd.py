"""``pools``: the Airflow pools the policy's DAGs need, as an ``airflow pools import`` file.

Every backup task runs in its source's one-slot pool (:mod:`backup_dr.core.routing`), and
Airflow never schedules a task whose pool does not exist (it only logs a warning), so the
pools must be created before the DAGs run — at deployment, and again after adding a source.
DAG parsing cannot create them (it does no I/O beyond reading the policy).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from backup_dr.cli.main import load_policy_arg
from backup_dr.core.routing import pools

_EPILOG = """\
examples:
  python -m backup_dr pools --out /tmp/backup_dr_pools.json && airflow pools import /tmp/backup_dr_pools.json
  python -m backup_dr pools | less            # the same JSON on stdout

Importing again is safe (it sets each pool to one slot). A pool's slot count is the number of
backups of that source that may run at once: raise it with `airflow pools set` only if the
server can carry that many dumps, and do not import this file again afterwards.
"""


def register(sub, common) -> None:
    p = sub.add_parser(
        "pools", parents=[common], formatter_class=argparse.RawDescriptionHelpFormatter, epilog=_EPILOG,
        help="the Airflow pools the DAGs need (an `airflow pools import` file)",
        description="Print (or write) the one-slot pool of every source the backup classes use, in the format "
                    "`airflow pools import` reads. Without these pools the backup tasks are never scheduled.",
    )
    p.add_argument("--out", type=Path, help="write the file here instead of printing it")
    p.set_defaults(func=run)


def run(args) -> int:
    text = json.dumps(pools(load_policy_arg(args)), indent=2, ensure_ascii=False) + "\n"
    if args.out:
        args.out.write_text(text, encoding="utf-8")
    else:
        print(text, end="", flush=True)
    return 0
