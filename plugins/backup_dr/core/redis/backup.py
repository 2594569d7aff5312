"""The Redis backup job: one call for the operator and the CLI, any of the three modes.

    writer = ArtifactWriter(local_store, BackupId.new(cls, source.name, artifact_kind(source), run_after),
                            source_type="redis", retention=retention)
    manifest = backup_redis(conn, source, writer)

* ``replication`` (default): fetch the RDB as a replica would; no access to the Redis host.
* ``bgsave``: BGSAVE on the server, wait for it, copy ``dump.rdb`` from ``source.data_dir``.
* ``aof``: copy the Redis 7 AOF directory (manifest + base + incr) as one tar.

Every artifact is validated before the manifest is written (RDB header + CRC-64 while
streaming, then ``redis-check-rdb`` / ``redis-check-aof`` when installed). A retry after
success returns the existing manifest; a failure removes everything the attempt wrote.
"""

from __future__ import annotations

import logging
import shutil
import tempfile
from pathlib import Path
from typing import Any, Callable

from backup_dr.core.artifacts.manifest import Manifest, iso
from backup_dr.core.artifacts.writer import ArtifactWriter
from backup_dr.core.connections import ConnInfo
from backup_dr.core.progress import Progress
from backup_dr.core.policy_model import RedisSource
from backup_dr.core.redis.aof import copy_aof_dir, tar_directory
from backup_dr.core.redis.bgsave import bgsave, open_fresh_rdb, rdb_path
from backup_dr.core.redis.client import keyspace_counts, redis_client, server_info, target, translate
from backup_dr.core.redis.rdb import RdbCheck, RdbStreamCheck, check_rdb_file
from backup_dr.core.redis.replication import fetch_rdb

log = logging.getLogger(__name__)

RDB_FILE = "dump.rdb"
AOF_FILE = "appendonlydir.tar"
_CHUNK = 4 * 1024 * 1024


def artifact_kind(source: RedisSource) -> str:
    """The BackupId kind for a source: ``aof`` for mode aof, else ``rdb``."""
    return "aof" if source.mode == "aof" else "rdb"


def backup_redis(conn: ConnInfo, source: RedisSource, writer: ArtifactWriter, *, timeout: float = 3600.0,
                 idle_timeout: float = 60.0, allow_disk_sync: bool = False, workdir: str | Path | None = None,
                 on_chunk: Callable[[int], None] | None = None) -> Manifest:
    """Back up one Redis source into ``writer``'s (local staging) store; return the manifest.

    :param conn: the source's connection (``source.conn_id``), e.g. from ``conn_from_env``
    :param timeout: limit for the snapshot/copy
    :param idle_timeout: replication mode: longest silence tolerated from the master
    :param allow_disk_sync: replication mode: accept a master with ``repl-diskless-sync no``
    :param workdir: aof mode: where the consistent copy is assembled before it is archived
    :param on_chunk: replication mode: called with bytes received so far (progress hooks)
    """
    kind = artifact_kind(source)
    if writer.bid.kind != kind:
        raise ValueError(f"redis source {source.name!r} in mode {source.mode!r} makes {kind!r} artifacts, "
                         f"but the backup id is {writer.bid}")
    done = writer.existing()
    if done is not None:
        log.info("backup %s already complete; nothing to do", writer.bid)
        return done
    writer.begin()
    try:
        if source.mode == "replication":
            return _by_replication(conn, writer, timeout, idle_timeout, allow_disk_sync, on_chunk)
        if source.mode == "bgsave":
            return _by_bgsave(conn, source, writer, timeout)
        if source.mode == "aof":
            return _by_aof(conn, source, writer, timeout, workdir)
        raise ValueError(f"redis source {source.name!r}: unknown mode {source.mode!r} (replication | bgsave | aof)")
    except BaseException:
        writer.abort()
        raise


def _info_or_note(r, conn: ConnInfo) -> tuple[dict | None, str | None]:
    """INFO at snapshot time, or why it is missing (a minimal replication user may not run INFO)."""
    import redis.exceptions as rx

    try:
        r.info("server")
    except rx.NoPermissionError:
        note = f"user {target(conn).user!r} may not run INFO; grant +info to record the server's INFO"
        log.info("%s: %s", target(conn).where, note)
        return None, note
    except rx.RedisError as e:
        raise translate(conn, e, "run INFO") from None
    return server_info(r, conn), None


