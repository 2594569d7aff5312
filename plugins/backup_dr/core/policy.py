"""Load and validate ``include/policy.yaml`` into :mod:`backup_dr.core.policy_model` objects.

Every problem is reported with the exact field path and the reason, e.g.
``classes.critical_data.retention: '1h' is shorter than the schedule interval 4h``.
All problems are collected in one pass, so a user fixes the file once, not once per error.

Two modes:

* ``strict=True`` (tests, CLI, CI): any problem raises :class:`PolicyError`.
* ``strict=False`` (DAG parsing, the CLI): a broken class, scenario, store or source is
  dropped together with everything that depends on it, and listed in ``Policy.issues``, with
  each knock-on linked to its root cause (``Policy.causes``, see :mod:`.policy_causes`), so
  one bad entry takes down exactly what uses it. A broken field that has a safe built-in
  default (``defaults.*``, ``ops.health_schedule``, ``ops.drill_schedule``) falls back to it;
  a broken alert route is replaced by the fallback route (:mod:`.policy_fallback`). Only a
  file that cannot be read as a policy at all (:class:`PolicyFileError`) or an unsupported
  ``version`` still raises.

Reading the file lives in :mod:`.policy_io`, the field readers in :mod:`.policy_fields`, the
``pitr`` and ``dr_scenarios`` sections in :mod:`.policy_recovery`.
"""

from __future__ import annotations

import os
import re
from datetime import timedelta
from typing import Any, Callable

from backup_dr.core.durations import format_duration
from backup_dr.core.engines import engine_for, engine_labels as _labels
from backup_dr.core.errors import PolicyError
from backup_dr.core.policy_fields import (  # noqa: F401 - parse_cron is part of this module's API
    _as_bool,
    _as_duration,
    _as_int,
    _as_queue,
    _check_name,
    _has_unset,
    _Issues,
    _Reader,
    _short,
    _type_name,
    parse_cron,
    unknown_name,
)
from backup_dr.core.policy_inventory import _parse_alerts, _parse_defaults, _parse_objectives, _parse_ops, _parse_source, _parse_store
from backup_dr.core.policy_io import (  # noqa: F401 - re-exported
    UnsetVariable,
    default_policy_path,
    policy_location,
    read_policy_document,
)
from backup_dr.core.policy_model import (
    Alerts,
    BackupClass,
    Encryption,
    Gfs,
    Job,
    MongoSource,
    Objective,
    Policy,
    Retention,
    Schedule,
    Source,
)
from backup_dr.core.policy_recovery import check_store_refs, parse_pitr, parse_scenario


# --------------------------------------------------------------------------- sections


def _parse_schedule(issues: _Issues, path: str, r: _Reader, class_name: str) -> Schedule | None:
    raw = r.data.get("schedule")
    if _has_unset(raw):
        return None  # reported at its path with the variable's name
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
        priority=r.get("priority", _as_int(1, 9), 1),
        timeout=r.get("timeout", _as_duration, timedelta(hours=1)),
        critical=r.get("critical", _as_bool, False),
        collections=r.name_list("collections"),
        metadata_only=r.get("metadata_only", _as_bool, False),
    )
    if src_name in broken:
        issues.add(f"{path}.source", f"source {src_name!r} has errors (see sources.{src_name})", caused_by=f"sources.{src_name}")
    elif src_name and src_name not in sources:
        issues.add(f"{path}.source", unknown_name("source", src_name, set(sources) | broken))
    src = sources.get(src_name or "")
    if src is not None and not engine_for(src).partial_jobs and (job.collections or job.metadata_only):
        issues.add(path, f"collections / metadata_only apply to {_labels('partial_jobs')} sources only; {src_name!r} is {src.type}")
    if isinstance(src, MongoSource) and src.collections:
        extra = [c for c in job.collections if c not in src.collections]
        if extra:
            issues.add(f"{path}.collections", f"{_names(extra)} not in sources.{src_name}.collections ({_names(src.collections)})")
    return None if issues.under(path) else job


