"""The DR steps beyond the database: reload the cache (Redis), restore the app files, repoint
the application. Redis and files use the newest backup captured at or before the incident
(default: now), across every class that backs the source up, from the first good copy
(:func:`backup_dr.core.good_copy.with_good_copy`: a bad copy falls back to the next store).
"""

from __future__ import annotations

import json
import urllib.request
from typing import Any, Callable

from backup_dr.core.dr.run import DrRun, DrStepFailed, cache_source
from backup_dr.core.errors import NotFoundError, TransientError


def _latest(run: DrRun, stores, source: str, kind: str):
    from backup_dr.core.recovery import pick_latest

    incident = run.incident()
    if incident is not None:
        run.log.info("incident time: %s", incident.echo())
    entry, order, _cls = pick_latest(run.policy, stores, source, kind, incident=incident.utc if incident else None)
    run.log.info("%s: newest backup captured at or before %s: %s (captured %s); copies in order: %s", source,
                 incident.utc.isoformat() if incident else "now", entry.backup_id, entry.captured_at.isoformat(), ", ".join(order))
    return entry, order


def _recover(entry, stores, order, action: Callable) -> dict[str, Any]:
    from backup_dr.core.good_copy import with_good_copy
    from backup_dr.core.recovery import now_iso

    first_byte_at = now_iso()
    result, attempts = with_good_copy(entry, stores, order, action)
    as_dict = result if isinstance(result, dict) else result.as_dict() if hasattr(result, "as_dict") else dict(vars(result))
    return {"backup_id": entry.backup_id, "captured_at": entry.captured_at.isoformat(), "first_byte_at": first_byte_at,
            "finished_at": now_iso(), **attempts.as_dict(), **as_dict}


def restore_redis(run: DrRun, step=None) -> dict[str, Any]:
    """Load the newest Redis backup into the scenario's Redis target over the network."""
    from backup_dr.core.artifacts.layout import kind_for
    from backup_dr.core.redis.load import load_into_server

    src = cache_source(run.policy)
    if src is None:
        raise NotFoundError("the policy has no Redis source to restore")
    stores = run.all_stores()
    entry, order = _latest(run, stores, src.name, kind_for(src))
    if run.dry_run:
        run.log.warning("DRY RUN: would load %s into %s", entry.backup_id, run.redis_target_conn_id)
        return {"dry_run": True, "backup_id": entry.backup_id, "order": order, "target": run.redis_target_conn_id}
    if not run.redis_target_conn_id:
        raise DrStepFailed(f"scenario {run.scenario.name!r} names no Redis target",
                           hint="set redis_target_conn_id in the scenario or the run's params")
    conn = run.conn(run.redis_target_conn_id)
    out = _recover(entry, stores, order, lambda store, m: load_into_server(conn, store, m, replace=True,
                                                                         safety_store=run.local(None)))
    return {"dry_run": False, **out}


def restore_files(run: DrRun, step) -> dict[str, Any]:
    """Restore the newest archive of each of ``step.sources`` to its policy path (the old content,
    if any, is kept aside as a safety copy by the core)."""
    from backup_dr.core.files import restore_files as restore_archive
    from backup_dr.core.restores.journal import JournalDir
    from backup_dr.core.restores.workdirs import work_dir

    stores = run.all_stores()
    out: dict[str, Any] = {}
    for name in step.sources:
        src = run.policy.sources[name]
        entry, order = _latest(run, stores, name, "files")
        if run.dry_run:
            run.log.warning("DRY RUN: would restore %s into %s", entry.backup_id, src.path)
            out[name] = {"dry_run": True, "backup_id": entry.backup_id, "order": order, "target": src.path}
            continue
        with work_dir("backup-dr-files-") as work:
            out[name] = _recover(entry, stores, order, lambda store, m: restore_archive(
                store, m, src.path, workdir=work, overwrite=True, journal=JournalDir(run.local(None).root)))
    starts = [r["first_byte_at"] for r in out.values() if r.get("first_byte_at")]
    ends = [r["finished_at"] for r in out.values() if r.get("finished_at")]
    return {**out, **({"first_byte_at": min(starts), "finished_at": max(ends)} if starts else {})}


def repoint_payload(run: DrRun) -> dict[str, Any]:
    """The new endpoints (host/port of the targets, never credentials)."""
    target = run.conn(run.target_conn_id)
    pick = run.result("pick_backup")
    body = {"scenario": run.scenario.name, "dag_run": run.run_id,
            "mongodb": {"conn_id": target.conn_id, "host": target.host, "port": target.port, "database": run.database()},
            "recovered_from": pick.get("backup_id")}
    if run.scenario.redis_target_conn_id:
        r = run.conn(run.scenario.redis_target_conn_id)
        body["redis"] = {"conn_id": r.conn_id, "host": r.host, "port": r.port}
    return body


def repoint(run: DrRun, step=None) -> dict[str, Any]:
    """Tell the application where its data now lives: POST the new endpoints to the policy's
    repoint webhook (its connection's password is sent as a bearer token)."""
    body = repoint_payload(run)
    if run.dry_run:
        run.log.warning("DRY RUN: would POST to the repoint webhook: %s", json.dumps(body, ensure_ascii=False))
        return {"dry_run": True, "payload": body}
    hook_conn = run.conn(run.policy.ops.repoint_webhook_conn_id)
    url = hook_conn.host if "://" in (hook_conn.host or "") else f"http://{hook_conn.host}:{hook_conn.port or 80}"
    if hook_conn.schema:
        url = url.rstrip("/") + "/" + hook_conn.schema.lstrip("/")
    headers = {"Content-Type": "application/json"}
    if hook_conn.password:
        headers["Authorization"] = f"Bearer {hook_conn.password}"
    req = urllib.request.Request(url, data=json.dumps(body).encode(), headers=headers, method="POST")
    try:
        with urllib.request.urlopen(req, timeout=30) as resp:
            status = resp.status
    except Exception as e:  # noqa: BLE001 - retried; the message never holds the token
        raise TransientError(f"repoint webhook {hook_conn.conn_id!r} failed: {type(e).__name__}: {getattr(e, 'reason', e)}") from None
    if not 200 <= status < 300:
        raise DrStepFailed(f"repoint webhook {hook_conn.conn_id!r} answered HTTP {status}")
    run.log.info("application repointed via %s: %s", hook_conn.conn_id, body)
    return {"dry_run": False, "status": status, "payload": body}
