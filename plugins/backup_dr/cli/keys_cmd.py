"""``keys needed`` / ``keys generate``: master keys of encrypted classes, and their rotation.

Rotation never rewrites a backup (manifests may be under Object Lock): a new key is added
to the keyring and made active, and every older key stays until the last backup naming it
is gone. ``keys needed`` reads the manifests in the stores and says which keys are still
needed, until when, and whether the configured keyring holds them (exit 1 when one is
missing: those backups cannot be restored).

Also installs the CLI's key resolver: key connections come from the same
``AIRFLOW_CONN_<ID>`` / ``$BACKUP_DR_CONNECTIONS_FILE`` as every other connection, and
their key texts join the secrets scrubbed from every message and log line.
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from backup_dr.cli.common import SECRETS, UsageError, log, open_policy_stores, resolve_conn, scrub
from backup_dr.cli.main import EXIT_FAILED, EXIT_OK, emit, load_policy_arg
from backup_dr.core.connections import ConnInfo
from backup_dr.core.crypto.keys import Keyring, generate_key, load_keyring, set_connection_resolver

_EPILOG = """\
examples:
  python -m backup_dr keys needed                       # every key the stored backups need, and until when
  python -m backup_dr keys needed --class critical_data --json
  python -m backup_dr keys generate --id k2 --keyring-conn backup_encryption_key > new-connection.json

rotation: generate a key (keys generate --id k2 --keyring-conn <conn>), store the printed connection
(old keys + k2, active k2) as the key connection, and drop an old key only when `keys needed` no
longer lists it (its backups have expired and were pruned).
"""


def resolve_key_conn(conn_id: str) -> ConnInfo:
    """The CLI's key connection resolver: env/file, with every key text scrubbed from output."""
    conn = resolve_conn(conn_id)
    ring = (conn.extra or {}).get("keys")
    for text in [conn.password, *(ring.values() if isinstance(ring, dict) else ())]:
        if isinstance(text, str) and text.strip() and text.strip() not in SECRETS:
            SECRETS.append(text.strip())
    return conn


def install_key_resolver() -> None:
    set_connection_resolver(resolve_key_conn)


def register(sub, common) -> None:
    keys = sub.add_parser("keys", parents=[common], formatter_class=argparse.RawDescriptionHelpFormatter, epilog=_EPILOG,
                          help="encryption keys: which are still needed (rotation), generate a new one",
                          description="Master keys of encrypted backup classes.")
    kinds = keys.add_subparsers(dest="keys_command", metavar="ACTION")
    keys.set_defaults(func=lambda args: keys.print_help() or 2)
    n = kinds.add_parser("needed", parents=[common], help="keys the stored backups were encrypted with, until when",
                         description="Read every manifest in the reachable stores and list the master keys their files "
                                     "were encrypted with: backups per key, newest and oldest, the latest expiry, and "
                                     "whether the key connection holds the key. Exit 1 when a needed key is missing.")
    n.add_argument("--class", dest="backup_class", metavar="C", help="only this class's backups")
    n.add_argument("--store", action="append", metavar="NAME", help="only these stores (repeatable)")
    n.set_defaults(func=run_needed)
    g = kinds.add_parser("generate", parents=[common], help="print a new random master key as a connection (JSON)",
                         description="Print a key connection holding a new random 256-bit key, active. With "
                                     "--keyring-conn, the keys of that connection are kept in it (rotation). The output "
                                     "is a secret: redirect it to a protected file or paste it into a secret store.")
    g.add_argument("--id", dest="key_id", default=None, help="id of the new key (default: k<n+1>)")
    g.add_argument("--keyring-conn", metavar="CONN_ID", help="keep the keys of this existing key connection")
    g.set_defaults(func=run_generate)


def run_needed(args) -> int:
    from backup_dr.core.crypto.rotation import keys_needed

    policy = load_policy_arg(args)
    if args.backup_class and args.backup_class not in policy.classes:
        raise UsageError(f"unknown class {args.backup_class!r}", hint=f"the policy defines: {', '.join(policy.classes)}")
    stores = open_policy_stores(policy, args.store)
    configured = {c.encryption.key_conn_id for c in policy.classes.values() if c.encryption}
    report = keys_needed(stores.opened, backup_class=args.backup_class, check_connections=configured)
    _warn_store_errors(report)
    emit(args, report, _human)
    return EXIT_FAILED if any(k["in_keyring"] is False for k in report["keys"]) else EXIT_OK


def _warn_store_errors(report: dict[str, Any]) -> None:
    for name, why in report.get("store_errors", {}).items():
        log.warning("store %s could not be listed; its backups are not counted: %s", name, scrub(why))


def _human(r: dict[str, Any]) -> str:
    lines = [f"{r['encrypted_backups']} of {r['backups']} backup(s) are encrypted"]
    if not r["keys"]:
        return lines[0] + "; no master key is needed"
    lines.append(f"{'KEY ID':<14} {'FINGERPRINT':<17} {'BACKUPS':>7}  {'NEWEST BACKUP':<48} {'KEEP UNTIL':<21} KEYRING")
    for k in r["keys"]:
        state = {True: "present", False: "MISSING", None: "unknown"}[k["in_keyring"]]
        lines.append(f"{k['key_id']:<14} {k['fingerprint']:<17} {k['backups']:>7}  {k['newest_backup']:<48} "
                     f"{k['keep_until'] or 'no expiry':<21} {state} ({', '.join(k['key_conn_ids'])})")
    for cid, active in r.get("active", {}).items():
        lines.append(f"connection {cid}: new backups use key {active!r}")
    for cid, why in r.get("keyring_problems", {}).items():
        lines.append(f"connection {cid}: not checked: {why}")
    for bad in r.get("unreadable", []):
        lines.append(f"unreadable manifest: {bad}")
    if any(k["in_keyring"] is False for k in r["keys"]):
        lines.append("MISSING keys: the backups naming them cannot be restored until the key is added back")
    return "\n".join(lines)


def run_generate(args) -> int:
    keys: dict[str, str] = {}
    if args.keyring_conn:
        ring = load_keyring(args.keyring_conn)
        conn = resolve_key_conn(args.keyring_conn)
        extra = conn.extra or {}
        keys = dict(extra["keys"]) if isinstance(extra.get("keys"), dict) else {ring.active_id: conn.password.strip()}
    key_id = args.key_id or f"k{len(keys) + 1}"
    if key_id in keys:
        raise UsageError(f"key id {key_id!r} is already in connection {args.keyring_conn!r}", hint="choose another --id")
    keys[key_id] = generate_key()
    conn_json = {"conn_type": "generic", "description": "backup_dr encryption keyring",
                 "extra": {"keys": keys, "active": key_id}}
    Keyring.from_conn(ConnInfo("generated", extra=conn_json["extra"]))  # validates what is printed
    sys.stdout.write(json.dumps(conn_json, indent=2) + "\n")
    sys.stdout.flush()
    return EXIT_OK

