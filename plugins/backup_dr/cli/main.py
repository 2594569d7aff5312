"""Entry point and shared plumbing of ``python -m backup_dr``.

Each sub-command lives in its own module under :mod:`backup_dr.cli` and registers itself
through ``register(subparsers, common)`` (``common`` is the parent parser carrying
``--json``/``--policy``/``-v`` so they work after the sub-command too). Exit codes: 0 ok,
1 the operation failed or was refused (verification mismatch, restore failed, non-empty
target), 2 bad usage or bad policy/config (unknown store, missing connection).

Nothing printed or logged may hold a secret: every connection is resolved through
:func:`backup_dr.cli.common.resolve_conn`, whose secrets are scrubbed from every error
message and log line.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib
import json
import logging
import sys
import traceback
from typing import Any, Callable

from backup_dr import __version__
from backup_dr.cli.common import UsageError, scrub
from backup_dr.core.errors import BackupDRError, ConnectionConfigError, PolicyError
from backup_dr.core.policy import load_policy, policy_location
from backup_dr.core.restores.signals import RestoreInterrupted, interruptible

EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2
log = logging.getLogger("backup_dr.cli")

_COMMAND_MODULES = (
    "backup_dr.cli.catalog_cmd",
    "backup_dr.cli.verify_cmd",
    "backup_dr.cli.restore_cmd",
    "backup_dr.cli.prune_cmd",
    "backup_dr.cli.health_cmd",
    "backup_dr.cli.policy_cmd",
    "backup_dr.cli.pools_cmd",
    "backup_dr.cli.keys_cmd",
    "backup_dr.cli.decrypt_cmd",
    "backup_dr.cli.dr_cmd",
)

_EPILOG = """\
exit codes: 0 ok, 1 the operation failed or was refused, 2 bad usage, policy or configuration

credentials: stores and targets are CONNECTION IDS, resolved like Airflow does, without Airflow:
  AIRFLOW_CONN_<ID> (JSON or URI), or a JSON file {"<id>": {...}} named by $BACKUP_DR_CONNECTIONS_FILE.
  Never put a password on the command line.

disaster recovery, a whole scenario of the policy (human steps asked, or --confirm STEP):
  python -m backup_dr dr list
  python -m backup_dr dr run database_server_failure --dry-run
  python -m backup_dr dr run database_server_failure --confirm provision_mongodb

disaster recovery of the database server, step by step:
  python -m backup_dr list --source mongodb
  python -m backup_dr verify critical_data.mongodb.full.20261126T080000Z
  python -m backup_dr restore mongo latest --class critical_data --to mongo_new_primary
  python -m backup_dr restore mongo latest --class operational_data --to mongo_new_primary
  (one restore per class that backs up the database: `latest` alone does not guess which)
