"""``decrypt <backup-id> [<file>] --out PATH``: an encrypted backup file back as the stock tools' input.

The emergency path that needs none of our restore code: the output is the plain mongodump
archive (``mongorestore --gzip --archive=PATH``), tar, RDB or git bundle. The copy is read
from the first store whose copy verifies (falling back like restores do), or from a file
fetched by hand (``--in``, e.g. after ``aws s3 cp``). Nothing unauthenticated is written:
the output appears (mode 0600, atomically renamed) only after every chunk, the header and
both hashes checked out. The key comes from the connection the manifest names (or
``--key-conn``), through ``AIRFLOW_CONN_<ID>`` / ``$BACKUP_DR_CONNECTIONS_FILE``.
"""

from __future__ import annotations

import argparse
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

from backup_dr.cli.common import UsageError, find_backup, fmt_bytes, open_policy_stores, parse_backup_id
from backup_dr.cli.good_copy import with_good_copy
from backup_dr.cli.main import EXIT_OK, emit, load_policy_arg
from backup_dr.core.artifacts.reader import fetch_verified
from backup_dr.core.catalog import Catalog
from backup_dr.core.crypto.files import context_of, decrypt_stream, open_private
from backup_dr.core.crypto.keys import load_keyring

_EPILOG = """\
examples:
  python -m backup_dr decrypt critical_data.mongodb.full.20261126T080000Z korea_public_data.archive.gz --out /restore/dump.archive.gz
  mongorestore --gzip --archive=/restore/dump.archive.gz --nsInclude='korea_public_data.*'

  aws s3 cp s3://bucket/backup-dr/backup-dr-v1/.../korea_public_data.archive.gz ./enc.gz    # fetched by hand
  python -m backup_dr decrypt critical_data.mongodb.full.20261126T080000Z korea_public_data.archive.gz --in ./enc.gz --out dump.archive.gz

the key: the connection named in the manifest (or --key-conn), e.g. AIRFLOW_CONN_BACKUP_ENCRYPTION_KEY='{"password": "<base64>"}'
"""

_USE = {"mongodump-archive": "mongorestore --archive={out}{gz}", "tar": "tar{z} -xf {out} -C <dir>",
        "rdb": "copy {out} to the Redis data dir as dump.rdb (start with appendonly no)",
        "git-bundle": "git clone {out} <dir>"}


def register(sub, common) -> None:
    p = sub.add_parser("decrypt", parents=[common], formatter_class=argparse.RawDescriptionHelpFormatter, epilog=_EPILOG,
                       help="write a backup file decrypted and verified, for stock tools (mongorestore, tar, redis)",
                       description="Decrypt one file of an encrypted backup into PATH, verified against its manifest "
                                   "(or, with --in, against the authentication of every chunk).")
    p.add_argument("backup_id", help="<class>.<source>.<kind>.<YYYYMMDDTHHMMSSZ>")
    p.add_argument("file", nargs="?", help="the backup's file (default: its only data file)")
    p.add_argument("--out", required=True, metavar="PATH", help="where the plaintext goes (created with mode 0600)")
    p.add_argument("--in", dest="input", metavar="PATH", help="decrypt this local copy instead of reading the stores")
    p.add_argument("--from-store", metavar="NAME", help="read only this store's copy")
    p.add_argument("--key-conn", metavar="CONN_ID", help="key connection (default: the one the manifest names)")
    p.add_argument("--force", action="store_true", help="overwrite --out if it exists")
    p.set_defaults(func=run)


def _out_path(args) -> Path:
    out = Path(args.out).absolute()
    if out.exists() and not args.force:
        raise UsageError(f"--out {out} exists", hint="choose another path or add --force")
    if not out.parent.is_dir():
        raise UsageError(f"--out: directory {out.parent} does not exist")
    return out


