"""The page's colour rules, secret scrubbing, display formats and cache, in isolation."""

from __future__ import annotations

import json
import threading
import time
from datetime import datetime, timezone

import pytest

from backup_dr.ui.cache import MIN_REFRESH_SECONDS, TTLCache
from backup_dr.ui.lazy import LazyASGIApp
from backup_dr.ui.page import human_bytes, human_seconds, json_for_script, static_file
from backup_dr.ui.status import age_color, color_of, drill_color, scrub, scrub_text, worst

H = 3600
NOW = datetime(2026, 11, 26, 12, 0, tzinfo=timezone.utc)


@pytest.mark.parametrize("age,color", [(0, "green"), (3 * H, "green"), (3 * H + 1, "amber"), (4 * H, "amber"),
                                       (4 * H + 1, "red"), (None, "red")])
def test_age_colour_against_a_4h_rpo(age, color):
    assert age_color(age, 4 * H) == color


def test_event_driven_classes_have_no_age_limit():
    assert age_color(400 * H, 4 * H, event_driven=True) == "green"
    assert age_color(None, 4 * H, event_driven=True) == "amber"


@pytest.mark.parametrize("record,color,reason", [
    (None, "amber", "no restore drill on record"),
    ({"ok": False, "restore_seconds": 10, "checked_at": "2026-11-26T11:00:00Z"}, "red", "the last drill FAILED"),
    ({"ok": True, "restore_seconds": 1801, "checked_at": "2026-11-26T11:00:00Z"}, "red", "the last drill restored slower than the RTO"),
    ({"ok": True, "restore_seconds": 1400, "checked_at": "2026-11-26T11:00:00Z"}, "amber", "the last drill used most of the RTO"),
    ({"ok": True, "restore_seconds": 60, "checked_at": "2026-11-23T11:00:00Z"}, "amber", "the last drill is older than 48h"),
    ({"ok": True, "restore_seconds": None, "checked_at": "2026-11-26T11:00:00Z"}, "amber", "the last drill recorded no restore time"),
    ({"ok": True, "restore_seconds": 60, "checked_at": "2026-11-26T11:00:00Z"}, "green", "restored within the RTO"),
])
def test_drill_colour_against_a_30m_rto(record, color, reason):
    assert drill_color(record, 1800, NOW) == (color, reason)


def test_worst_and_status_words():
    assert worst("green", "grey") == "green" and worst("green", "amber", "grey") == "amber" and worst("amber", "red") == "red"
    assert worst() == "grey"
    assert [color_of(w) for w in ("healthy", "WARNING", "critical", "gap", "ok", "mystery", None)] == [
        "green", "amber", "red", "red", "green", "grey", "grey"]


def test_scrub_hides_credentials_in_any_string():
    assert scrub_text("mongodb://backup:p%40ss@db:27017/admin?authSource=admin") == "mongodb://backup:***@db:27017/admin?authSource=admin"
    assert scrub_text("redis://:only-pass@cache:6379") == "redis://:***@cache:6379"
    assert scrub_text('{"password": "x1", "token":"t2"} api_key=k3; secret_access_key: s4') == \
        '{"password": "***", "token":"***"} api_key=***; secret_access_key: ***'
    assert scrub_text("https://example.com/path and s3://bucket/prefix") == "https://example.com/path and s3://bucket/prefix"
    nested = scrub({"a": ["mongodb://u:pw@h"], "b": {"c": "password=pw"}, "n": 3, "none": None})
    assert nested == {"a": ["mongodb://u:***@h"], "b": {"c": "password=***"}, "n": 3, "none": None}


def test_display_formats():
    assert [human_seconds(v) for v in (0.0031, 4.23, 42, 725, 14400, 72003, 108000, None)] == [
        "3 ms", "4.2s", "42s", "12m 5s", "4h", "20h", "1d 6h", "–"]
    assert [human_bytes(v) for v in (0, 999, 20_000, 1_500_000, 3.2e9, None)] == ["0 B", "999 B", "20.0 KB", "1.5 MB", "3.2 GB", "–"]


def test_embedded_json_cannot_close_the_script_tag():
    text = json_for_script({"problem": "</script><script>alert(1)</script> & more"})
    assert "</script>" not in text and "<" not in text and "&" not in text
    assert json.loads(text) == {"problem": "</script><script>alert(1)</script> & more"}


def test_static_files_by_bare_name_only():
    assert static_file("catalog.js")[1].startswith("text/javascript")
    for bad in ("../app.py", "templates/catalog.html", ".hidden.css", "app.py", "missing.css"):
        assert static_file(bad) is None, bad


class FakeClock:
    def __init__(self):
        self.t = 1000.0

    def __call__(self):
        return self.t


def test_cache_serves_until_the_ttl_then_rebuilds():
    clock, calls = FakeClock(), []
    cache = TTLCache(lambda: calls.append(clock.t) or len(calls), ttl=45, clock=clock)
    assert cache.get() == (1, 0.0)
    clock.t += 44
    assert cache.get() == (1, 44.0)
    clock.t += 1
    assert cache.get() == (2, 0.0)
    clock.t += MIN_REFRESH_SECONDS - 1
    assert cache.get(refresh=True)[0] == 2  # a refresh right after a build is ignored
    clock.t += 1
    assert cache.get(refresh=True) == (3, 0.0)
    assert cache.builds == 3


def test_cache_builds_once_for_concurrent_requests_and_retries_after_a_failure():
    started, results = threading.Event(), []

    def slow_build():
        started.set()
        time.sleep(0.3)
        return "data"

    cache = TTLCache(slow_build, ttl=60)
    threads = [threading.Thread(target=lambda: results.append(cache.get()[0])) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert results == ["data"] * 8 and cache.builds == 1

    attempts = []

    def flaky():
        attempts.append(1)
        if len(attempts) == 1:
            raise RuntimeError("store down")
        return "ok"

    flaky_cache = TTLCache(flaky, ttl=60)
    with pytest.raises(RuntimeError):
        flaky_cache.get()
    assert flaky_cache.get()[0] == "ok"  # nothing was cached by the failed build


def test_lazy_app_builds_on_first_use_only():
    app = LazyASGIApp("backup_dr.ui.status:worst")  # any importable callable stands in for a factory
    assert "not built yet" in repr(app)
    assert app.app == "grey"  # worst() with no arguments
    assert "built" in repr(app) and "not built" not in repr(app)
    with pytest.raises(ValueError, match="package.module:function"):
        LazyASGIApp("no_colon_here")