def _counts(check: RdbCheck, info: dict | None) -> tuple[dict[str, int], dict[str, int], str | None]:
    if check.checked_with == "redis-check-rdb" and (check.keys or check.total_keys == 0):
        return check.keys, check.expires, "rdb"
    if info and "keyspace" in info:
        keys, expires = keyspace_counts(info["keyspace"])
        return keys, expires, "info"
    return {}, {}, None


def _rdb_details(mode: str, check: RdbCheck, info: dict | None, note: str | None, extra: dict[str, Any]) -> tuple[dict, dict]:
    counts, expires, source = _counts(check, info)
    details = {
        "mode": mode,
        "rdb_version": check.version,
        "rdb_crc64": check.checksum,
        "checked_with": check.checked_with,
        "expires": expires,
        "counts_source": source,
        "server_info": info,
        **extra,
    }
    if note:
        details["server_info_note"] = note
    return counts, details


def _by_replication(conn, writer, timeout, idle_timeout, allow_disk_sync, on_chunk) -> Manifest:
    with redis_client(conn, timeout=30) as r:
        info, note = _info_or_note(r, conn)
    with writer.open_file(RDB_FILE, codec="none", format="rdb") as out:
        fetch = fetch_rdb(conn, out, timeout=timeout, idle_timeout=idle_timeout,
                          allow_disk_sync=allow_disk_sync, on_chunk=on_chunk)
    check = check_rdb_file(writer.store.path(writer.bid.key(RDB_FILE)), stream_checked=fetch.check)
    counts, details = _rdb_details("replication", check, info, note, {
        "transfer": fetch.transfer, "command": fetch.command, "seconds": round(fetch.seconds, 3),
        "mb_per_s": round(fetch.size / 1e6 / max(fetch.seconds, 1e-9), 1),
    })
    point = {"time": iso(fetch.started_at), "master_replid": fetch.master_replid,
             "master_repl_offset": fetch.master_repl_offset}
    return writer.commit(consistent_point=point, counts=counts, details=details)


def _by_bgsave(conn, source, writer, timeout) -> Manifest:
    with redis_client(conn, timeout=30) as r:
        info, note = _info_or_note(r, conn)
        result = bgsave(r, conn, timeout=timeout)
        path = rdb_path(r, conn, source)
        progress = Progress(f"copy {path}", total_bytes=path.stat().st_size, unit="chunks")
        with open_fresh_rdb(path, result, source) as src, writer.open_file(RDB_FILE, codec="none", format="rdb") as out:
            stream = RdbStreamCheck(out, str(path))
            for block in iter(lambda: src.read(_CHUNK), b""):
                stream.write(block)
                progress.add(1, len(block))
            stream.finish()
        progress.done()
    check = check_rdb_file(writer.store.path(writer.bid.key(RDB_FILE)), stream_checked=stream)
    counts, details = _rdb_details("bgsave", check, info, note, {
        "bgsave_seconds": round(result.seconds, 3), "bgsave_scheduled": result.scheduled, "path": str(path),
    })
    repl = (info or {}).get("replication", {})
    point = {"time": iso(result.last_save_time), "master_replid": repl.get("master_replid"),
             # read just before the BGSAVE: the fork is at or after this offset
             "master_repl_offset": repl.get("master_repl_offset")}
    return writer.commit(consistent_point=point, counts=counts, details=details)


def _by_aof(conn, source, writer, timeout, workdir) -> Manifest:
    tmp = Path(tempfile.mkdtemp(prefix="backup-dr-aof-", dir=workdir))
    try:
        with redis_client(conn, timeout=30) as r:
            info, note = _info_or_note(r, conn)
            copy = copy_aof_dir(r, conn, source, tmp / "copy", timeout=timeout)
        with writer.open_file(AOF_FILE, codec="none", format="aof-dir-tar") as out:
            tar_directory(copy.directory, copy.dirname, out)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    details = {
        "mode": "aof", "appenddirname": copy.dirname, "appendfilename": copy.appendfilename,
        "files": copy.files, "copy_attempts": copy.attempts, "paused_writes": copy.paused,
        "truncated_tail_bytes": copy.truncated_bytes, "expires": copy.expires,
        "counts_source": "info-paused" if copy.paused else "info", "server_info": info,
    }
    if note:
        details["server_info_note"] = note
    point = {"time": iso(copy.taken_at), **copy.replication}
    return writer.commit(consistent_point=point, counts=copy.counts, details=details)

