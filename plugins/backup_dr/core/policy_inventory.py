"""The inventory sections of the policy: defaults, objective tiers, stores, sources, alerts, ops.

Each parser validates one section into :mod:`backup_dr.core.policy_model` objects and records
problems (never raises); :mod:`backup_dr.core.policy` ties the sections together.
"""

from __future__ import annotations

import os
from typing import Any, Callable

from backup_dr.core.policy_fields import (
    _as_duration,
    _as_int,
    _as_queue,
    _as_str,
    _as_str_list,
    _check_name,
    _has_unset,
    _Issues,
    _one_of,
    _Reader,
    _short,
    _type_name,
    cron_expression,
)
from backup_dr.core.policy_model import (
    Alerts,
    Defaults,
    FilesSource,
    GitSource,
    MongoSource,
    ObjectLock,
    Objective,
    Ops,
    PostgresSource,
    RedisSource,
    Source,
    StoreSpec,
)
from backup_dr.core.errors import PolicyError
from backup_dr.core.times import NAIVE_RULES, BadTimeInput, zone


def _parse_defaults(issues: _Issues, data: Any) -> Defaults:
    if data is None:
        return Defaults()
    r = _Reader(issues, "defaults", data, ("owner", "timezone", "naive_times", "retries", "retry_delay", "max_retry_delay"))
    d = Defaults()
    return Defaults(
        owner=r.str("owner", d.owner),
        timezone=r.get("timezone", _as_timezone, d.timezone),
        naive_times=r.get("naive_times", _one_of(*NAIVE_RULES), d.naive_times) or d.naive_times,
        retries=r.get("retries", _as_int(0, 20), d.retries),
        retry_delay=r.get("retry_delay", _as_duration, d.retry_delay),
        max_retry_delay=r.get("max_retry_delay", _as_duration, d.max_retry_delay),
    )


def _as_timezone(v: Any) -> str:
    """An IANA zone name such as ``Asia/Seoul`` (a typo would otherwise fail every DAG's timetable),
    checked by the one time module (:func:`backup_dr.core.times.zone`) that later reads times in it."""
    name = _as_str(v)
    try:
        zone(name)
    except BadTimeInput:
        raise ValueError(f"{_short(name, 40)} is not a time zone (use an IANA name such as 'Asia/Seoul' or 'UTC')") from None
    return name


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


def _mongodb(r: _Reader, name: str) -> Source:
    return MongoSource(
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
        queue=r.get("queue", _as_queue),
    )


def _redis(r: _Reader, name: str) -> Source:
    src = RedisSource(
        name=name,
        conn_id=r.str("conn_id") or "",
        mode=r.get("mode", _one_of("replication", "bgsave", "aof"), "replication"),
        data_dir=r.str("data_dir"),
        restart_command=r.get("restart_command", _as_str_list, ()),
        queue=r.get("queue", _as_queue),
    )
    if src.mode in ("bgsave", "aof") and not src.data_dir:
        r.issues.add(f"{r.path}.data_dir", f"mode {src.mode!r} copies files from the server's data dir; give its path")
    return src


def _files(r: _Reader, name: str) -> Source:
    return FilesSource(
        name=name,
        path=r.str("path") or "",
        include=r.name_list("include"),
        exclude=r.name_list("exclude"),
        modified_within=r.get("modified_within", _as_duration),
        compression=r.get("compression", _one_of("zstd", "gzip"), "zstd"),
        queue=r.get("queue", _as_queue),
    )


def _git(r: _Reader, name: str) -> Source:
    return GitSource(name=name, path=r.str("path") or "", queue=r.get("queue", _as_queue))


def _postgresql(r: _Reader, name: str) -> Source | None:
    try:
        return PostgresSource(name=name, conn_id=r.str("conn_id") or "", database=r.str("database"),
                              schemas=r.name_list("schemas"), exclude_tables=r.name_list("exclude_tables"),
                              queue=r.get("queue", _as_queue))
    except PolicyError as e:
        for where, why in e.issues:
            r.issues.add(where, why)
        return None


#: per source type (one per engine in :mod:`backup_dr.core.engines`): its fields, the required
#: ones, and the parser of the rest
SOURCE_FIELDS: dict[str, tuple[tuple[str, ...], tuple[str, ...], Callable[[_Reader, str], Source | None]]] = {
    "mongodb": (("conn_id", "database", "collections", "read_preference", "compression", "format"), ("conn_id", "database"), _mongodb),
    "redis": (("conn_id", "mode", "data_dir", "restart_command"), ("conn_id",), _redis),
    "files": (("path", "include", "exclude", "modified_within", "compression"), ("path",), _files),
    "git": (("path",), ("path",), _git),
    "postgresql": (("conn_id", "database", "schemas", "exclude_tables"), ("conn_id",), _postgresql),
}


def _parse_source(issues: _Issues, name: str, body: Any) -> Source | None:
    path = f"sources.{name}"
    kind = body.get("type") if isinstance(body, dict) else None
    if _has_unset(kind):
        return None  # reported at sources.<name>.type with the variable's name
    known = ", ".join(SOURCE_FIELDS)
    if isinstance(body, dict) and isinstance(kind, str) and kind in SOURCE_FIELDS:
        fields, required, parse = SOURCE_FIELDS[kind]
        src = parse(_Reader(issues, path, body, ("type", "queue") + fields, required), name)
    elif not isinstance(body, dict):
        issues.add(path, f"must be a mapping with a type ({known}), got {_type_name(body)}")
        return None
    else:
        try:
            _one_of(*SOURCE_FIELDS)(kind)
        except ValueError as e:
            issues.add(f"{path}.type", f"is required ({known})" if kind is None else str(e))
        return None
    return None if src is None or issues.under(path) else src


def _parse_alerts(issues: _Issues, data: Any, fallback: Alerts | None = None) -> Alerts:
    """The alert routes; in lenient mode (``fallback`` given) a broken route is replaced by the fallback's."""
    from backup_dr.core.policy_fallback import merge_routes

    routes = _read_alerts(issues, data)
    broken = {kind for kind in ("email", "slack") if issues.under(f"alerts.{kind}")}
    if any(p == "alerts" for p, _ in issues):
        broken = {"email", "slack"}
    return merge_routes(routes, fallback, broken)


def _read_alerts(issues: _Issues, data: Any) -> Alerts:
    r = _Reader(issues, "alerts", data, ("email", "slack"))
    email_conn, email_to, slack_conn = None, (), None
    if r.has("email"):
        er = _Reader(issues, "alerts.email", r.data["email"], ("conn_id", "to"), ("conn_id", "to"))
        email_conn, email_to = er.str("conn_id"), er.name_list("to")
        for i, addr in enumerate(email_to):
            if "@" not in addr:
                issues.add(f"alerts.email.to[{i}]", f"{_short(addr, 40)} is not an email address")
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
    scratch = pg_scratch = None
    if r.has("drill_scratch"):
        sr = _Reader(issues, "ops.drill_scratch", r.data["drill_scratch"], ("mongodb_conn_id", "postgresql_conn_id"))
        scratch, pg_scratch = sr.str("mongodb_conn_id"), sr.str("postgresql_conn_id")
    return Ops(
        health_schedule=r.get("health_schedule", cron_expression, Ops.health_schedule),
        drill_schedule=r.get("drill_schedule", cron_expression, Ops.drill_schedule),
        scratch_mongodb_conn_id=scratch,
        scratch_postgresql_conn_id=pg_scratch,
        app_health_url=r.str("app_health_url"),
        repoint_webhook_conn_id=r.str("repoint_webhook_conn_id"),
    )
