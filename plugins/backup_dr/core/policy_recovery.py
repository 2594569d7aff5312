"""The recovery sections of the policy: ``pitr`` entries and ``dr_scenarios``.

Both depend on other entries (a backup class, sources, stores, ``ops`` fields). When one of
those is invalid, the problem recorded here is a *knock-on* linked to it (``caused_by``), so
the error DAG, the alert and ``policy check`` show the root cause, not "invalid class".
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from backup_dr.core.durations import format_duration
from backup_dr.core.policy_fields import _as_bool, _as_duration, _check_name, _Issues, _one_of, _Reader, unknown_name
from backup_dr.core.engines import engine_for, engine_labels as _labels
from backup_dr.core.policy_model import STEP_KINDS, PitrSpec, Scenario, Step


def raw_entry(doc: dict, section: str, name: Any) -> Any:
    data = doc.get(section)
    return data.get(name) if isinstance(data, dict) and isinstance(name, str) else None


def raw_job_sources(doc: dict, class_name: str) -> set[str]:
    """Sources a class names in the file, even when the class itself is invalid."""
    body = raw_entry(doc, "classes", class_name)
    jobs = body.get("jobs") if isinstance(body, dict) else None
    return {j["source"] for j in jobs if isinstance(j, dict) and isinstance(j.get("source"), str)} if isinstance(jobs, list) else set()


def raw_source_type(doc: dict, name: str) -> Any:
    body = raw_entry(doc, "sources", name)
    return body.get("type") if isinstance(body, dict) else None


def check_class_ref(issues: _Issues, path: str, cls_name: Any, parts: dict[str, Any], broken: dict[str, set[str]]) -> Any:
    """The class a pitr entry / scenario names: valid, or a knock-on of its own problems, or unknown."""
    cls = parts["classes"].get(cls_name)
    if cls is None and cls_name in broken["classes"]:
        issues.add(path, f"class {cls_name!r} is invalid (see classes.{cls_name})", caused_by=f"classes.{cls_name}")
    elif cls is None and cls_name:
        issues.add(path, unknown_name("class", cls_name, set(parts["classes"]) | broken["classes"]))
    return cls


def check_store_refs(issues: _Issues, path: str, stores: tuple[str, ...], parts: dict[str, Any], broken: dict[str, set[str]]) -> None:
    for i, s in enumerate(stores):
        if s in broken["stores"]:
            issues.add(f"{path}[{i}]", f"store {s!r} has errors (see stores.{s})", caused_by=f"stores.{s}")
        elif s not in parts["stores"]:
            issues.add(f"{path}[{i}]", unknown_name("store", s, set(parts["stores"]) | broken["stores"]))


def parse_pitr(issues: _Issues, name: str, body: Any, parts: dict[str, Any], broken: dict[str, set[str]]) -> PitrSpec | None:
    path = f"pitr.{name}"
    r = _Reader(issues, path, body, ("backup_class", "interval", "stores"), ("backup_class", "stores"))
    src = parts["sources"].get(name)
    if name in broken["sources"]:
        issues.add(path, f"source {name!r} has errors (see sources.{name})", caused_by=f"sources.{name}")
    elif src is None or not engine_for(src).pitr:
        issues.add(path, f"point-in-time recovery needs a {_labels('pitr')} source; {name!r} is {'unknown' if src is None else src.type}")
    cls_name = r.str("backup_class")
    cls = check_class_ref(issues, f"{path}.backup_class", cls_name, parts, broken)
    if cls is not None and not any(j.source == name and not j.metadata_only for j in cls.jobs):
        issues.add(f"{path}.backup_class", f"class {cls_name!r} takes no full backup of {name!r} to chain slices after")
    stores = r.name_list("stores")
    check_store_refs(issues, f"{path}.stores", stores, parts, broken)
    interval = r.get("interval", _as_duration, timedelta(minutes=15))
    if cls is not None and interval >= cls.objective.rpo:
        issues.add(f"{path}.interval", f"{format_duration(interval)} must be shorter than the class RPO {format_duration(cls.objective.rpo)}")
    if issues.under(path):
        return None
    return PitrSpec(source=name, backup_class=cls_name, interval=interval, stores=stores)


def _parse_steps(issues: _Issues, path: str, raw_steps: Any, parts: dict[str, Any], broken: dict[str, set[str]]) -> list[Step]:
    steps: list[Step] = []
    if not isinstance(raw_steps, list) or not raw_steps:
        issues.add(f"{path}.steps", "a scenario needs a list of steps")
        return steps
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
        step = Step(kind=kind, name=step_name, title=sr.str("title", step_name.replace("_", " ")),
                    instructions=sr.str("instructions", "") or "", point_in_time=sr.get("point_in_time", _as_bool, False),
                    sources=sr.name_list("sources"))
        if kind == "approval" and not step.instructions:
            issues.add(f"{sp}.instructions", "an approval step must tell the operator what to do")
        for s in step.sources:
            if s in broken["sources"]:
                issues.add(f"{sp}.sources", f"source {s!r} has errors (see sources.{s})", caused_by=f"sources.{s}")
            elif s not in parts["sources"] or engine_for(parts["sources"][s]).dr_role != "files":
                issues.add(f"{sp}.sources", f"{s!r} is not a files source")
        steps.append(step)
    return steps


#: ops fields a DR step kind relies on: when the field is invalid, the scenario is too.
_STEP_NEEDS_OPS = {"repoint": "ops.repoint_webhook_conn_id", "health_check": "ops.app_health_url", "detect": "ops.app_health_url"}


def _check_step_backups(issues: _Issues, path: str, steps: list[Step], doc: dict, parts: dict[str, Any],
                        broken: dict[str, set[str]]) -> None:
    """Each restore step needs a valid class backing up what it restores (a Redis source, the files
    sources it names); when only an invalid class does, the problem is that class's."""
    for i, step in enumerate(steps):
        sp = f"{path}.steps[{i}]"
        needs = _STEP_NEEDS_OPS.get(step.kind)
        if needs and issues.under(needs):
            issues.add(sp, f"step {step.name!r} uses {needs}, which is invalid (see {needs})", caused_by=needs)
        targets: list[tuple[str, set[str]]] = []
        if step.kind == "restore_redis":
            redis = {n for n in (doc.get("sources") or {}) if raw_source_type(doc, n) == "redis"} if isinstance(doc.get("sources"), dict) else set()
            targets = [("a Redis source", redis)]
        elif step.kind == "restore_files":
            targets = [(f"files source {s!r}", {s}) for s in step.sources]
        for what, names in targets:
            if any(j.source in names for c in parts["classes"].values() for j in c.jobs):
                continue
            culprit = next((c for c in sorted(broken["classes"]) if raw_job_sources(doc, c) & names), None)
            if culprit:
                issues.add(sp, f"step {step.name!r} restores {what}, backed up only by class {culprit!r}, which is invalid "
                           f"(see classes.{culprit})", caused_by=f"classes.{culprit}")
            elif not issues.under(sp):
                issues.add(sp, f"step {step.name!r} restores {what}, but no backup class backs it up")


