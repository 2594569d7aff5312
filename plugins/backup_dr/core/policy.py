"""Load and validate ``include/policy.yaml`` into :mod:`backup_dr.core.policy_model` objects.

Every problem is reported with the exact field path and the reason, e.g.
``classes.critical_data.retention: '1h' is shorter than the schedule interval 4h``.
All problems are collected in one pass, so a user fixes the file once, not once per error.

Two modes:

* ``strict=True`` (tests, CLI, CI): any problem raises :class:`PolicyError`.
* ``strict=False`` (DAG parsing): a broken class, scenario, store or source is dropped
  together with everything that depends on it, and listed in ``Policy.issues``, so one bad
  entry cannot take the other DAGs down. Problems in sections everything depends on
  (YAML syntax, ``version``, ``defaults``, ``alerts``, ``ops``) still raise.

Reading the file lives in :mod:`.policy_io`, the field readers in :mod:`.policy_fields`.
"""

from __future__ import annotations

import os
import re
from datetime import timedelta
from typing import Any, Callable

from backup_dr.core.durations import format_duration
from backup_dr.core.errors import PolicyError
from backup_dr.core.policy_fields import (  # noqa: F401 - parse_cron is part of this module's API
    _as_bool,
    _as_duration,
    _as_int,
    _as_queue,
    _check_name,
    _Issues,
    _one_of,
    _Reader,
    _type_name,
    parse_cron,
)
from backup_dr.core.policy_inventory import _parse_alerts, _parse_defaults, _parse_objectives, _parse_ops, _parse_source, _parse_store
from backup_dr.core.policy_io import default_policy_path, read_policy_document  # noqa: F401 - re-exported
from backup_dr.core.policy_model import (
    STEP_KINDS,
    BackupClass,
    Encryption,
    FilesSource,
    Gfs,
    Job,
    MongoSource,
    Objective,
    PitrSpec,
    Policy,
    Retention,
    Scenario,
    Schedule,
    Source,
    Step,
)

_FATAL_SECTIONS = ("", "version", "defaults", "alerts", "ops")


# --------------------------------------------------------------------------- sections


def _parse_schedule(issues: _Issues, path: str, r: _Reader, class_name: str) -> Schedule | None:
    raw = r.data.get("schedule")
    if raw in (None, "manual"):
        return Schedule("manual")
    if raw == "on_deploy":
        uri = r.str("deploy_asset", f"backup-dr://deploys/{class_name}")
        return Schedule("on_deploy", asset_uri=uri)
    try:
        expr, interval = parse_cron(raw)
    except ValueError as e:
        issues.add(f"{path}.schedule", f"{e} (or 'on_deploy' / 'manual')")
        return None
    return Schedule("cron", cron=expr, interval=interval)


def _parse_job(issues: _Issues, path: str, body: Any, sources: dict[str, Source], broken: set[str]) -> Job | None:
    r = _Reader(issues, path, body, ("source", "priority", "timeout", "critical", "collections", "metadata_only"), ("source",))
    src_name = r.str("source")
    job = Job(
        source=src_name or "",
        priority=r.get("priority", _as_int(1), 1),
        timeout=r.get("timeout", _as_duration, timedelta(hours=1)),
        critical=r.get("critical", _as_bool, False),
        collections=r.name_list("collections"),
        metadata_only=r.get("metadata_only", _as_bool, False),
    )
    if src_name in broken:
        issues.add(f"{path}.source", f"source {src_name!r} has errors (see sources.{src_name})")
    elif src_name and src_name not in sources:
        issues.add(f"{path}.source", f"unknown source {src_name!r}; defined sources: {', '.join(sorted(sources)) or 'none'}")
    src = sources.get(src_name or "")
    if src is not None and not isinstance(src, MongoSource) and (job.collections or job.metadata_only):
        issues.add(path, f"collections / metadata_only apply to MongoDB sources only; {src_name!r} is {src.type}")
    if isinstance(src, MongoSource) and src.collections:
        extra = [c for c in job.collections if c not in src.collections]
        if extra:
            issues.add(f"{path}.collections", f"{', '.join(extra)} not in sources.{src_name}.collections ({', '.join(src.collections)})")
    return None if issues.under(path) else job


