"""DR probes: what answers (the seed's detect_scenario) and the post-recovery health check.

A probe reports and never raises: detection informs the humans, it does not decide for them.
The health check is the one step that turns a failed probe into a failed recovery.
"""

from __future__ import annotations

import time
import urllib.request
from datetime import datetime, timezone
from typing import Any

from backup_dr.core.dr.run import DrRun, DrStepFailed, cache_source


def _failure(e: BaseException) -> dict[str, Any]:
    lines = str(e).splitlines()
    return {"ok": False, "error": f"{type(e).__name__}: {(lines[0] if lines else '')[:200]}"}


def probe_mongo(run: DrRun, conn_id: str | None) -> dict[str, Any]:
    t0 = time.monotonic()
    try:
        client = run.mongo(conn_id, serverSelectionTimeoutMS=3000, connectTimeoutMS=3000)
        try:
            client.admin.command("ping")
            hello = client.admin.command("hello")
        finally:
            client.close()
        return {"ok": True, "ms": round((time.monotonic() - t0) * 1000), "primary": hello.get("isWritablePrimary"),
                "set": hello.get("setName")}
    except Exception as e:  # noqa: BLE001 - a probe reports, it does not raise
        return _failure(e)


def probe_redis(run: DrRun, conn_id: str) -> dict[str, Any]:
    from backup_dr.core.redis.client import redis_client

    t0 = time.monotonic()
    try:
        with redis_client(run.conn(conn_id), timeout=3) as r:
            r.ping()
        return {"ok": True, "ms": round((time.monotonic() - t0) * 1000)}
    except Exception as e:  # noqa: BLE001
        return _failure(e)


def probe_http(url: str | None) -> dict[str, Any]:
    if not url:
        return {"ok": None, "error": "ops.app_health_url is not set"}
    t0 = time.monotonic()
    try:
        with urllib.request.urlopen(url, timeout=5) as resp:
            return {"ok": 200 <= resp.status < 300, "status": resp.status, "ms": round((time.monotonic() - t0) * 1000)}
    except Exception as e:  # noqa: BLE001
        return {"ok": False, "error": f"{type(e).__name__}: {e}"[:200]}


def looks_like(report: dict[str, Any]) -> str:
    down = [k for k in ("mongodb", "redis", "app") if k in report and report[k]["ok"] is False]
    if len(down) >= 3:
        return "full_infrastructure_failure"
    if "mongodb" in down:
        return "database_server_failure"
    if not down:
        return "data_corruption (every service answers: check the data)"
    return f"partial outage: {', '.join(down)} down"


def detect(run: DrRun, step=None) -> dict[str, Any]:
    """Probe MongoDB (production and the restore target), Redis and the app endpoint."""
    report = {"mongodb": probe_mongo(run, run.source.conn_id), "restore_target": probe_mongo(run, run.target_conn_id),
              "app": probe_http(run.policy.ops.app_health_url)}
    redis_src = cache_source(run.policy)
    if redis_src is not None:
        report["redis"] = probe_redis(run, redis_src.conn_id)
    report["looks_like"] = looks_like(report)
    for name, r in report.items():
        if isinstance(r, dict):
            state = "UP" if r.get("ok") else f"DOWN ({r.get('error')})" if r.get("ok") is False else r.get("error")
            run.log.info("detect %-15s %s", name, state)
    run.log.info("this run: scenario %s; the probes look like: %s", run.scenario.name, report["looks_like"])
    return report


def health_check(run: DrRun, step=None) -> dict[str, Any]:
    """After recovery: the target answers and the app's health URL is OK (and the Redis target)."""
    report = {"restore_target": probe_mongo(run, run.target_conn_id), "app": probe_http(run.policy.ops.app_health_url)}
    if run.redis_target_conn_id and any(s.kind == "restore_redis" for s in run.scenario.steps):
        report["redis_target"] = probe_redis(run, run.redis_target_conn_id)
    bad = {k: v for k, v in report.items() if v.get("ok") is False}
    if bad and not run.dry_run:
        raise DrStepFailed("post-recovery health check failed: " + "; ".join(f"{k}: {v.get('error') or v}" for k, v in bad.items()))
    report["checked_at"] = datetime.now(timezone.utc).isoformat()
    return report
