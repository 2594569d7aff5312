"""The RPO / health check: how old is the newest good backup of every source, in every store?

A deadline catches a run that is late, never a run that did not happen; this check looks at
what actually exists in the stores. For every class and source it reports the newest
complete backup per store (its manifest exists only after replication re-read and hashed
every byte) and its age against the class RPO — the age of its DATA, from the capture
point the manifest records (the dump's consistent point, the snapshot time), never from
the slot in its id: a 19:00 run that dumped at 22:15 is as fresh as 22:15 — the last restore drill against the RTO,
and store reachability and capacity. The report is plain JSON (the seed's monitor wrote
one too), kept in the local store, and drives the alerts and the UI page.

Statuses, per source then rolled up (worst wins):

* ``critical``: no backup at all, the freshest copy in any store is older than the RPO,
  the newest copy failed verification or its last drill failed, a store is unreachable.
* ``warning``: one store's copy is older than the RPO while another is fresh (redundancy
  degraded), the last drill exceeded the RTO or is overdue, a local store is nearly full.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import Any, Callable, Mapping

from backup_dr.core.artifacts.layout import ROOT, kind_for, utc
from backup_dr.core.artifacts.manifest import iso
from backup_dr.core.catalog import Catalog, last_drill, newest_captured
from backup_dr.core.durations import format_duration
from backup_dr.core.errors import BackupDRError
from backup_dr.core.policy_model import BackupClass, Policy
from backup_dr.core.stores.base import Store

log = logging.getLogger(__name__)

REPORT_PREFIX = f"{ROOT}/_reports/health/"
LATEST_REPORT = REPORT_PREFIX + "latest.json"
_RANK = {"healthy": 0, "warning": 1, "critical": 2}
LOW_SPACE_FRACTION = 0.10
DRILL_STALE_AFTER = timedelta(hours=48)


def worst(*statuses: str) -> str:
    return max(statuses, key=lambda s: _RANK[s], default="healthy")


@dataclass
class Finding:
    status: str
    message: str


@dataclass
class HealthReport:
    generated_at: datetime
    classes: dict[str, Any] = field(default_factory=dict)
    stores: dict[str, Any] = field(default_factory=dict)
    findings: list[Finding] = field(default_factory=list)

    @property
    def status(self) -> str:
        return worst(*(f.status for f in self.findings))

    @property
    def reasons(self) -> list[str]:
        return [f"{f.status}: {f.message}" for f in sorted(self.findings, key=lambda f: -_RANK[f.status]) if f.status != "healthy"]

    def to_dict(self) -> dict[str, Any]:
        return {"generated_at": iso(self.generated_at), "status": self.status, "reasons": self.reasons,
                "classes": self.classes, "stores": self.stores}


def _store_summary(store: Store, stats: dict[str, int]) -> dict[str, Any]:
    info: dict[str, Any] = {"type": store.type, "location": store.describe(), "reachable": True, **stats}
    free = store.free_bytes()
    if free is not None:
        import shutil

        root = getattr(store, "root", None)
        total = shutil.disk_usage(root).total if root is not None and root.exists() else None
        info.update(free_bytes=free, total_bytes=total)
    return info


def _scan_stores(stores: Mapping[str, Store], report: HealthReport) -> None:
    for name, store in stores.items():
        objects = size = 0
        try:
            for obj in store.list(ROOT + "/"):
                objects += 1
                size += obj.size
        except BackupDRError as e:
            report.stores[name] = {"type": store.type, "location": store.describe(), "reachable": False, "error": e.message}
            report.findings.append(Finding("critical", f"store {name} ({store.describe()}) is unreachable: {e.message}"))
            continue
        info = _store_summary(store, {"objects": objects, "bytes": size})
        report.stores[name] = info
        if info.get("free_bytes") is not None and info.get("total_bytes"):
            frac = info["free_bytes"] / info["total_bytes"]
            info["free_fraction"] = round(frac, 4)
            if frac < LOW_SPACE_FRACTION:
                report.findings.append(Finding("warning", f"store {name} has only {frac:.0%} free ({info['free_bytes'] / 1e9:.1f} GB)"))


def _check_source(cls: BackupClass, source_name: str, kind: str, catalog: Catalog, now: datetime,
                  report: HealthReport) -> dict[str, Any]:
    rpo = cls.objective.rpo
    event_driven = cls.schedule.interval is None
    label = f"{cls.name}/{source_name}"
    entries = catalog.list(cls.name, source_name, kind)
    out: dict[str, Any] = {"kind": kind, "stores": {}, "backups": len(entries)}
    statuses = []
    blind = [n for n in cls.stores if not report.stores.get(n, {}).get("reachable", True)]
    for store in blind:  # the store finding says why
        out["stores"][store] = {"newest": None, "status": "critical", "message": f"{label}: store {store} unreachable"}
        statuses.append("critical")
    if not entries:
        status = "critical" if blind or not event_driven else "warning"
        report.findings.append(Finding(status, f"{label}: no complete {kind} backup in any store"))
        out["status"] = status
        return out
    newest = newest_captured(entries) or entries[0]
    out["newest"] = newest.backup_id
    try:
        out["recovery_point"] = iso(newest.captured_at)
    except BackupDRError as e:
        report.findings.append(Finding("critical", f"{label}: newest backup {newest.backup_id} has an unreadable manifest: {e.message}"))
    freshest_age = None
    for store in cls.stores:
        if store not in catalog.stores:
            continue
        newest_here = newest_captured(entries, store=store)
        row: dict[str, Any] = {"newest": None, "status": "warning"}
        if newest_here is None:
            row["message"] = f"{label}: store {store} holds no complete backup (redundancy below policy)"
        else:
            captured = newest_here.captured_at
            age = now - captured
            freshest_age = age if freshest_age is None else min(freshest_age, age)
            rec = newest_here.verification(store)
            row.update(newest=newest_here.backup_id, captured_at=iso(captured), age_seconds=int(age.total_seconds()),
                       size=newest_here.copies[store].size,
                       verified=None if rec is None else rec.get("ok"), verified_at=(rec or {}).get("checked_at"))
            if rec is not None and rec.get("ok") is False:
                row.update(status="critical", message=f"{label}: {newest_here.backup_id} in {store} FAILED verification: "
                           + "; ".join(rec.get("problems") or [rec.get("error", "see record")]))
            elif not event_driven and age > rpo:
                row.update(status="warning", message=f"{label}: newest backup in {store} was captured {format_duration(age)} ago "
                                                     f"(RPO {format_duration(rpo)})")
            else:
                row["status"] = "healthy"
        out["stores"][store] = row
        statuses.append(row["status"])
        if row["status"] != "healthy":
            report.findings.append(Finding(row["status"], row["message"]))
    if not event_driven and freshest_age is not None and freshest_age > rpo:
        report.findings.append(Finding("critical", f"{label}: RPO BREACHED: the freshest backup's data was captured "
                                                   f"{format_duration(freshest_age)} ago (RPO {format_duration(rpo)})"))
        statuses.append("critical")
    out["rpo_seconds"] = int(rpo.total_seconds())
    out["freshest_age_seconds"] = None if freshest_age is None else int(freshest_age.total_seconds())
    drill = last_drill(entries, stores=cls.stores)
    out["last_drill"] = drill and {k: drill.get(k) for k in ("backup_id", "store", "checked_at", "ok", "restore_seconds",
                                                             "fetch_seconds", "rto_seconds", "problems", "dag_run")}
    rto = cls.objective.rto
    if drill is None:
        statuses.append("warning")
        report.findings.append(Finding("warning", f"{label}: no restore drill on record (run ops_restore_drill)"))
    else:
        checked = datetime.fromisoformat(drill["checked_at"].replace("Z", "+00:00"))
        if drill.get("ok") is False:
            statuses.append("critical")
            report.findings.append(Finding("critical", f"{label}: last restore drill FAILED ({drill.get('backup_id')}): " + "; ".join(drill.get("problems") or [])))
        elif (drill.get("restore_seconds") or 0) > rto.total_seconds():
            statuses.append("warning")
            report.findings.append(Finding("warning", f"{label}: last drill restored in {format_duration(timedelta(seconds=drill['restore_seconds']))}, over the RTO {format_duration(rto)}"))
        if now - checked > DRILL_STALE_AFTER:
            statuses.append("warning")
            report.findings.append(Finding("warning", f"{label}: last restore drill was {format_duration(now - checked)} ago"))
    out["status"] = worst(*statuses)
    return out


def _unavailable_stores(policy: Policy, unavailable: Mapping[str, str], report: HealthReport) -> None:
    """Stores whose client could not even be built (a broken connection, missing credentials): as
    blind a spot as a store that does not answer, so a finding, critical when a class keeps copies there."""
    for name, why in unavailable.items():
        spec = policy.stores.get(name)
        report.stores[name] = {"type": spec.type if spec else None, "reachable": False, "error": why}
        users = [c.name for c in policy.classes.values() if name in c.stores]
        pitr = [f"pitr {p.source}" for p in policy.pitr.values() if name in p.stores]
        needed = f" (needed by {', '.join(users + pitr)})" if users or pitr else " (no class keeps copies there)"
        report.findings.append(Finding("critical" if users or pitr else "warning",
                                       f"store {name} is unreachable from here: {why}{needed}"))


def check_health(policy: Policy, stores: Mapping[str, Store], *, now: datetime | None = None,
                 unavailable: Mapping[str, str] | None = None,
                 extra_checks: list[Callable[[Policy, Catalog, HealthReport, datetime], None]] | None = None) -> HealthReport:
    """Build the health report over every class of the policy. Never raises for a bad store.

    :param unavailable: stores that could not be opened at all, with the reason: each is a
        finding (critical for a class or PITR chain that uses it) and makes those classes
        critical, exactly like a store that does not answer."""
    now = utc(now or datetime.now(timezone.utc))
    report = HealthReport(generated_at=now)
    _unavailable_stores(policy, unavailable or {}, report)
    _scan_stores(stores, report)
    reachable = {n: s for n, s in stores.items() if report.stores.get(n, {}).get("reachable")}
    catalog = Catalog(reachable)
    for cls in policy.classes.values():
        crow: dict[str, Any] = {
            "rpo_seconds": int(cls.objective.rpo.total_seconds()), "rto_seconds": int(cls.objective.rto.total_seconds()),
            "objective": cls.objective.name, "schedule": cls.schedule.cron or cls.schedule.kind, "stores": list(cls.stores),
            "sources": {},
        }
        for job in cls.jobs:
            src = policy.sources[job.source]
            kind = kind_for(src, metadata_only=job.metadata_only)
            key = job.source + ("_schema" if job.metadata_only else "")
            crow["sources"][key] = _check_source(cls, job.source, kind, catalog, now, report)
        crow["status"] = worst(*(s["status"] for s in crow["sources"].values()))
        report.classes[cls.name] = crow
    for check in extra_checks or ():
        check(policy, catalog, report, now)
    if not report.findings:
        report.findings.append(Finding("healthy", "every source has a fresh, verified backup in every store"))
    return report


def save_report(store: Store, report: HealthReport) -> str:
    """Keep the report in the (local) store: a dated copy and ``latest.json``."""
    body = (json.dumps(report.to_dict(), indent=2, ensure_ascii=False, default=str) + "\n").encode("utf-8")
    key = f"{REPORT_PREFIX}{report.generated_at:%Y/%m/%d}/health-{report.generated_at:%Y%m%dT%H%M%SZ}.json"
    store.put_bytes(key, body)
    store.put_bytes(LATEST_REPORT, body)
    return key


def prune_reports(store: Store, *, keep: timedelta = timedelta(days=90), now: datetime | None = None) -> int:
    """Delete dated reports older than ``keep``; returns how many went."""
    limit = utc(now or datetime.now(timezone.utc)) - keep
    gone = 0
    for obj in list(store.list(REPORT_PREFIX)):
        name = obj.key.rsplit("/", 1)[-1]
        if not name.startswith("health-"):
            continue
        stamp = datetime.strptime(name[len("health-"):-len(".json")], "%Y%m%dT%H%M%SZ").replace(tzinfo=timezone.utc)
        if stamp < limit:
            store.delete(obj.key)
            gone += 1
    return gone


def load_latest_report(store: Store) -> dict[str, Any] | None:
    if store.stat(LATEST_REPORT) is None:
        return None
    return json.loads(store.get_bytes(LATEST_REPORT))