def _parse_class(
    issues: _Issues, name: str, body: Any, policy_parts: dict[str, Any], broken: dict[str, set[str]]
) -> BackupClass | None:
    path = f"classes.{name}"
    allowed = ("description", "schedule", "deploy_asset", "retention", "gfs", "stores", "objective", "rpo", "rto", "jobs",
               "encryption", "queue")
    r = _Reader(issues, path, body, allowed, ("schedule", "retention", "stores"))
    if not r.ok:
        return None
    schedule = _parse_schedule(issues, path, r, name)
    keep = r.get("retention", _as_duration)
    gfs = Gfs()
    if r.has("gfs"):
        gr = _Reader(issues, f"{path}.gfs", r.data["gfs"], ("hourly", "daily", "weekly", "monthly"))
        gfs = Gfs(**{k: gr.get(k, _as_int(0), 0) for k in ("hourly", "daily", "weekly", "monthly")})
    stores = r.name_list("stores")
    if r.has("stores") and not stores and not issues.under(f"{path}.stores"):
        issues.add(f"{path}.stores", "a backup class needs at least one store")
    for i, s in enumerate(stores):
        if s in broken["stores"]:
            issues.add(f"{path}.stores[{i}]", f"store {s!r} has errors (see stores.{s})")
        elif s not in policy_parts["stores"]:
            issues.add(f"{path}.stores[{i}]", f"unknown store {s!r}; defined stores: {', '.join(sorted(policy_parts['stores']))}")
    if stores and stores[0] not in ("",) and policy_parts["stores"].get(stores[0]) and policy_parts["stores"][stores[0]].type != "local":
        issues.add(f"{path}.stores", "the first store must be a local store: backups are staged there, then replicated")

    objective = _parse_class_objective(issues, path, r, policy_parts["objectives"])
    encryption = _parse_encryption(issues, f"{path}.encryption", r.data["encryption"]) if r.has("encryption") else None
    queue = r.get("queue", _as_queue)  # Celery queue of its replication/prune (backup_dr.core.routing)
    jobs_raw = r.data.get("jobs")
    jobs: list[Job] = []
    if not isinstance(jobs_raw, list) or not jobs_raw:
        issues.add(f"{path}.jobs", "a backup class needs at least one source (jobs: [{source: ...}])")
    else:
        seen: dict[tuple, int] = {}
        for i, jb in enumerate(jobs_raw):
            job = _parse_job(issues, f"{path}.jobs[{i}]", jb, policy_parts["sources"], broken["sources"])
            if job is None:
                continue
            key = (job.source, job.metadata_only)
            if key in seen:
                issues.add(f"{path}.jobs[{i}].source", f"duplicate name: source {job.source!r} is already backed up by jobs[{seen[key]}]")
            seen[key] = i
            jobs.append(job)
    if schedule and schedule.interval and keep and keep < schedule.interval:
        issues.add(
            f"{path}.retention",
            f"{r.data['retention']!r} is shorter than the schedule interval {format_duration(schedule.interval)}: "
            "every backup would expire before the next one is taken",
        )
    if schedule and schedule.interval and objective and objective.rpo < schedule.interval:
        issues.add(
            f"{path}.objective" if r.has("objective") and not r.has("rpo") else f"{path}.rpo",
            f"RPO {format_duration(objective.rpo)} ({objective.name}) is shorter than the class frequency "
            f"{format_duration(schedule.interval)}: a backup every {format_duration(schedule.interval)} cannot meet it; "
            "run the class more often or choose a looser objective",
        )
    if issues.under(path) or not (schedule and keep and objective):
        return None
    return BackupClass(
        name=name,
        description=r.str("description", "") or "",
        schedule=schedule,
        retention=Retention(keep_within=keep, gfs=gfs, text=str(r.data["retention"])),
        stores=stores,
        objective=objective,
        jobs=tuple(sorted(jobs, key=lambda j: j.priority)),
        encryption=encryption,
        queue=queue,
    )


def _parse_encryption(issues: _Issues, path: str, body: Any) -> Encryption | None:
    """``{key_conn_id: <connection holding the master key or keyring>}``."""
    er = _Reader(issues, path, body, ("key_conn_id",), ("key_conn_id",))
    conn = er.str("key_conn_id")
    if conn is not None and not re.fullmatch(r"[A-Za-z0-9_.-]+", conn):
        issues.add(f"{path}.key_conn_id", f"{conn!r} is not a connection id (letters, digits, '_', '.', '-')")
        return None
    return Encryption(conn) if conn else None