"""


def emit(args: argparse.Namespace, data: Any, human: Callable[[Any], str]) -> None:
    """Print ``data`` as JSON with ``--json``, else its human rendering (flushed: callers may wait)."""
    from backup_dr.cli.progress_bar import clear_active

    clear_active()
    if getattr(args, "json", False):
        sys.stdout.write(json.dumps(data, indent=2, ensure_ascii=False, default=str) + "\n")
    else:
        sys.stdout.write(human(data).rstrip("\n") + "\n")
    sys.stdout.flush()


def load_policy_arg(args: argparse.Namespace, *, strict: bool = False):
    """The policy of ``--policy`` / ``$BACKUP_DR_POLICY``. Leniently (every command but ``policy
    check``): on the worst day someone edited it in a hurry, and a typo in one class must not stop
    a restore from another; the invalid parts are logged as warnings, and only a command that
    needs one of them refuses, naming its root cause."""
    path, origin = policy_location(getattr(args, "policy", None))
    policy = load_policy(path, strict=strict, origin=origin)
    if policy.issues:
        from backup_dr.core.policy_causes import summary_lines

        lines = summary_lines(list(policy.issues), policy.causes)
        log.warning("policy %s has problems; commands that need those parts refuse, the others work "
                    "(`python -m backup_dr policy check --policy %s` for details):\n  %s", path, path, "\n  ".join(lines))
    return policy


def common_options() -> argparse.ArgumentParser:
    """Options every sub-command accepts too (``list --json`` as well as ``--json list``)."""
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--policy", default=argparse.SUPPRESS,
                        help="policy file (default: $BACKUP_DR_POLICY or include/policy.yaml)")
    common.add_argument("--json", action="store_true", default=argparse.SUPPRESS, help="machine-readable JSON on stdout")
    common.add_argument("-v", "--verbose", action="store_true", default=argparse.SUPPRESS, help="debug logging")
    common.add_argument("--no-progress", action="store_true", default=argparse.SUPPRESS,
                        help="no progress bar even on a terminal (log lines instead)")
    return common


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m backup_dr",
        description=(
            "Backup and disaster recovery for the Korea Public Data API, without Airflow. "
            "Needs only the policy file, store credentials (AIRFLOW_CONN_<ID> variables or "
            "$BACKUP_DR_CONNECTIONS_FILE) and the stores."
        ),
        epilog=_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"backup_dr {__version__}")
    parser.add_argument("--policy", help="policy file (default: $BACKUP_DR_POLICY or include/policy.yaml)")
    parser.add_argument("--json", action="store_true", help="machine-readable JSON output on stdout")
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar even on a terminal")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    common = common_options()
    for name in _COMMAND_MODULES:
        importlib.import_module(name).register(sub, common)
    return parser


class _ScrubFilter(logging.Filter):
    """Last line of defence: no log record leaves with a known secret in it."""

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            text = record.getMessage()
        except Exception:  # noqa: BLE001 - a malformed record is logged as is
            return True
        clean = scrub(text)
        if clean != text:
            record.msg, record.args = clean, ()
        return True


def _setup_logging(args: argparse.Namespace) -> None:
    level = logging.DEBUG if args.verbose else logging.INFO
    formatter = logging.Formatter("%(asctime)s %(levelname)s %(message)s", "%H:%M:%S")
    if sys.stderr.isatty() and not args.no_progress:
        from backup_dr.cli import progress_bar

        progress_bar.install(sys.stderr, formatter, level)
    else:
        logging.basicConfig(level=level, format="%(asctime)s %(levelname)s %(message)s", stream=sys.stderr)
    for handler in logging.getLogger().handlers:
        handler.addFilter(_ScrubFilter())
    for noisy in ("botocore", "boto3", "urllib3", "google", "pymongo", "s3transfer", "filelock"):
        logging.getLogger(noisy).setLevel(logging.WARNING)


def _fail(args: argparse.Namespace, e: BaseException, code: int) -> int:
    from backup_dr.cli.progress_bar import clear_active

    clear_active()
    message = scrub(str(e))
    sys.stderr.write(f"error: {message}\n")
    if getattr(args, "json", False):
        body = {"ok": False, "exit_code": code, "error_type": type(e).__name__,
                "error": scrub(getattr(e, "message", None) or str(e))}
        for key in ("detail", "hint"):
            if getattr(e, key, None):
                body[key] = scrub(getattr(e, key))
        sys.stdout.write(json.dumps(body, indent=2, ensure_ascii=False) + "\n")
        sys.stdout.flush()
    return code


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    for name in ("json", "verbose", "no_progress"):
        setattr(args, name, bool(getattr(args, name, False)))
    _setup_logging(args)
    from backup_dr.cli.keys_cmd import install_key_resolver

    install_key_resolver()  # encrypted backups: key connections from env/file, their keys scrubbed from output
    if not getattr(args, "func", None):
        parser.print_help()
        return EXIT_USAGE
    try:
        with interruptible(f"`{args.command}`") if args.command in ("restore", "dr") else contextlib.nullcontext():
            return int(args.func(args) or EXIT_OK)
    except (PolicyError, ConnectionConfigError, UsageError) as e:
        return _fail(args, e, EXIT_USAGE)
    except BackupDRError as e:  # a restore rolled back after a signal exits as that signal would: 128 + n
        signum = getattr(e, "signum", None)
        return _fail(args, e, 128 + signum if signum else EXIT_FAILED)
    except RestoreInterrupted as e:  # outside a restore's writing phase: nothing to roll back
        where = getattr(e, "untouched", None)
        return _fail(args, RuntimeError(f"{e} before {where} was changed: nothing to undo" if where else
                                        f"{e}; no restore was writing at that moment"), 128 + e.signum)
    except KeyboardInterrupt:
        sys.stderr.write("interrupted\n")
        return 130
    except Exception as e:  # noqa: BLE001 - a break-glass tool reports, never dumps secrets in a traceback
        if args.verbose:
            sys.stderr.write(scrub(traceback.format_exc()))
        return _fail(args, RuntimeError(f"unexpected {type(e).__name__}: {scrub(str(e))} (run with -v for the traceback)"),
                     EXIT_FAILED)
