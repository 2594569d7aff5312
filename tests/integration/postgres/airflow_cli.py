"""Run several ``airflow`` CLI commands in ONE process (Airflow's import costs seconds each time).

    python airflow_cli.py db migrate --next connections add my_conn --conn-uri ... --next variables get key

Each command goes through Airflow's own CLI parser and handler, exactly as ``airflow ...``
would run it; a line ``=== <command>`` on stdout precedes each one's output.
"""

from __future__ import annotations

import sys

from airflow import configuration  # noqa: F401 - first, as airflow/__main__.py does
from airflow.cli import cli_parser
from airflow.cli.utils import redirect_stdout_log_handlers_to_stderr
from airflow.configuration import write_default_airflow_configuration_if_needed


def main(argv: list[str]) -> None:
    write_default_airflow_configuration_if_needed()
    redirect_stdout_log_handlers_to_stderr()
    commands, current = [], []
    for token in argv:
        if token == "--next":
            commands.append(current)
            current = []
        else:
            current.append(token)
    commands.append(current)
    for command in commands:
        print(f"=== {' '.join(command[:2])}", flush=True)
        args = cli_parser.get_parser().parse_args(command)
        args.func(args)
        sys.stdout.flush()


if __name__ == "__main__":
    main(sys.argv[1:])
