"""Entry point and shared plumbing of ``python -m backup_dr``.

Each sub-command lives in its own module under :mod:`backup_dr.cli` and registers itself
through ``register(subparsers)``. Exit codes: 0 ok, 1 the operation failed (verification
mismatch, restore failed), 2 bad usage or bad policy/config.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from typing import Any, Callable

from backup_dr import __version__
from backup_dr.core.errors import BackupDRError, ConnectionConfigError, PolicyError
from backup_dr.core.policy import default_policy_path, load_policy

EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2

_COMMAND_MODULES = ("backup_dr.cli.policy_cmd",)


def emit(args: argparse.Namespace, data: Any, human: Callable[[Any], str]) -> None:
    """Print ``data`` as JSON with ``--json``, else its human rendering."""
    if getattr(args, "json", False):
        sys.stdout.write(json.dumps(data, indent=2, ensure_ascii=False, default=str) + "\n")
    else:
        sys.stdout.write(human(data).rstrip("\n") + "\n")


def load_policy_arg(args: argparse.Namespace):
    return load_policy(args.policy or default_policy_path())


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m backup_dr",
        description=(
            "Backup and disaster recovery for the Korea Public Data API, without Airflow. "
            "Needs only the policy file, store credentials (AIRFLOW_CONN_<ID> variables or "
            "$BACKUP_DR_CONNECTIONS_FILE) and the stores."
        ),
    )
    parser.add_argument("--version", action="version", version=f"backup_dr {__version__}")
    parser.add_argument("--policy", help="policy file (default: $BACKUP_DR_POLICY or include/policy.yaml)")
    parser.add_argument("--json", action="store_true", help="machine-readable JSON output")
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    import importlib

    for name in _COMMAND_MODULES:
        importlib.import_module(name).register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(message)s",
        stream=sys.stderr,
    )
    if not getattr(args, "func", None):
        parser.print_help()
        return EXIT_USAGE
    try:
        return int(args.func(args) or EXIT_OK)
    except (PolicyError, ConnectionConfigError) as e:
        sys.stderr.write(f"error: {e}\n")
        return EXIT_USAGE
    except BackupDRError as e:
        sys.stderr.write(f"error: {e}\n")
        return EXIT_FAILED
    except KeyboardInterrupt:
        sys.stderr.write("interrupted\n")
        return 130
