"""Verification restores: load a Redis backup into a scratch server and compare it with its manifest.

Used by the verify task after every backup and by the restore drills. The backup's bytes
are fetched through :func:`fetch_verified` (sha256 against the manifest) first, so what is
loaded is exactly what was backed up; then the per-db key counts the manifest recorded are
compared with DBSIZE of every database, and a sample of keys is read back (type, a length
read that forces the value to decode, and the TTL).
"""

from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import Any

from backup_dr.core.artifacts.manifest import Manifest
from backup_dr.core.artifacts.reader import fetch_verified
from backup_dr.core.errors import VerificationError
from backup_dr.core.redis.aof import untar_directory
from backup_dr.core.redis.backup import AOF_FILE, RDB_FILE
from backup_dr.core.redis.client import keyspace_counts
from backup_dr.core.redis.scratch import ScratchRedis
from backup_dr.core.restores.workdirs import work_dir
from backup_dr.core.stores.base import Store

log = logging.getLogger(__name__)

_LENGTH_READ = {"string": "STRLEN", "list": "LLEN", "hash": "HLEN", "set": "SCARD", "zset": "ZCARD", "stream": "XLEN"}
#: counts taken from the snapshot itself (or while writes were paused) must match exactly
EXACT_COUNT_SOURCES = ("rdb", "info-paused")


def fetch_backup_files(store: Store, manifest: Manifest, workdir: Path) -> tuple[Path | None, Path | None]:
    """(rdb path, aof directory): the verified local copy of a Redis backup's data (a safety copy
    taken before a network restore is an RDB too)."""
    if manifest.kind == "rdb" or (manifest.kind == "safety" and manifest.source_type == "redis"):
        return fetch_verified(store, manifest, RDB_FILE, workdir), None
    if manifest.kind == "aof":
        tar = fetch_verified(store, manifest, AOF_FILE, workdir)
        return None, untar_directory(tar, workdir / "aof")
    raise ValueError(f"backup {manifest.backup_id} is a {manifest.kind!r} artifact, not a Redis rdb/aof backup")


def restore_to_scratch(store: Store, manifest: Manifest, *, workdir: str | Path | None = None,
                       timeout: float = 600.0, outlive_parent: bool = False) -> ScratchRedis:
    """A started scratch server holding the backup (stop it, or use it as a context manager)."""
    with work_dir("backup-dr-redis-fetch-", workdir) as work:  # the scratch server gets its own copy (or hard link)
        rdb, aof_dir = fetch_backup_files(store, manifest, work)
        scratch = ScratchRedis(rdb=rdb, aof_dir=aof_dir, workdir=workdir, outlive_parent=outlive_parent,
                               appendfilename=manifest.details.get("appendfilename") or "appendonly.aof")
        try:
            return scratch.start(timeout)
        except BaseException:
            scratch.stop()
            raise


def server_state(scratch_or_client) -> dict[str, Any]:
    """One INFO (a single consistent reading): per-db keys and expires, and how many keys
    expired on the way (skipped while loading, or expired since)."""
    if isinstance(scratch_or_client, ScratchRedis):
        with scratch_or_client.client() as r:
            return server_state(r)
    info = scratch_or_client.info()
    keys, expires = keyspace_counts({k: v for k, v in info.items() if k.startswith("db")})
    return {
        "keys": keys, "expires": expires,
        "expired": int(info.get("rdb_last_load_keys_expired", 0)) + int(info.get("expired_keys", 0)),
        "loaded": info.get("rdb_last_load_keys_loaded"),
        "load_expired": info.get("rdb_last_load_keys_expired"),
    }