def _names(names, limit: int = 300) -> str:
    """A list of names as messages quote it, cut short (a hostile policy may list thousands)."""
    text = ", ".join(names)
    return text if len(text) <= limit else f"{text[: limit - 20]}… ({len(names)} names)"


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
        gfs = Gfs(**{k: gr.get(k, _as_int(0, 1000), 0) for k in ("hourly", "daily", "weekly", "monthly")})
    stores = r.name_list("stores")
    if r.has("stores") and not stores and not issues.under(f"{path}.stores"):
        issues.add(f"{path}.stores", "a backup class needs at least one store")
    check_store_refs(issues, f"{path}.stores", stores, policy_parts, broken)
    if stores and stores[0] not in ("",) and policy_parts["stores"].get(stores[0]) and policy_parts["stores"][stores[0]].type != "local":
        issues.add(f"{path}.stores", "the first store must be a local store: backups are staged there, then replicated")

    objective = _parse_class_objective(issues, path, r, policy_parts["objectives"], broken)
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
            f"{_short(r.data['retention'])} is shorter than the schedule interval {format_duration(schedule.interval)}: "
            "every backup would expire before the next one is taken",
        )
    if schedule and schedule.interval and objective and objective.rpo < schedule.interval:
        issues.add(
            f"{path}.objective" if r.has("objective") and not r.has("rpo") else f"{path}.rpo",
            f"RPO {format_duration(objective.rpo)} ({objective.name}) is shorter than the class frequency "
            f"{format_duration(schedule.interval)}: a backup every {format_duration(schedule.interval)} cannot meet it; "
            "run the class more often or choose a looser objective",
        )
    description = r.str("description", "") or ""  # read before the verdict: a bad one invalidates the class too
    if issues.under(path) or not (schedule and keep and objective):
        return None
    return BackupClass(
        name=name,
        description=description,
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


def _parse_class_objective(issues: _Issues, path: str, r: _Reader, objectives: dict[str, Objective],
                           broken: dict[str, set[str]]) -> Objective | None:
    tier_name = r.str("objective")
    tier = None
    if tier_name is not None:
        tier = objectives.get(tier_name)
        if tier is None and (broken["objectives"] is None or tier_name in broken["objectives"]):
            entry = "recovery_objectives" if broken["objectives"] is None else f"recovery_objectives.{tier_name}"
            issues.add(f"{path}.objective", f"objective {tier_name!r} has errors (see {entry})", caused_by=entry)
            return None
        if tier is None:
            issues.add(f"{path}.objective", unknown_name("objective", tier_name, objectives))
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


def _named_entries(issues: _Issues, section: str, data: Any, parse: Callable[[str, Any], Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    if data is None:
        return out
    if not isinstance(data, dict):
        issues.add(section, f"must be a mapping of named entries, got {_type_name(data)}")
        return out
    for name in sorted(data, key=str):  # keys may be of mixed types (1, null, a date) in a broken file
        shown = name if isinstance(name, str) and len(name) <= 63 else _short(name, 40)
        if _check_name(issues, f"{section}.{shown}", name):
            obj = parse(name, data[name])
            if obj is not None:
                out[name] = obj
    return out


def unset_variable_issues(issues: _Issues, value: Any, path: str = "") -> None:
    """Every ``${VAR}`` without a value or default, reported at its field's path with the variable named."""
    if isinstance(value, UnsetVariable):
        for var in value.variables:
            close = value.suggestions.get(var)
            mean = f" (did you mean {close}?)" if close else ""
            issues.add(path, f"${{{var}}} is not set and has no default{mean}: set {var} in the environment, "
                             f"or write ${{{var}:-<default>}} in the policy")
    elif isinstance(value, dict):
        for k, v in value.items():
            unset_variable_issues(issues, v, f"{path}.{k}" if path else str(k))
    elif isinstance(value, list):
        for i, v in enumerate(value):
            unset_variable_issues(issues, v, f"{path}[{i}]")


# --------------------------------------------------------------------------- entry point


def parse_policy(doc: dict, *, strict: bool = True, source: str | None = None, fallback_alerts: Alerts | None = None) -> Policy:
    """Validate an already-read policy document. See the module docstring for the modes.

    ``fallback_alerts`` replaces the alert routes the document gets wrong (lenient mode)."""
    issues = _Issues()
    top = _Reader(
        issues, "", doc,
        ("version", "defaults", "recovery_objectives", "stores", "sources", "classes", "pitr", "dr_scenarios", "alerts", "ops"),
        ("version", "recovery_objectives", "stores", "sources", "classes", "alerts"),
    )
    unset_variable_issues(issues, doc if top.ok else {})
    doc = doc if top.ok else {}
    if doc.get("version", 1) != 1:
        issues.add("version", f"unsupported policy version {_short(doc.get('version'), 40)}; this release reads version 1")
    defaults = _parse_defaults(issues, doc.get("defaults"))
    alerts = _parse_alerts(issues, doc.get("alerts"), fallback_alerts)
    ops = _parse_ops(issues, doc.get("ops"))
    parts: dict[str, Any] = {"objectives": _parse_objectives(issues, doc.get("recovery_objectives"))}
    parts["stores"] = _named_entries(issues, "stores", doc.get("stores"), lambda n, b: _parse_store(issues, n, b))
    parts["sources"] = _named_entries(issues, "sources", doc.get("sources"), lambda n, b: _parse_source(issues, n, b))
    raw = lambda key: set(doc.get(key) or {}) if isinstance(doc.get(key), dict) else set()  # noqa: E731
    broken = {"stores": raw("stores") - set(parts["stores"]), "sources": raw("sources") - set(parts["sources"]),
              # None: the whole section is unusable, so every tier a class names is
              "objectives": raw("recovery_objectives") - set(parts["objectives"]) if doc.get("recovery_objectives")
              and isinstance(doc.get("recovery_objectives"), dict) else None}
    parts["classes"] = _named_entries(issues, "classes", doc.get("classes"), lambda n, b: _parse_class(issues, n, b, parts, broken))
    broken["classes"] = raw("classes") - set(parts["classes"])
    parts["pitr"] = _named_entries(issues, "pitr", doc.get("pitr"), lambda n, b: parse_pitr(issues, n, b, parts, broken))
    broken["pitr"] = raw("pitr") - set(parts["pitr"])
    parts["scenarios"] = _named_entries(issues, "dr_scenarios", doc.get("dr_scenarios"),
                                        lambda n, b: parse_scenario(issues, n, b, parts, broken, doc))
    if strict and issues:
        raise PolicyError(list(issues), source=source, causes=issues.causes)
    fatal = [(p, m) for p, m in issues if p in ("", "version")]
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
        causes=dict(issues.causes),
    )


def load_policy(path: str | os.PathLike, *, strict: bool = True, origin: str | None = None) -> Policy:
    """Read and validate a policy file. ``strict=False`` drops broken entries instead of raising;
    its broken alert routes are replaced by the fallback route of the environment."""
    from backup_dr.core.policy_fallback import fallback_alerts

    doc = read_policy_document(path, origin=origin)
    return parse_policy(doc, strict=strict, source=str(path), fallback_alerts=None if strict else fallback_alerts().alerts)