def _parse_class_objective(issues: _Issues, path: str, r: _Reader, objectives: dict[str, Objective]) -> Objective | None:
    tier_name = r.str("objective")
    tier = None
    if tier_name is not None:
        tier = objectives.get(tier_name)
        if tier is None:
            issues.add(f"{path}.objective", f"unknown objective {tier_name!r}; defined: {', '.join(sorted(objectives))}")
            return None
    rpo, rto = r.get("rpo", _as_duration), r.get("rto", _as_duration)
    if tier is None and not (rpo and rto):
        if not issues.under(f"{path}.rpo") and not issues.under(f"{path}.rto"):
            issues.add(f"{path}.objective", "give an objective tier (recovery_objectives) or both rpo and rto")
        return None
    return Objective(
        name=tier.name if tier and not (rpo or rto) else (f"{tier.name} (overridden)" if tier else "class-specific"),
        rpo=rpo or tier.rpo,
        rto=rto or tier.rto,
    )


def _parse_pitr(issues: _Issues, name: str, body: Any, parts: dict[str, Any], broken: dict[str, set[str]]) -> PitrSpec | None:
    path = f"pitr.{name}"
    r = _Reader(issues, path, body, ("backup_class", "interval", "stores"), ("backup_class", "stores"))
    src = parts["sources"].get(name)
    if name in broken["sources"]:
        issues.add(path, f"source {name!r} has errors (see sources.{name})")
    elif not isinstance(src, MongoSource):
        issues.add(path, f"point-in-time recovery needs a MongoDB source; {name!r} is {'unknown' if src is None else src.type}")
    cls_name = r.str("backup_class")
    cls = parts["classes"].get(cls_name)
    if cls_name and cls is None:
        issues.add(f"{path}.backup_class", f"unknown or invalid class {cls_name!r}")
    elif cls is not None and not any(j.source == name and not j.metadata_only for j in cls.jobs):
        issues.add(f"{path}.backup_class", f"class {cls_name!r} takes no full backup of {name!r} to chain slices after")
    stores = r.name_list("stores")
    for i, s in enumerate(stores):
        if s not in parts["stores"]:
            issues.add(f"{path}.stores[{i}]", f"unknown store {s!r}; defined stores: {', '.join(sorted(parts['stores']))}")
    interval = r.get("interval", _as_duration, timedelta(minutes=15))
    if cls is not None and interval >= cls.objective.rpo:
        issues.add(f"{path}.interval", f"{format_duration(interval)} must be shorter than the class RPO {format_duration(cls.objective.rpo)}")
    if issues.under(path):
        return None
    return PitrSpec(source=name, backup_class=cls_name, interval=interval, stores=stores)


def _parse_scenario(issues: _Issues, name: str, body: Any, parts: dict[str, Any]) -> Scenario | None:
    path = f"dr_scenarios.{name}"
    r = _Reader(issues, path, body, ("title", "rpo", "rto", "backup_class", "steps", "target_conn_id", "redis_target_conn_id"),
                ("rpo", "rto", "backup_class", "steps"))
    rpo, rto = r.get("rpo", _as_duration), r.get("rto", _as_duration)
    cls_name = r.str("backup_class")
    cls = parts["classes"].get(cls_name)
    if cls_name and cls is None:
        issues.add(f"{path}.backup_class", f"unknown or invalid class {cls_name!r}")
    steps: list[Step] = []
    raw_steps = r.data.get("steps")
    if not isinstance(raw_steps, list) or not raw_steps:
        issues.add(f"{path}.steps", "a scenario needs a list of steps")
        raw_steps = []
    names: set[str] = set()
    for i, sb in enumerate(raw_steps):
        sp = f"{path}.steps[{i}]"
        sr = _Reader(issues, sp, sb, ("kind", "name", "title", "instructions", "point_in_time", "sources"), ("kind",))
        kind = sr.get("kind", _one_of(*STEP_KINDS))
        if not kind:
            continue
        step_name = sr.str("name", kind)
        if _check_name(issues, f"{sp}.name", step_name) and step_name in names:
            issues.add(f"{sp}.name", f"duplicate name {step_name!r}: give each step of a kind used twice its own name")
        names.add(step_name)
        step = Step(
            kind=kind,
            name=step_name,
            title=sr.str("title", step_name.replace("_", " ")),
            instructions=sr.str("instructions", "") or "",
            point_in_time=sr.get("point_in_time", _as_bool, False),
            sources=sr.name_list("sources"),
        )
        if kind == "approval" and not step.instructions:
            issues.add(f"{sp}.instructions", "an approval step must tell the operator what to do")
        for s in step.sources:
            if not isinstance(parts["sources"].get(s), FilesSource):
                issues.add(f"{sp}.sources", f"{s!r} is not a files source")
        steps.append(step)
    if cls is not None and rpo:
        pitr = next((p for p in parts["pitr"].values() if p.backup_class == cls.name), None)
        best = pitr.interval if pitr else cls.schedule.interval
        if best and rpo < best:
            issues.add(f"{path}.rpo", f"{format_duration(rpo)} cannot be met: the newest recovery point can be {format_duration(best)} old")
    if any(s.kind == "restore_redis" for s in steps) and not r.has("redis_target_conn_id"):
        issues.add(f"{path}.redis_target_conn_id", "a scenario with a restore_redis step needs the Redis connection to load into")
    if issues.under(path):
        return None
    return Scenario(name=name, title=r.str("title", name) or name, rpo=rpo, rto=rto, backup_class=cls_name, steps=tuple(steps),
                    target_conn_id=r.str("target_conn_id"), redis_target_conn_id=r.str("redis_target_conn_id"))