def compare_counts(expected: dict[str, int], expected_expires: dict[str, int], restored: dict[str, int], *,
                   expired: int | None = None, allow_extra: bool = False) -> list[str]:
    """Problems comparing per-db key counts with the manifest.

    A db may come back short only by keys that had a TTL (they may have expired since the
    snapshot); with ``expired`` (keys the server reports as expired) the total shortfall
    must be exactly that. ``allow_extra`` tolerates keys written by clients after a restart.
    """
    problems, short = [], {}
    for db in sorted(set(expected) | set(restored)):
        want, got = expected.get(db, 0), restored.get(db, 0)
        if got > want and not allow_extra or want - got > expected_expires.get(db, 0):
            problems.append(f"{db}: {got} keys restored, the manifest recorded {want}"
                            + (f" ({expected_expires[db]} with a TTL)" if expected_expires.get(db) else ""))
        elif want > got:
            short[db] = want - got
    if expired is not None and sum(short.values()) != expired:
        problems += [f"{db}: {expected[db] - n} keys restored, the manifest recorded {expected[db]} "
                     f"(and only {expired} keys expired on the way)" for db, n in sorted(short.items())]
    return problems


def sample_keys(r, dbs: list[str], per_db: int) -> tuple[int, list[str]]:
    """Read back up to ``per_db`` random keys of every db; (keys read, problems)."""
    problems, n = [], 0
    for db in dbs:
        r.execute_command("SELECT", int(db[2:]))
        for _ in range(per_db):
            key = r.randomkey()
            if key is None:
                break
            kind = r.type(key)
            kind = kind.decode() if isinstance(kind, bytes) else kind
            if kind == "none":
                continue  # expired between RANDOMKEY and TYPE
            cmd = _LENGTH_READ.get(kind)
            if cmd:
                r.execute_command(cmd, key)
            ttl = r.pttl(key)
            if ttl < -2 or ttl == 0:
                problems.append(f"{db}: key {key[:60]!r} has a bad TTL {ttl}")
            n += 1
    r.execute_command("SELECT", 0)
    return n, problems


def verify_rdb_restore(store: Store, manifest: Manifest, *, workdir: str | Path | None = None, sample: int = 200,
                       timeout: float = 600.0, raise_on_mismatch: bool = True) -> dict[str, Any]:
    """Restore ``manifest``'s backup (RDB or AOF) to a scratch server and check it.

    Returns a report (``ok``, ``load_seconds``, ``expected`` / ``restored`` per-db counts,
    ``sampled_keys``, ``problems``, ``warnings``); raises VerificationError when a check
    fails and ``raise_on_mismatch`` (the default).
    """
    t0 = time.monotonic()
    expected = dict(manifest.counts)
    expected_expires = dict(manifest.details.get("expires") or {})
    counts_source = manifest.details.get("counts_source")
    problems: list[str] = []
    warnings: list[str] = []
    with restore_to_scratch(store, manifest, workdir=workdir, timeout=timeout) as scratch:
        state = server_state(scratch)
        restored, restored_expires = state["keys"], state["expires"]
        mismatch = compare_counts(expected, expected_expires, restored, expired=state["expired"])
        if not expected and counts_source is None:
            warnings.append("the manifest recorded no key counts (no redis-check-rdb, no INFO right); counts not compared")
        elif counts_source in EXACT_COUNT_SOURCES:
            problems += mismatch
        else:  # INFO a moment after a copy on a busy server: only indicative
            warnings += mismatch
        with scratch.client() as r:
            sampled, sample_problems = sample_keys(r, sorted(restored), sample)
        problems += sample_problems
        load_seconds = scratch.load_seconds
    report = {
        "backup_id": manifest.backup_id,
        "kind": manifest.kind,
        "ok": not problems,
        "load_seconds": round(load_seconds or 0.0, 3),
        "total_seconds": round(time.monotonic() - t0, 3),
        "expected": expected,
        "restored": restored,
        "restored_expires": restored_expires,
        "expired_on_the_way": state["expired"],
        "counts_source": counts_source,
        "sampled_keys": sampled,
        "problems": problems,
        "warnings": warnings,
    }
    log.info("verify %s: %s, %d keys in %d db(s) loaded in %.2fs, %d sampled%s", manifest.backup_id,
             "OK" if not problems else "FAILED", sum(restored.values()), len(restored), report["load_seconds"], sampled,
             "".join(f"; {p}" for p in problems))
    if problems and raise_on_mismatch:
        raise VerificationError(f"backup {manifest.backup_id} does not restore to what its manifest records",
                                detail="; ".join(problems), hint="do not rely on this backup; take a new one")
    return report


#: the name the issue uses; it verifies AOF backups too
verify_redis_restore = verify_rdb_restore
