"""Load a Redis backup into a RUNNING server over the network (no shell on the Redis host).

The ``data_dir`` restore (restore.py) needs the worker on the Redis host and a restart
command. In a disaster the replacement Redis is often a fresh managed instance the worker
can only reach over the network, so this path: start a scratch ``redis-server`` on the
worker with the verified backup, then copy every key with ``DUMP`` / ``RESTORE ... REPLACE
ABSTTL`` (values travel in Redis's own serialisation, TTLs as absolute times), pipelined,
database by database. Any server works as the target: the backup's own source is only the
default the callers pick.

A non-empty target is refused unless ``replace=True``. Replace means the WHOLE target ends
up equal to the backup: every database is flushed (``FLUSHALL``, also databases the backup
does not have), and afterwards the restore itself compares the target with the backup,
every database (:mod:`.compare`: ``DEBUG DIGEST`` + expiry times, or key by key), and
reports how; a difference is a failure.

Before the target is flushed its current data is kept as a safety copy (copied into an
empty scratch server and saved as an RDB: a normal ``safety`` backup in the safety store,
restorable with ``restore redis <id> --to CONN --replace``). Any failure or signal after
the flush rolls back: flush, load the safety copy, compare. A journal record covers the
whole change (:mod:`backup_dr.core.restores.journal`).
"""

from __future__ import annotations

import logging
import shutil
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from backup_dr.core.artifacts.layout import BackupId
from backup_dr.core.artifacts.manifest import Manifest
from backup_dr.core.connections import ConnInfo, redact
from backup_dr.core.errors import BackupDRError, RestoreError, RestoreRefused, RestoreRolledBack
from backup_dr.core.progress import Progress
from backup_dr.core.redis.client import keyspace_counts, redis_client, target, translate
from backup_dr.core.redis.compare import compare_servers
from backup_dr.core.redis.scratch import ScratchRedis
from backup_dr.core.redis.verify import restore_to_scratch
from backup_dr.core.restores.journal import JournalDir, JournalEntry, OpenJournal
from backup_dr.core.restores.signals import describe_failure, interrupted_by, shielded
from backup_dr.core.stores.base import Store
from backup_dr.core.stores.local import LocalStore

log = logging.getLogger(__name__)

_BATCH = 500


def _copy_db(src, dst, progress: Progress) -> int:
    """Every key of ``src``'s database into ``dst``'s (clients already on the right db)."""
    copied, cursor = 0, 0
    while True:
        cursor, keys = src.scan(cursor=cursor, count=_BATCH)
        if keys:
            read = src.pipeline(transaction=False)
            for k in keys:
                read.dump(k)
                read.execute_command("PEXPIRETIME", k)
            values = read.execute()
            write = dst.pipeline(transaction=False)
            n = 0
            for i, k in enumerate(keys):
                payload, expire_at = values[2 * i], values[2 * i + 1]
                if payload is None or expire_at == -2:  # vanished or expired while copying
                    continue
                args = ["RESTORE", k, max(expire_at, 0), payload, "REPLACE"]
                if expire_at > 0:
                    args.append("ABSTTL")
                write.execute_command(*args)
                n += 1
            write.execute()
            copied += n
            progress.add(n, sum(len(values[2 * i] or b"") for i in range(len(keys))))
        if cursor == 0:
            return copied


def copy_server(src_client, dst_client, label: str, *, total: int | None = None) -> dict[str, int]:
    """Copy every database of one server into another (``*_client(db)`` -> client on that db)."""
    src0 = src_client(0)
    try:
        dbs = sorted(int(name[2:]) for name in keyspace_counts(src0.info("keyspace"))[0])
    finally:
        src0.close()
    progress = Progress(label, total_items=total or None, unit="keys")
    copied: dict[str, int] = {}
    for db in dbs:
        src, dst = src_client(db), dst_client(db)
        try:
            copied[f"db{db}"] = _copy_db(src, dst, progress)
        finally:
            src.close()
            dst.close()
    progress.done()
    return copied


def redis_target(conn: ConnInfo) -> dict[str, Any]:
    """The journal's identity of a Redis target."""
    t = target(conn)
    return {"kind": "redis", "addresses": [f"{t.host}:{t.port}"], "database": None, "conn_id": conn.conn_id,
            "label": f"Redis {t.host}:{t.port} (connection {conn.conn_id})"}


