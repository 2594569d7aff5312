"""Everything the backup catalog page shows, assembled from the stores and the latest health report.

The stores are the catalog (see :mod:`backup_dr.core.catalog`): what the page lists is what
a restore would find, not what some database remembers. The hourly health report adds what
only it knows (store usage, its findings) and, once the PITR module writes it, the
restorable point-in-time window per source (``classes.<c>.sources.<s>.pitr``:
``{"from": iso, "to": iso, "status": ...}``); a ``pitr_lookup`` callable can supply that
window directly instead. Ages are computed at request time, so the colours stay right
between two health runs.

Plain functions over core objects (no FastAPI, no Airflow) so they are tested directly and
a CLI could print the same data. Nothing here raises for a bad store or an unreadable
manifest: the page must still render in the middle of an incident, showing what is wrong.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import Any, Callable

from backup_dr.core.artifacts.layout import kind_for, utc
from backup_dr.core.artifacts.manifest import iso, parse_iso
from backup_dr.core.catalog import Catalog, CatalogEntry, last_drill, newest_captured
from backup_dr.core.errors import BackupDRError
from backup_dr.core.policy_model import BackupClass, Job, Policy
from backup_dr.core.stores.base import Store
from backup_dr.ui.status import (
    AMBER, GREEN, GREY, RED, age_color, color_of, drill_color, scrub, verification_color, worst,
)

log = logging.getLogger(__name__)

TABLE_ROWS = 8  # newest backups listed per source
HISTORY_POINTS = 60  # backups drawn in the size / duration chart
REPORT_REASONS = 50
#: The health DAG runs hourly; an older report means nobody is watching the RPO any more.
REPORT_STALE_AFTER = timedelta(hours=3)

PitrLookup = Callable[[str, str], "dict[str, Any] | None"]


@dataclass
class CatalogInputs:
    """What one page build reads. ``store_errors``: stores that could not even be opened."""

    policy: Policy
    stores: dict[str, Store]
    store_errors: dict[str, str] = field(default_factory=dict)
    report: dict[str, Any] | None = None
    pitr_lookup: PitrLookup | None = None


def _duration(manifest) -> float | None:
    started, finished = parse_iso(manifest.started_at), parse_iso(manifest.finished_at)
    return None if started is None or finished is None else round((finished - started).total_seconds(), 3)


def _manifest_facts(entry: CatalogEntry) -> dict[str, Any]:
    try:
        m = entry.manifest()
    except BackupDRError as e:
        return {"manifest_error": e.message}
    return {"started_at": m.started_at, "finished_at": m.finished_at, "duration_seconds": _duration(m),
            "files": len(m.files), "counts_total": sum(v for v in m.counts.values() if isinstance(v, int))}


def _age(entry: CatalogEntry, now: datetime) -> int | None:
    """Seconds since the entry's data was captured (None: its manifest cannot be read)."""
    try:
        return int((now - entry.captured_at).total_seconds())
    except BackupDRError:
        return None


def _backup_row(entry: CatalogEntry, now: datetime) -> dict[str, Any]:
    row = entry.to_dict(with_verification=True)
    color, label = verification_color(row["verification_state"]["state"])
    row.update(age_seconds=_age(entry, now), verification={"color": color, "label": label},
               **_manifest_facts(entry))
    return row


def _history(entries: list[CatalogEntry]) -> list[dict[str, Any]]:
    points = []
    for entry in reversed(entries[:HISTORY_POINTS]):
        facts = _manifest_facts(entry)
        points.append({"backup_id": entry.backup_id, "taken_at": entry.to_dict(with_verification=False)["taken_at"], "size": entry.size,
                       "duration_seconds": facts.get("duration_seconds")})
    return points


def _drill_row(rec: dict[str, Any] | None) -> dict[str, Any] | None:
    keep = ("backup_id", "store", "checked_at", "ok", "restore_seconds", "fetch_seconds", "rto_seconds", "problems", "dag_run")
    return None if rec is None else {k: rec.get(k) for k in keep}


def _store_freshness(cls: BackupClass, entries: list[CatalogEntry], unreachable: dict[str, str], now: datetime,
                     rpo: float, event_driven: bool) -> list[dict[str, Any]]:
    rows = []
    for name in cls.stores:
        if name in unreachable:
            rows.append({"store": name, "color": RED, "newest": None, "taken_at": None, "age_seconds": None,
                         "message": f"unreachable: {unreachable[name]}"})
            continue
        newest = newest_captured(entries, store=name)
        if newest is None:
            rows.append({"store": name, "color": AMBER if entries else RED, "newest": None, "taken_at": None,
                         "age_seconds": None, "message": "holds no complete backup (redundancy below policy)"})
            continue
        age = _age(newest, now)
        rows.append({"store": name, "color": age_color(age, rpo, event_driven=event_driven), "newest": newest.backup_id,
                     "taken_at": iso(newest.captured_or_none()), "age_seconds": age, "message": None})
    return rows