def run(args) -> int:
    out = _out_path(args)
    keyring = load_keyring(args.key_conn) if args.key_conn else None
    tmpdir = Path(tempfile.mkdtemp(prefix=".backup-dr-decrypt-", dir=out.parent))
    try:
        result = _from_file(args, out, tmpdir, keyring) if args.input else _from_stores(args, out, tmpdir, keyring)
    finally:
        shutil.rmtree(tmpdir, ignore_errors=True)
    emit(args, result, _human)
    return EXIT_OK


def _from_stores(args, out: Path, tmpdir: Path, keyring) -> dict[str, Any]:
    policy = load_policy_arg(args)
    stores = open_policy_stores(policy, [args.from_store] if args.from_store else None)
    entry = find_backup(Catalog(stores.opened), args.backup_id)

    def fetch(store, manifest):
        name = _file_name(args.file, [f.name for f in manifest.files])
        f = manifest.file(name)
        path = fetch_verified(store, manifest, name, tmpdir / "work", keyring=keyring)
        staged = tmpdir / "out"
        if tmpdir in path.parents:
            os.replace(path, staged)
        else:  # a plain file of a local store, verified in place
            with open(path, "rb") as src, open_private(staged) as dst:
                shutil.copyfileobj(src, dst, 1 << 20)
        os.replace(staged, out)
        enc = f.encryption or {}
        return {"backup_id": manifest.backup_id, "file": name, "out": str(out), "encrypted": bool(enc),
                "key_id": enc.get("key_id"), "size": f.plain_size if enc else f.size,
                "sha256": f.plain_sha256 if enc else f.sha256, "format": f.format, "codec": f.codec,
                "verified": "manifest"}

    result, attempts = with_good_copy(entry, stores, args.from_store, policy, fetch)
    return {**result, "store": attempts.used, "fell_back_from": attempts.skipped}


def _from_file(args, out: Path, tmpdir: Path, keyring) -> dict[str, Any]:
    bid = parse_backup_id(args.backup_id)
    src = Path(args.input)
    if not src.is_file():
        raise UsageError(f"--in {src} is not a file")
    if keyring is None:
        policy = load_policy_arg(args)
        cls = policy.classes.get(bid.backup_class)
        if cls is None or cls.encryption is None:
            raise UsageError(f"class {bid.backup_class!r} is not encrypted in the policy, so the key connection is unknown",
                             hint="name it with --key-conn")
        keyring = load_keyring(cls.encryption.key_conn_id)
    staged = tmpdir / "out"
    context = context_of(str(bid), args.file) if args.file else None
    with open(src, "rb") as f, open_private(staged) as dst:
        done = decrypt_stream(f, dst.write, keyring, where=f"file {src}", context=context)
    os.replace(staged, out)
    return {"backup_id": str(bid), "file": args.file, "out": str(out), "encrypted": True, "input": str(src),
            "size": done.plain_size, "sha256": done.plain_sha256, "verified": "chunk authentication",
            "format": None, "codec": None}


def _file_name(wanted: str | None, names: list[str]) -> str:
    if wanted is None:
        if len(names) == 1:
            return names[0]
        raise UsageError(f"the backup has {len(names)} files; name one", hint=f"files: {', '.join(names)}")
    if wanted not in names:
        raise UsageError(f"the backup has no file {wanted!r}", hint=f"files: {', '.join(names)}")
    return wanted


def _human(r: dict[str, Any]) -> str:
    where = f"store {r['store']}" if r.get("store") else f"file {r.get('input')}"
    how = f"decrypted with key {r['key_id']!r}" if r.get("key_id") else ("decrypted" if r["encrypted"] else "not encrypted, copied")
    lines = [f"wrote {r['out']} ({fmt_bytes(r['size'])}, sha256 {r['sha256']}) from {where}; {how}; "
             f"verified by {r['verified']}"]
    use = _USE.get(r.get("format") or "")
    if use:
        lines.append("use it with: " + use.format(out=r["out"], gz=" --gzip" if r.get("codec") == "gzip" else "",
                                                  z={"zstd": " --zstd", "gzip": " -z"}.get(r.get("codec") or "", "")))
    return "\n".join(lines)