def take_safety_copy(conn: ConnInfo, safety_store: LocalStore, *, backup_class: str, source: str, timeout: float,
                     workdir: str | None = None) -> Manifest:
    """The target's current data, every database, as a ``safety`` backup (an RDB) in ``safety_store``.

    Copied into an empty scratch server and saved there: needs only the rights the load needs
    anyway (``DUMP``), not ``SYNC``/``PSYNC``, which managed Redis services often refuse."""
    from backup_dr.core.artifacts.writer import ArtifactWriter

    with ScratchRedis(workdir=workdir) as scratch:
        copied = copy_server(lambda db: redis_client(conn, timeout=timeout, db=db), lambda db: scratch.client(db=db),
                             f"safety copy of {target(conn).host}:{target(conn).port}")
        rdb = scratch.save_rdb()
        bid = BackupId.new(backup_class, source, "safety", datetime.now(timezone.utc))
        writer = ArtifactWriter(safety_store, bid, source_type="redis")
        writer.begin()
        try:
            with writer.open_file("dump.rdb", format="rdb") as out, open(rdb, "rb") as f:
                shutil.copyfileobj(f, out, 1 << 20)
            manifest = writer.commit(counts=copied, details={"purpose": "safety copy before a network restore",
                                                             "target": redis_target(conn)["label"]})
        except BaseException:
            writer.abort()
            raise
    log.info("safety copy of %s: %s in %s (%s)", target(conn).where, bid, safety_store.describe(), copied)
    return manifest


def _safety_record(manifest: Manifest | None, store: LocalStore | None) -> dict[str, Any]:
    if manifest is None:
        return {"none": "the target held no keys before the restore: undoing it means flushing it"}
    return {"backup_id": manifest.backup_id, "root": str(Path(store.root).resolve()), "counts": dict(manifest.counts),
            "describe": f"safety copy {manifest.backup_id} in {store.describe()}"}


def load_safety(entry_or_record: dict[str, Any]) -> tuple[Manifest | None, LocalStore | None]:
    """The safety copy a journal record's ``safety`` names (None, None: the target was empty)."""
    from backup_dr.core.artifacts.reader import load_manifest

    if not entry_or_record.get("backup_id"):
        return None, None
    store = LocalStore(entry_or_record["root"], name="safety")
    return load_manifest(store, BackupId.parse(entry_or_record["backup_id"])), store


def put_back(conn: ConnInfo, safety: Manifest | None, store: LocalStore | None, *, timeout: float,
             workdir: str | None = None) -> dict[str, Any]:
    """Make the target equal its safety copy again (flush everything, load, compare)."""
    with redis_client(conn, timeout=timeout) as dst:
        dst.flushall()
    if safety is None:
        return {"restored": {}, "verified": {"method": "empty", "equal": True, "problems": []}}
    with restore_to_scratch(store, safety, workdir=workdir) as scratch:
        copied = copy_server(lambda db: scratch.client(db=db), lambda db: redis_client(conn, timeout=timeout, db=db),
                             f"roll back {target(conn).host}:{target(conn).port}")
        verified = compare_servers(lambda db: scratch.client(db=db), lambda db: redis_client(conn, timeout=timeout, db=db))
    if not verified["equal"]:
        raise RestoreError(f"after the rollback {target(conn).where} differs from its safety copy {safety.backup_id}",
                           detail="; ".join(verified["problems"]))
    return {"restored": copied, "verified": verified}


