"""``GET /backup-dr/metrics``: the catalog page's own data in the Prometheus text format.

Why the page's data and nothing else: an SRE alerting from Prometheus and an on-call person
looking at the page must see the same ages, sizes and drill results. So the series are
derived from what :func:`backup_dr.ui.data.build_catalog` assembled (the stores and the
latest health report, through the same time-limited cache), never from a second reading
of the stores. A scrape costs no store I/O while the cache is fresh, and at most what one
page view costs when it is not.

Ages are computed at scrape time from the backups' capture times (``taken_at`` in the page's
data, which is :attr:`backup_dr.core.catalog.CatalogEntry.captured_at`: the data's consistent
point, never the slot in the id), so they keep growing between two
rebuilds of the cache; the timestamps are exported as well, for rules that prefer
``time() - x``. Every series and its labels are listed in :data:`METRICS` (the README's
table and the alert rules' tests are checked against it).

Plain functions: no FastAPI, no Airflow; ``prometheus_client`` builds the exposition.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Iterator

from backup_dr.core.artifacts.manifest import parse_iso
from backup_dr.core.health import DRILL_STALE_AFTER

SRC = ("class", "source", "kind")  # one backup job: configuration backs up mongodb as kind "schema"
HEALTH_STATES = ("healthy", "warning", "critical")

#: name -> (labels, help). The complete list of what /metrics can serve.
METRICS: dict[str, tuple[tuple[str, ...], str]] = {
    "backup_dr_backup_age_seconds": (SRC + ("store",), "Age of the newest complete (read-back verified) backup in this store, from the backup's time"),
    "backup_dr_backup_timestamp_seconds": (SRC + ("store",), "Time (UNIX seconds) of the newest complete backup in this store"),
    "backup_dr_backups": (SRC, "Complete backups of this class/source/kind across the stores (0: none at all)"),
    "backup_dr_rpo_target_seconds": (("class",), "RPO of the class (absent for event-driven classes, which have no age limit)"),
    "backup_dr_rto_target_seconds": (("class",), "RTO of the class"),
    "backup_dr_last_backup_size_bytes": (SRC, "Size of the newest backup (data files, as stored)"),
    "backup_dr_previous_backup_size_bytes": (SRC, "Size of the backup before the newest one"),
    "backup_dr_last_backup_duration_seconds": (SRC, "How long the newest backup took (manifest start to finish)"),
    "backup_dr_last_backup_verification_failed": (SRC, "1 when the newest backup's verification records say it failed, else 0"),
    "backup_dr_last_backup_bad_copies": (SRC, "Copies of the newest backup whose latest check failed (another copy may still be good)"),
    "backup_dr_last_drill_restore_seconds": (SRC, "Restore time measured by the last restore drill"),
    "backup_dr_last_drill_timestamp_seconds": (SRC, "When the last restore drill ran"),
    "backup_dr_last_drill_success": (SRC, "1 when the last restore drill verified the restored data, 0 when it failed"),
    "backup_dr_drill_stale_after_seconds": ((), "A drill older than this is overdue (the health check's limit: two daily drill runs)"),
    "backup_dr_pitr_window_available": (SRC, "1 when a point-in-time window is known for this PITR-enabled source, else 0"),
    "backup_dr_pitr_window_start_timestamp_seconds": (SRC, "Earliest point the source can be restored to"),
    "backup_dr_pitr_window_end_timestamp_seconds": (SRC, "Latest point the source can be restored to"),
    "backup_dr_pitr_lag_seconds": (SRC, "How far the restorable window's end is behind now"),
    "backup_dr_pitr_slice_interval_seconds": (SRC, "Interval of the oplog slices (the lag's expected upper bound, plus the run time)"),
    "backup_dr_store_up": (("store", "type"), "1 when the store could be opened and listed, 0 when not"),
    "backup_dr_store_used_bytes": (("store", "type"), "Bytes under the store's backup prefix, as the last health check measured"),
    "backup_dr_store_objects": (("store", "type"), "Objects under the store's backup prefix, as the last health check measured"),
    "backup_dr_store_free_bytes": (("store", "type"), "Free bytes of a local store's filesystem, as the last health check measured"),
    "backup_dr_store_usage_timestamp_seconds": (("store", "type"), "When the store's usage figures were measured (the health report's time)"),
    "backup_dr_health_status": (("class", "status"), "1 for the class's status in the last health report (healthy, warning, critical), 0 for the others"),
    "backup_dr_health_report_timestamp_seconds": ((), "When the last health report was generated"),
    "backup_dr_catalog_timestamp_seconds": ((), "When the stores were last read for this data (the page cache's build time)"),
    "backup_dr_catalog_cache_age_seconds": ((), "Age of the cached catalog data this scrape was served from"),
}


def _ts(text: Any) -> float | None:
    try:
        when = parse_iso(str(text)) if text else None
    except ValueError:
        return None
    return when.timestamp() if when else None


def _num(value: Any) -> float | None:
    return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else None


def samples(data: dict[str, Any], *, now: datetime, cache_age: float) -> Iterator[tuple[str, dict[str, str], float]]:
    """(metric name, labels, value) for everything ``data`` (a built catalog) knows."""
    t_now = now.timestamp()
    yield "backup_dr_drill_stale_after_seconds", {}, DRILL_STALE_AFTER.total_seconds()
    built = _ts(data.get("generated_at"))
    if built is not None:
        yield "backup_dr_catalog_timestamp_seconds", {}, built
    yield "backup_dr_catalog_cache_age_seconds", {}, float(cache_age)
    for cls in data.get("classes") or []:
        name = cls["name"]
        if not cls.get("event_driven"):
            yield "backup_dr_rpo_target_seconds", {"class": name}, float(cls["rpo_seconds"])
        yield "backup_dr_rto_target_seconds", {"class": name}, float(cls["rto_seconds"])
        if cls.get("health_status") in HEALTH_STATES:
            for state in HEALTH_STATES:
                yield "backup_dr_health_status", {"class": name, "status": state}, float(cls["health_status"] == state)
        for src in cls.get("sources") or []:
            yield from _source_samples(name, src, t_now)
    for store in data.get("stores") or []:
        labels = {"store": store["name"], "type": store["type"]}
        yield "backup_dr_store_up", labels, float(bool(store.get("reachable")))
        usage = store.get("usage") or {}
        for key, metric in (("bytes", "backup_dr_store_used_bytes"), ("objects", "backup_dr_store_objects"),
                            ("free_bytes", "backup_dr_store_free_bytes")):
            if _num(usage.get(key)) is not None:
                yield metric, labels, float(usage[key])
        measured = _ts(store.get("usage_as_of"))
        if measured is not None:
            yield "backup_dr_store_usage_timestamp_seconds", labels, measured
    report = data.get("health_report") or {}
    generated = _ts(report.get("generated_at"))
    if generated is not None:
        yield "backup_dr_health_report_timestamp_seconds", {}, generated


def _source_samples(cls: str, src: dict[str, Any], t_now: float) -> Iterator[tuple[str, dict[str, str], float]]:
    labels = {"class": cls, "source": src["source"], "kind": src["kind"]}
    yield "backup_dr_backups", labels, float(src.get("backups") or 0)
    for copy in src.get("stores") or []:
        taken = _ts(copy.get("taken_at"))
        if taken is not None:
            per_store = {**labels, "store": copy["store"]}
            yield "backup_dr_backup_timestamp_seconds", per_store, taken
            yield "backup_dr_backup_age_seconds", per_store, t_now - taken
    table = src.get("table") or []
    newest = src.get("newest") or {}
    if newest:
        yield "backup_dr_last_backup_size_bytes", labels, float(newest.get("size") or 0)
        if _num(newest.get("duration_seconds")) is not None:
            yield "backup_dr_last_backup_duration_seconds", labels, float(newest["duration_seconds"])
        failed = (newest.get("verification") or {}).get("color") == "red"
        yield "backup_dr_last_backup_verification_failed", labels, float(failed)
        bad = sum(1 for c in (newest.get("stores") or {}).values() if isinstance(c, dict) and c.get("verified") is False)
        yield "backup_dr_last_backup_bad_copies", labels, float(bad)
    if len(table) > 1:
        yield "backup_dr_previous_backup_size_bytes", labels, float(table[1].get("size") or 0)
    drill = (src.get("last_drill") or {}).get("record") or {}
    if drill:
        if _num(drill.get("restore_seconds")) is not None:
            yield "backup_dr_last_drill_restore_seconds", labels, float(drill["restore_seconds"])
        checked = _ts(drill.get("checked_at"))
        if checked is not None:
            yield "backup_dr_last_drill_timestamp_seconds", labels, checked
        yield "backup_dr_last_drill_success", labels, float(drill.get("ok") is True)
    pitr = src.get("pitr") or {}
    if pitr.get("applicable") and pitr.get("configured"):
        yield "backup_dr_pitr_window_available", labels, float(bool(pitr.get("available")))
        if _num(pitr.get("interval_seconds")) is not None:
            yield "backup_dr_pitr_slice_interval_seconds", labels, float(pitr["interval_seconds"])
        start, end = _ts(pitr.get("from")), _ts(pitr.get("to"))
        if start is not None:
            yield "backup_dr_pitr_window_start_timestamp_seconds", labels, start
        if end is not None:
            yield "backup_dr_pitr_window_end_timestamp_seconds", labels, end
            yield "backup_dr_pitr_lag_seconds", labels, t_now - end


def render(data: dict[str, Any], *, now: datetime, cache_age: float) -> bytes:
    """The text exposition (``prometheus_client``'s own writer: escaping, HELP/TYPE lines)."""
    from prometheus_client import CollectorRegistry, generate_latest
    from prometheus_client.core import GaugeMetricFamily

    families: dict[str, GaugeMetricFamily] = {}
    for name, labels, value in samples(data, now=now, cache_age=cache_age):
        names, doc = METRICS[name]
        family = families.get(name) or families.setdefault(name, GaugeMetricFamily(name, doc, labels=names))
        family.add_metric([labels[n] for n in names], value)

    class _Snapshot:
        def collect(self):
            return list(families.values())

    registry = CollectorRegistry(auto_describe=False)
    registry.register(_Snapshot())
    return generate_latest(registry)