def _pitr(inputs: CatalogInputs, cls: BackupClass, job: Job, key: str, report_row: dict[str, Any], now: datetime,
          kind: str) -> dict[str, Any]:
    policy = inputs.policy
    spec = next((p for p in policy.pitr.values() if p.source == job.source and p.backup_class == cls.name), None)
    if kind != "full":
        return {"applicable": False, "configured": False, "available": False, "color": GREY, "text": "n/a"}
    window = inputs.pitr_lookup(cls.name, key) if inputs.pitr_lookup else None
    if window is None:
        window = report_row.get("pitr") if isinstance(report_row.get("pitr"), dict) else None
    out: dict[str, Any] = {"applicable": True, "configured": spec is not None, "available": False, "color": GREY,
                           "text": "n/a", "interval_seconds": int(spec.interval.total_seconds()) if spec else None}
    if not window or not window.get("to"):
        return out
    start, end = parse_iso(str(window.get("from"))) if window.get("from") else None, parse_iso(str(window["to"]))
    lag = int((now - end).total_seconds())
    color = color_of(window.get("status"))
    if color == GREY:  # no status word from the producer: judge the lag behind now
        limit = 2 * spec.interval.total_seconds() if spec else cls.objective.rpo.total_seconds()
        color = GREEN if lag <= limit else (AMBER if lag <= cls.objective.rpo.total_seconds() else RED)
    out.update(available=True, color=color, text=None, status=window.get("status"), lag_seconds=lag,
               **{"from": iso(start) if start else None, "to": iso(end)})
    return out


def _report_row(report: dict[str, Any] | None, cls: str, key: str) -> dict[str, Any]:
    row = (((report or {}).get("classes") or {}).get(cls) or {}).get("sources", {}).get(key)
    return row if isinstance(row, dict) else {}


def _health(report: dict[str, Any] | None, cls: str, source: str, row: dict[str, Any]) -> dict[str, Any] | None:
    if report is None:
        return None
    label = f"{cls}/{source}:"
    reasons = [r for r in report.get("reasons") or [] if label in r]
    return {"status": row.get("status"), "color": color_of(row.get("status")), "reasons": reasons}


def _source_block(inputs: CatalogInputs, cls: BackupClass, job: Job, catalog: Catalog, unreachable: dict[str, str],
                  now: datetime) -> dict[str, Any]:
    policy = inputs.policy
    src = policy.sources[job.source]
    kind = kind_for(src, metadata_only=job.metadata_only)
    key = job.source + ("_schema" if job.metadata_only else "")
    rpo, rto = cls.objective.rpo.total_seconds(), cls.objective.rto.total_seconds()
    event_driven = cls.schedule.interval is None
    entries = catalog.list(cls.name, job.source, kind)
    unreachable.update(catalog.errors)
    newest = newest_captured(entries)
    age = _age(newest, now) if newest else None
    table = [_backup_row(e, now) for e in entries[:TABLE_ROWS]]
    if newest is not None and all(r["backup_id"] != newest.backup_id for r in table):
        table = [_backup_row(newest, now)] + table[: TABLE_ROWS - 1]
    table.sort(key=lambda r: (r.get("taken_at") or "", r["backup_id"]), reverse=True)  # newest data first
    try:
        drill = _drill_row(last_drill(entries))
    except BackupDRError as e:  # a store failing mid-page: show the rest
        log.warning("catalog page: drill records of %s/%s unreadable: %s", cls.name, job.source, e.message)
        drill = None
    d_color, d_reason = drill_color(drill, rto, now)
    report_row = _report_row(inputs.report, cls.name, key)
    if drill is None and isinstance(report_row.get("last_drill"), dict):  # older than our lookback
        drill = report_row["last_drill"]
        d_color, d_reason = drill_color(drill, rto, now)
    stores = _store_freshness(cls, entries, unreachable, now, rpo, event_driven)
    pitr = _pitr(inputs, cls, job, key, report_row, now, kind)
    a_color = age_color(age, rpo, event_driven=event_driven)
    newest_verification = table[0]["verification"]["color"] if table else GREY
    return {
        "key": key, "source": job.source, "type": src.type, "kind": kind, "event_driven": event_driven,
        "rpo_seconds": int(rpo), "rto_seconds": int(rto), "backups": len(entries),
        "newest": table[0] if table else None,
        "age": {"seconds": age, "color": a_color, "rpo_seconds": int(rpo)},
        "stores": stores,
        "last_drill": {"record": drill, "color": d_color, "reason": d_reason, "rto_seconds": int(rto)},
        "pitr": pitr,
        "health": _health(inputs.report, cls.name, job.source, report_row),
        "table": table,
        "history": _history(entries),
        # One store behind (or gone) while the source itself is fresh: redundancy degraded, amber;
        # the source's own age already turns red when the RPO is breached.
        "color": worst(a_color, d_color, newest_verification, pitr["color"], *(AMBER if s["color"] == RED else s["color"] for s in stores)),
    }