def load_into_server(conn: ConnInfo, store: Store, manifest: Manifest, *, replace: bool = False,
                     workdir: str | None = None, timeout: float = 3600.0, safety_store: LocalStore | None = None,
                     journal: JournalDir | None = None, takes_over: JournalEntry | None = None) -> dict[str, Any]:
    """Copy the backup's keys into the live server of ``conn``; see the module doc.

    :param safety_store: where the safety copy of a non-empty target goes (required to replace one).
    :param journal: the restore journal (default: the safety store's).
    :param takes_over: an interrupted load into this target being resumed: its safety copy is kept.
    :returns: counts, timing and ``verified`` (how the target was proven equal to the backup).
    """
    t = target(conn)
    started = time.monotonic()
    try:
        with redis_client(conn, timeout=timeout) as dst:
            before, _ = keyspace_counts(dst.info("keyspace"))
    except Exception as e:  # noqa: BLE001 - translated: config vs transient
        raise translate(conn, e, "read INFO keyspace") from e
    resumed = takes_over if takes_over is not None and takes_over.touched else None
    if any(before.values()) and not replace and resumed is None:
        raise RestoreRefused(
            f"{t.where} is not empty ({', '.join(f'{db}: {n} keys' for db, n in sorted(before.items()) if n)})",
            hint=f"replace its WHOLE content (every database; a safety copy is kept first): python -m backup_dr restore "
                 f"redis {manifest.backup_id} --to {conn.conn_id} --replace   (operators: replace=True)",
        )
    if any(before.values()) and safety_store is None and resumed is None:
        raise RestoreRefused(f"{t.where} holds data: replacing it needs a safety store for its safety copy",
                             hint="pass safety_store (the CLI and the operators use the local store)")
    journal = journal or (JournalDir(safety_store.root) if safety_store is not None else None)
    if journal is None:
        raise RestoreRefused("a network restore needs a journal directory (or a safety store)")
    expected = {db: n for db, n in manifest.counts.items() if db.startswith("db")}
    with restore_to_scratch(store, manifest, workdir=workdir) as scratch, \
            journal.begin("redis_load", redis_target(conn), backup_id=manifest.backup_id, what=f"the load into {t.host}:{t.port}",
                          resume={"replace": True}, takes_over=takes_over) as opened:
        if resumed is not None:
            safety, kept_in = load_safety(resumed.safety)
        elif any(before.values()):
            safety, kept_in = take_safety_copy(conn, safety_store, backup_class=manifest.backup_class, source=manifest.source,
                                               timeout=timeout, workdir=workdir), safety_store
        else:
            safety, kept_in = None, None
        opened.writing(safety=_safety_record(safety, kept_in))
        copied, verified = _load(conn, scratch, opened, safety, kept_in, manifest, expected, timeout, workdir)
    with redis_client(conn, timeout=timeout) as dst:
        after, _ = keyspace_counts(dst.info("keyspace"))
    expired = {db: n - copied.get(db, 0) for db, n in expected.items() if n > copied.get(db, 0)}
    result = {"backup_id": manifest.backup_id, "target": f"{t.host}:{t.port}", "copied": copied, "keys_after": after,
              "expired_since_snapshot": expired, "verified": verified, "problems": [],
              "safety_backup": safety.backup_id if safety else None, "seconds": round(time.monotonic() - started, 3)}
    log.info("loaded %s into %s: %s; the whole target equals the backup (%s, %d keys compared)", manifest.backup_id,
             t.where, copied, verified["method"], verified["keys"])
    return result


def _load(conn, scratch, opened: OpenJournal, safety, kept_in, manifest, expected, timeout, workdir):
    """Flush, copy, compare; on any failure or signal, roll back to the safety copy."""
    t = target(conn)
    try:
        with redis_client(conn, timeout=timeout) as dst:
            dst.flushall()
        copied = copy_server(lambda db: scratch.client(db=db, socket_timeout=timeout),
                             lambda db: redis_client(conn, timeout=timeout, db=db),
                             f"load {manifest.backup_id} into {t.host}:{t.port}", total=sum(expected.values()))
        verified = compare_servers(lambda db: scratch.client(db=db, socket_timeout=timeout),
                                   lambda db: redis_client(conn, timeout=timeout, db=db))
        if not verified["equal"]:
            raise RestoreError(f"after loading {manifest.backup_id}, {t.where} is not equal to the backup",
                               detail="; ".join(verified["problems"]))
        return copied, verified
    except BaseException as e:
        cause = str(e) if isinstance(e, BackupDRError) else str(translate(conn, e, "copy keys")) if isinstance(e, Exception) else str(e)
        cause = redact(cause, conn.secrets)
        how = describe_failure(e)
        where = (f"safety copy {safety.backup_id} in {kept_in.describe()}" if safety else "no safety copy (the target was empty)")
        try:
            with shielded():
                opened.rolling_back()
                put_back(conn, safety, kept_in, timeout=timeout, workdir=workdir)
        except BaseException as rb:  # noqa: BLE001 - reported, the original chained
            raise RestoreError(
                f"loading {manifest.backup_id} into {t.where} {how} AND the rollback failed: the target holds part of the data",
                detail=f"load: {cause}; rollback: {redact(str(rb), conn.secrets)}",
                hint=f"journal record {opened.id} is kept: when the target answers again run "
                     f"`python -m backup_dr restore rollback {opened.id}` (it puts back the {where}, compared)",
            ) from e
        raise RestoreRolledBack(
            f"loading {manifest.backup_id} into {t.where} {how}; the target was rolled back to its data before the restore",
            detail=cause, hint=f"nothing changed on the target; the {where} is kept. Fix the cause and retry",
            signum=interrupted_by(e),
        ) from e