def _named_entries(issues: _Issues, section: str, data: Any, parse: Callable[[str, Any], Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    if data is None:
        return out
    if not isinstance(data, dict):
        issues.add(section, f"must be a mapping of named entries, got {_type_name(data)}")
        return out
    for name in sorted(data):
        if _check_name(issues, f"{section}.{name}", name):
            obj = parse(name, data[name])
            if obj is not None:
                out[name] = obj
    return out


# --------------------------------------------------------------------------- entry point


def parse_policy(doc: dict, *, strict: bool = True, source: str | None = None) -> Policy:
    """Validate an already-read policy document. See the module docstring for the modes."""
    issues = _Issues()
    top = _Reader(
        issues, "", doc,
        ("version", "defaults", "recovery_objectives", "stores", "sources", "classes", "pitr", "dr_scenarios", "alerts", "ops"),
        ("version", "recovery_objectives", "stores", "sources", "classes", "alerts"),
    )
    if doc.get("version", 1) != 1:
        issues.add("version", f"unsupported policy version {doc.get('version')!r}; this release reads version 1")
    defaults = _parse_defaults(issues, doc.get("defaults"))
    alerts = _parse_alerts(issues, doc.get("alerts"))
    ops = _parse_ops(issues, doc.get("ops"))
    parts: dict[str, Any] = {"objectives": _parse_objectives(issues, doc.get("recovery_objectives"))}
    parts["stores"] = _named_entries(issues, "stores", doc.get("stores"), lambda n, b: _parse_store(issues, n, b))
    parts["sources"] = _named_entries(issues, "sources", doc.get("sources"), lambda n, b: _parse_source(issues, n, b))
    raw = lambda key: set(doc.get(key) or {}) if isinstance(doc.get(key), dict) else set()  # noqa: E731
    broken = {"stores": raw("stores") - set(parts["stores"]), "sources": raw("sources") - set(parts["sources"])}
    parts["classes"] = _named_entries(issues, "classes", doc.get("classes"), lambda n, b: _parse_class(issues, n, b, parts, broken))
    parts["pitr"] = _named_entries(issues, "pitr", doc.get("pitr"), lambda n, b: _parse_pitr(issues, n, b, parts, broken))
    parts["scenarios"] = _named_entries(issues, "dr_scenarios", doc.get("dr_scenarios"), lambda n, b: _parse_scenario(issues, n, b, parts))
    if strict and issues:
        raise PolicyError(list(issues), source=source)
    fatal = [(p, m) for p, m in issues if p.split(".")[0].split("[")[0] in _FATAL_SECTIONS or p == "recovery_objectives"]
    if fatal or not top.ok:
        raise PolicyError(fatal or list(issues), source=source)
    return Policy(
        version=1,
        defaults=defaults,
        objectives=parts["objectives"],
        stores=parts["stores"],
        sources=parts["sources"],
        classes=parts["classes"],
        pitr=parts["pitr"],
        scenarios=parts["scenarios"],
        alerts=alerts,
        ops=ops,
        issues=tuple(issues),
        path=source,
    )


def load_policy(path: str | os.PathLike, *, strict: bool = True) -> Policy:
    """Read and validate a policy file. ``strict=False`` drops broken entries instead of raising."""
    return parse_policy(read_policy_document(path), strict=strict, source=str(path))