def _class_block(inputs: CatalogInputs, cls: BackupClass, unreachable: dict[str, str], now: datetime) -> dict[str, Any]:
    catalog = Catalog({n: inputs.stores[n] for n in cls.stores if n in inputs.stores})
    sources = [_source_block(inputs, cls, job, catalog, unreachable, now) for job in sorted(cls.jobs, key=lambda j: j.priority)]
    return {
        "name": cls.name, "description": cls.description, "schedule": cls.schedule.cron or cls.schedule.kind,
        "event_driven": cls.schedule.interval is None, "objective": cls.objective.name,
        "rpo_seconds": int(cls.objective.rpo.total_seconds()), "rto_seconds": int(cls.objective.rto.total_seconds()),
        "retention": cls.retention.text, "stores": list(cls.stores), "sources": sources,
        "health_status": (((inputs.report or {}).get("classes") or {}).get(cls.name) or {}).get("status"),
        "color": worst(*(s["color"] for s in sources)),
    }


def _report_block(report: dict[str, Any] | None, now: datetime) -> dict[str, Any] | None:
    if report is None:
        return None
    generated = parse_iso(report.get("generated_at")) if report.get("generated_at") else None
    age = int((now - generated).total_seconds()) if generated else None
    reasons = list(report.get("reasons") or [])
    return {"generated_at": report.get("generated_at"), "status": report.get("status"), "color": color_of(report.get("status")),
            "age_seconds": age, "stale": age is None or age > REPORT_STALE_AFTER.total_seconds(),
            "reasons": reasons[:REPORT_REASONS], "more_reasons": max(0, len(reasons) - REPORT_REASONS)}


def _location(spec) -> str:
    """Where a store is, from the policy alone (for stores that could not be opened)."""
    if spec.type == "local":
        return str(spec.path)
    scheme = "s3" if spec.type == "s3" else "gs"
    return f"{scheme}://{spec.bucket}/{spec.prefix}" if spec.prefix else f"{scheme}://{spec.bucket}"


def _stores_block(inputs: CatalogInputs, unreachable: dict[str, str], now: datetime) -> list[dict[str, Any]]:
    """One card per store. Its figures are of two ages, and the card says both: reachability is
    as of this build (``checked_at``, when the store was listed), usage as of the health report
    that measured it (``usage_as_of``, up to an hour older)."""
    stats = (inputs.report or {}).get("stores") or {}
    measured = (inputs.report or {}).get("generated_at")
    rows = []
    for name, spec in inputs.policy.stores.items():
        store = inputs.stores.get(name)
        error = inputs.store_errors.get(name) or unreachable.get(name)
        row: dict[str, Any] = {"name": name, "type": spec.type, "location": store.describe() if store else _location(spec),
                               "reachable": error is None, "error": error, "color": GREEN if error is None else RED,
                               "classes": [c.name for c in inputs.policy.classes.values() if name in c.stores]}
        s = stats.get(name) or {}
        row["usage"] = {k: s[k] for k in ("objects", "bytes", "free_bytes", "total_bytes") if k in s} or None
        row["checked_at"] = iso(now)
        row["usage_as_of"] = measured if row["usage"] else None
        rows.append(row)
    return rows


def build_catalog(inputs: CatalogInputs, *, now: datetime | None = None) -> dict[str, Any]:
    """The whole page as JSON-ready data (secrets scrubbed). One listing per store and source."""
    now = utc(now or datetime.now(timezone.utc))
    unreachable = dict(inputs.store_errors)
    ordered = sorted(inputs.policy.classes.values(), key=lambda c: (c.objective.rpo, c.name))  # tightest RPO first
    classes = [_class_block(inputs, cls, unreachable, now) for cls in ordered]
    stores = _stores_block(inputs, unreachable, now)
    report = _report_block(inputs.report, now)
    data = {
        "generated_at": iso(now),
        "color": worst(*(c["color"] for c in classes), *(s["color"] for s in stores),
                       AMBER if report is None or report["stale"] else GREY),
        "health_report": report,
        "stores": stores,
        "classes": classes,
        "policy_issues": [f"{p}: {r}" for p, r in inputs.policy.issues],
    }
    return scrub(data)


def class_view(data: dict[str, Any], name: str) -> dict[str, Any] | None:
    """One class of a built catalog, with the page-wide context it needs."""
    for cls in data["classes"]:
        if cls["name"] == name:
            return {"generated_at": data["generated_at"], "health_report": data["health_report"], "class": cls}
    return None


__all__ = ["CatalogInputs", "build_catalog", "class_view", "GREEN", "AMBER", "RED", "GREY"]