def parse_scenario(issues: _Issues, name: str, body: Any, parts: dict[str, Any], broken: dict[str, set[str]], doc: dict) -> Scenario | None:
    path = f"dr_scenarios.{name}"
    r = _Reader(issues, path, body, ("title", "rpo", "rto", "backup_class", "steps", "target_conn_id", "redis_target_conn_id"),
                ("rpo", "rto", "backup_class", "steps"))
    rpo, rto = r.get("rpo", _as_duration), r.get("rto", _as_duration)
    cls_name = r.str("backup_class")
    cls = check_class_ref(issues, f"{path}.backup_class", cls_name, parts, broken)
    steps = _parse_steps(issues, path, r.data.get("steps"), parts, broken)
    _check_step_backups(issues, path, steps, doc, parts, broken)
    if cls is not None and any(s.kind in ("restore", "pick_backup") for s in steps) and not any(
            j.source in parts["sources"] and engine_for(parts["sources"][j.source]).dr_role == "database" and not j.metadata_only
            for j in cls.jobs):
        issues.add(f"{path}.backup_class", f"class {cls_name!r} takes no full {_labels('dr_role', 'database')} backup for the scenario to restore")
    if cls is not None and rpo:
        pitr = next((p for p in parts["pitr"].values() if p.backup_class == cls.name), None)
        best = pitr.interval if pitr else cls.schedule.interval
        if best and rpo < best:
            lost = next((n for n in sorted(broken["pitr"]) if isinstance(raw_entry(doc, "pitr", n), dict)
                         and raw_entry(doc, "pitr", n).get("backup_class") == cls.name), None)
            if pitr is None and doc.get("pitr") is not None and not isinstance(doc.get("pitr"), dict):
                lost = ""  # the whole section is unusable
            if pitr is None and lost is not None:
                entry = f"pitr.{lost}" if lost else "pitr"
                issues.add(f"{path}.rpo", f"{format_duration(rpo)} needs point-in-time recovery, and {entry} is invalid "
                           f"(see {entry})", caused_by=entry)
            else:
                issues.add(f"{path}.rpo", f"{format_duration(rpo)} cannot be met: the newest recovery point can be {format_duration(best)} old")
    if any(s.kind == "restore_redis" for s in steps) and not r.has("redis_target_conn_id"):
        issues.add(f"{path}.redis_target_conn_id", "a scenario with a restore_redis step needs the Redis connection to load into")
    title, target, redis_target = r.str("title", name) or name, r.str("target_conn_id"), r.str("redis_target_conn_id")
    if issues.under(path):  # decided after every field was read: a bad title invalidates the scenario too
        return None
    return Scenario(name=name, title=title, rpo=rpo, rto=rto, backup_class=cls_name, steps=tuple(steps),
                    target_conn_id=target, redis_target_conn_id=redis_target)
