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
"""

from __future__ import annotations

import difflib
import os
import re
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any, Callable

import yaml
from croniter import croniter

from backup_dr.core.durations import format_duration, parse_duration
from backup_dr.core.errors import PolicyError
from backup_dr.core.policy_model import (
    STEP_KINDS,
    Alerts,
    BackupClass,
    Defaults,
    Encryption,
    FilesSource,
    Gfs,
    GitSource,
    Job,
    MongoSource,
    ObjectLock,
    Objective,
    Ops,
    PitrSpec,
    Policy,
    RedisSource,
    Retention,
    Scenario,
    Schedule,
    Source,
    Step,
    StoreSpec,
)

_NAME = re.compile(r"^[a-z][a-z0-9_]{0,62}$")
_ENV = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}")
_PRESETS = {
    "@hourly": "0 * * * *",
    "@daily": "0 0 * * *",
    "@weekly": "0 0 * * 0",
    "@monthly": "0 0 1 * *",
    "@yearly": "0 0 1 1 *",
}
_FATAL_SECTIONS = ("", "version", "defaults", "alerts", "ops")


class _Issues(list):
    """Problems found so far, as (field path, reason)."""

    def add(self, path: str, reason: str) -> None:
        self.append((path, reason))

    def under(self, prefix: str) -> bool:
        return any(p == prefix or p.startswith(prefix + ".") or p.startswith(prefix + "[") for p, _ in self)


# --------------------------------------------------------------------------- YAML


class _UniqueKeyLoader(yaml.SafeLoader):
    """SafeLoader that refuses duplicate mapping keys (PyYAML silently keeps the last one)."""


def _construct_mapping(loader: _UniqueKeyLoader, node: yaml.MappingNode, deep: bool = False):
    seen: dict[Any, int] = {}
    for key_node, _ in node.value:
        key = loader.construct_object(key_node, deep=deep)
        if key in seen:
            raise yaml.constructor.ConstructorError(
                None,
                None,
                f"duplicate name {key!r} (first defined on line {seen[key] + 1})",
                key_node.start_mark,
            )
        seen[key] = key_node.start_mark.line
    return yaml.SafeLoader.construct_mapping(loader, node, deep=deep)


_UniqueKeyLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _construct_mapping)


def _expand_env(value: Any) -> Any:
    if isinstance(value, str):
        return _ENV.sub(lambda m: os.environ.get(m.group(1)) or (m.group(2) or ""), value)
    if isinstance(value, list):
        return [_expand_env(v) for v in value]
    if isinstance(value, dict):
        return {k: _expand_env(v) for k, v in value.items()}
    return value


def read_policy_document(path: str | os.PathLike) -> dict:
    """Read the YAML (the only I/O DAG parsing does); syntax errors name line and column."""
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8")
    except OSError as e:
        raise PolicyError([("", f"cannot read policy file: {e.strerror}")], source=str(p)) from e
    try:
        doc = yaml.load(text, Loader=_UniqueKeyLoader)  # noqa: S506 - SafeLoader subclass
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        where = f"line {mark.line + 1}, column {mark.column + 1}: " if mark else ""
        problem = getattr(e, "problem", None) or str(e)
        raise PolicyError([("", f"YAML syntax error at {where}{problem}")], source=str(p)) from e
    if not isinstance(doc, dict):
        raise PolicyError([("", "the policy file must be a mapping of sections")], source=str(p))
    return _expand_env(doc)


# --------------------------------------------------------------------------- field readers


class _Reader:
    """Typed access to one mapping, recording problems under its path instead of raising."""

    def __init__(self, issues: _Issues, path: str, data: Any, allowed: tuple[str, ...], required: tuple[str, ...] = ()):
        self.issues, self.path = issues, path
        self.ok = isinstance(data, dict)
        self.data = data if self.ok else {}
        if not self.ok:
            issues.add(path, f"must be a mapping, got {_type_name(data)}")
            return
        for key in self.data:
            if key not in allowed:
                close = difflib.get_close_matches(str(key), allowed, n=1)
                hint = f" (did you mean {close[0]!r}?)" if close else f" (allowed: {', '.join(allowed)})"
                issues.add(self._p(key), f"unknown key{hint}")
        for key in required:
            if key not in self.data:
                issues.add(self._p(key), "is required")

    def _p(self, key: Any) -> str:
        return f"{self.path}.{key}" if self.path else str(key)

    def has(self, key: str) -> bool:
        return key in self.data

    def get(self, key: str, conv: Callable[[Any], Any], default: Any = None) -> Any:
        if key not in self.data or self.data[key] is None and default is not None:
            return default
        try:
            return conv(self.data[key])
        except (TypeError, ValueError) as e:
            self.issues.add(self._p(key), str(e))
            return default

    def str(self, key: str, default: str | None = None) -> str | None:
        return self.get(key, _as_str, default)

    def name_list(self, key: str) -> tuple[str, ...]:
        return self.get(key, _as_str_list, ())


def _type_name(v: Any) -> str:
    return {dict: "a mapping", list: "a list", str: "a string", bool: "a boolean", int: "an integer", float: "a number"}.get(
        type(v), "nothing" if v is None else type(v).__name__
    )


def _as_str(v: Any) -> str:
    if not isinstance(v, str) or not v.strip():
        raise ValueError(f"must be a non-empty string, got {_type_name(v)}")
    return v.strip()


def _as_str_list(v: Any) -> tuple[str, ...]:
    if not isinstance(v, list) or not all(isinstance(x, str) and x for x in v):
        raise ValueError(f"must be a list of strings, got {_type_name(v)}")
    dup = sorted({x for x in v if v.count(x) > 1})
    if dup:
        raise ValueError(f"duplicate name(s): {', '.join(dup)}")
    return tuple(v)


def _as_int(minimum: int) -> Callable[[Any], int]:
    def conv(v: Any) -> int:
        if isinstance(v, bool) or not isinstance(v, int):
            raise ValueError(f"must be an integer, got {_type_name(v)}")
        if v < minimum:
            raise ValueError(f"must be >= {minimum}, got {v}")
        return v

    return conv


def _as_bool(v: Any) -> bool:
    if not isinstance(v, bool):
        raise ValueError(f"must be true or false, got {_type_name(v)}")
    return v


def _as_duration(v: Any) -> timedelta:
    return parse_duration(v)


def _one_of(*choices: str) -> Callable[[Any], str]:
    def conv(v: Any) -> str:
        if v not in choices:
            raise ValueError(f"{v!r} is not one of: {', '.join(choices)}")
        return v

    return conv


def _check_name(issues: _Issues, path: str, name: Any) -> bool:
    if not isinstance(name, str) or not _NAME.match(name):
        issues.add(path, f"name {name!r} must be lower-case letters, digits and '_' (it becomes a DAG id and a path)")
        return False
    return True


def _cron_interval(expr: str) -> timedelta:
    """Longest gap between consecutive runs over a year of a cron expression."""
    it = croniter(expr, datetime(2026, 1, 1))
    prev, longest = it.get_next(datetime), timedelta(0)
    for _ in range(600):
        nxt = it.get_next(datetime)
        longest = max(longest, nxt - prev)
        prev = nxt
        if nxt.year > 2026:
            break
    return longest


def parse_cron(text: Any) -> tuple[str, timedelta]:
    """Validate a cron expression or preset; return it and its longest interval."""
    if not isinstance(text, str):
        raise ValueError(f"must be a cron expression string, got {_type_name(text)}")
    expr = _PRESETS.get(text.strip(), text.strip())
    if len(expr.split()) != 5 or not croniter.is_valid(expr):
        raise ValueError(
            f"{text!r} is not a valid cron expression (5 fields: minute hour day-of-month month day-of-week, "
            f"e.g. '0 */4 * * *', or one of {', '.join(_PRESETS)})"
        )
    return expr, _cron_interval(expr)


# --------------------------------------------------------------------------- sections


def _parse_defaults(issues: _Issues, data: Any) -> Defaults:
    if data is None:
        return Defaults()
    r = _Reader(issues, "defaults", data, ("owner", "timezone", "retries", "retry_delay", "max_retry_delay"))
    d = Defaults()
    return Defaults(
        owner=r.str("owner", d.owner),
        timezone=r.str("timezone", d.timezone),
        retries=r.get("retries", _as_int(0), d.retries),
        retry_delay=r.get("retry_delay", _as_duration, d.retry_delay),
        max_retry_delay=r.get("max_retry_delay", _as_duration, d.max_retry_delay),
    )


def _parse_objectives(issues: _Issues, data: Any) -> dict[str, Objective]:
    out: dict[str, Objective] = {}
    if not isinstance(data, dict) or not data:
        issues.add("recovery_objectives", "must be a mapping of tiers, e.g. critical_services: {rpo: 4h, rto: 30m}")
        return out
    for name, body in data.items():
        path = f"recovery_objectives.{name}"
        if not _check_name(issues, path, name):
            continue
        r = _Reader(issues, path, body, ("rpo", "rto"), ("rpo", "rto"))
        rpo, rto = r.get("rpo", _as_duration), r.get("rto", _as_duration)
        if rpo and rto:
            out[name] = Objective(name, rpo, rto)
    return out


def _parse_store(issues: _Issues, name: str, body: Any) -> StoreSpec | None:
    path = f"stores.{name}"
    r = _Reader(issues, path, body, ("type", "path", "bucket", "prefix", "conn_id", "object_lock", "encryption"), ("type",))
    kind = r.get("type", _one_of("local", "s3", "gcs"))
    lock = None
    if r.has("object_lock"):
        lr = _Reader(issues, f"{path}.object_lock", r.data["object_lock"], ("mode",), ("mode",))
        mode = lr.get("mode", _one_of("COMPLIANCE", "GOVERNANCE"))
        lock = ObjectLock(mode) if mode else None
        if kind and kind != "s3":
            issues.add(f"{path}.object_lock", f"Object Lock is an S3 feature; store type is {kind!r}")
    if r.has("encryption"):
        issues.add(f"{path}.encryption", "client-side encryption is set per backup class, not per store: move it to "
                   "classes.<name>.encryption (each class's files are encrypted once, so every store holds the same "
                   "ciphertext and one manifest)")
    spec = StoreSpec(
        name=name,
        type=kind or "local",
        path=r.str("path"),
        bucket=r.str("bucket"),
        prefix=(r.get("prefix", lambda v: "" if v in (None, "") else _as_str(v), "") or "").strip("/"),
        conn_id=r.str("conn_id"),
        object_lock=lock,
    )
    if kind == "local" and issues.under(f"{path}.path"):
        pass
    elif kind == "local" and not spec.path:
        issues.add(f"{path}.path", "a local store needs an absolute path")
    elif kind == "local" and not os.path.isabs(spec.path):
        issues.add(f"{path}.path", f"{spec.path!r} must be an absolute path")
    if kind in ("s3", "gcs"):
        if not spec.bucket and not issues.under(f"{path}.bucket"):
            issues.add(f"{path}.bucket", f"an {kind} store needs a bucket")
        if not spec.conn_id and not issues.under(f"{path}.conn_id"):
            issues.add(f"{path}.conn_id", f"an {kind} store needs the Airflow connection id holding its credentials")
    return None if issues.under(path) else spec


def _parse_source(issues: _Issues, name: str, body: Any) -> Source | None:
    path = f"sources.{name}"
    kind = body.get("type") if isinstance(body, dict) else None
    common = ("type",)
    if kind == "mongodb":
        r = _Reader(issues, path, body, common + ("conn_id", "database", "collections", "read_preference", "compression", "format"), ("conn_id", "database"))
        src: Source = MongoSource(
            name=name,
            conn_id=r.str("conn_id") or "",
            database=r.str("database") or "",
            collections=r.name_list("collections"),
            read_preference=r.get(
                "read_preference",
                _one_of("primary", "primaryPreferred", "secondary", "secondaryPreferred", "nearest"),
                "secondaryPreferred",
            ),
            compression=r.get("compression", _one_of("gzip", "zstd", "none"), "gzip"),
            format=r.get("format", _one_of("archive", "directory"), "archive"),
        )
    elif kind == "redis":
        r = _Reader(issues, path, body, common + ("conn_id", "mode", "data_dir", "restart_command"), ("conn_id",))
        src = RedisSource(
            name=name,
            conn_id=r.str("conn_id") or "",
            mode=r.get("mode", _one_of("replication", "bgsave", "aof"), "replication"),
            data_dir=r.str("data_dir"),
            restart_command=r.get("restart_command", _as_str_list, ()),
        )
        if src.mode in ("bgsave", "aof") and not src.data_dir:
            issues.add(f"{path}.data_dir", f"mode {src.mode!r} copies files from the server's data dir; give its path")
    elif kind == "files":
        r = _Reader(issues, path, body, common + ("path", "include", "exclude", "modified_within", "compression"), ("path",))
        src = FilesSource(
            name=name,
            path=r.str("path") or "",
            include=r.name_list("include"),
            exclude=r.name_list("exclude"),
            modified_within=r.get("modified_within", _as_duration),
            compression=r.get("compression", _one_of("zstd", "gzip"), "zstd"),
        )
    elif kind == "git":
        r = _Reader(issues, path, body, common + ("path",), ("path",))
        src = GitSource(name=name, path=r.str("path") or "")
    else:
        issues.add(f"{path}.type", f"{kind!r} is not one of: mongodb, redis, files, git")
        return None
    return None if issues.under(path) else src


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
               "encryption")
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


def _parse_alerts(issues: _Issues, data: Any) -> Alerts:
    r = _Reader(issues, "alerts", data, ("email", "slack"))
    email_conn, email_to, slack_conn = None, (), None
    if r.has("email"):
        er = _Reader(issues, "alerts.email", r.data["email"], ("conn_id", "to"), ("conn_id", "to"))
        email_conn, email_to = er.str("conn_id"), er.name_list("to")
        for i, addr in enumerate(email_to):
            if "@" not in addr:
                issues.add(f"alerts.email.to[{i}]", f"{addr!r} is not an email address")
    if r.has("slack"):
        sr = _Reader(issues, "alerts.slack", r.data["slack"], ("conn_id",), ("conn_id",))
        slack_conn = sr.str("conn_id")
    if r.ok and not (r.has("email") or r.has("slack")):
        issues.add("alerts", "define at least one alert route (email or slack): failures must reach a person")
    return Alerts(email_conn, email_to, slack_conn)


def _parse_ops(issues: _Issues, data: Any) -> Ops:
    if data is None:
        return Ops()
    r = _Reader(issues, "ops", data, ("health_schedule", "drill_schedule", "drill_scratch", "app_health_url", "repoint_webhook_conn_id"))
    scratch = None
    if r.has("drill_scratch"):
        sr = _Reader(issues, "ops.drill_scratch", r.data["drill_scratch"], ("mongodb_conn_id",))
        scratch = sr.str("mongodb_conn_id")
    return Ops(
        health_schedule=r.get("health_schedule", lambda v: parse_cron(v)[0], Ops.health_schedule),
        drill_schedule=r.get("drill_schedule", lambda v: parse_cron(v)[0], Ops.drill_schedule),
        scratch_mongodb_conn_id=scratch,
        app_health_url=r.str("app_health_url"),
        repoint_webhook_conn_id=r.str("repoint_webhook_conn_id"),
    )


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


def default_policy_path() -> Path:
    """``$BACKUP_DR_POLICY``, else ``include/policy.yaml`` of this project / Airflow home."""
    env = os.environ.get("BACKUP_DR_POLICY")
    if env:
        return Path(env)
    here = Path(__file__).resolve()
    for parent in here.parents:
        candidate = parent / "include" / "policy.yaml"
        if candidate.is_file():
            return candidate
    return Path(os.environ.get("AIRFLOW_HOME", "/opt/airflow")) / "include" / "policy.yaml"
