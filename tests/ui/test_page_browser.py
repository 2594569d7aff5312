"""The page in headless Chromium (Debian's /usr/bin/chromium driven by Playwright), served by
uvicorn from Airflow's own API app, signed in the way the Airflow UI is: the ``_token`` cookie.

Screenshots are saved in the test's tmp dir (path printed) to be looked at.
"""

from __future__ import annotations

import os
import re
import shutil
from pathlib import Path

import pytest

from .conftest import LEAKED_SECRET

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
        "--no-first-run", "--disable-sync", "--disable-dev-shm-usage"]

# Skipped on a developer machine without chromium; in CI (CI=true) a missing browser fails instead.
pytestmark = pytest.mark.skipif(not Path(CHROMIUM).exists() and not os.environ.get("CI"),
                                reason="Debian chromium not installed (scripts/setup.sh installs it)")


@pytest.fixture(scope="module")
def browser(tmp_path_factory):
    from playwright.sync_api import sync_playwright

    profile = tmp_path_factory.mktemp("chromium-profile")
    with sync_playwright() as p:
        # a persistent context is the only way to give Chromium a fresh --user-data-dir
        context = p.chromium.launch_persistent_context(str(profile), executable_path=CHROMIUM, headless=True, args=ARGS,
                                                       viewport={"width": 1400, "height": 1000})
        yield context
        context.close()


@pytest.fixture
def signed_in(browser, live_server, mint_token, catalog_app_cache):
    browser.clear_cookies()
    browser.add_cookies([{"name": "_token", "value": mint_token(), "url": live_server}])
    yield browser
    browser.clear_cookies()


def _blocked_outside_requests(page, live_server) -> list[str]:
    outside: list[str] = []
    page.on("request", lambda req: None if req.url.startswith((live_server, "data:", "about:")) else outside.append(req.url))
    return outside


def test_page_renders_badges_and_charts_after_js(signed_in, live_server, tmp_path, catalog_history):
    page = signed_in.new_page()
    outside = _blocked_outside_requests(page, live_server)
    errors: list[str] = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    response = page.goto(f"{live_server}/backup-dr/")
    assert response.status == 200
    page.wait_for_selector('body[data-ready="1"]', timeout=20_000)

    for cls in ("critical_data", "operational_data", "configuration", "application_code"):
        assert page.locator(f"section#class-{cls} h2").first.inner_text().startswith(cls)
    # colour of the age badge per source, as the user sees it (computed style, not just a class name)
    def age_badge(source: str):
        return page.locator(f'article[data-source="{source}"] [data-tile="age"] .badge')

    colors = {src: age_badge(src).get_attribute("data-color") for src in
              ("critical_data/mongodb", "operational_data/mongodb", "operational_data/redis_cache", "operational_data/app_logs")}
    assert colors == {"critical_data/mongodb": "green", "operational_data/mongodb": "amber",
                      "operational_data/redis_cache": "red", "operational_data/app_logs": "red"}
    rgb = {c: age_badge(s).evaluate("e => getComputedStyle(e).backgroundColor") for s, c in
           (("critical_data/mongodb", "green"), ("operational_data/mongodb", "amber"), ("operational_data/redis_cache", "red"))}
    assert len(set(rgb.values())) == 3, rgb  # three distinct fills

    # the chart SVG was drawn by the page's JS: one bar per backup, a duration line
    chart = page.locator('figure[data-chart="critical_data/mongodb"] svg.chart-svg')
    assert chart.get_attribute("data-points") == "6"
    assert chart.locator("rect.bar").count() == 6 and chart.locator("path.line").count() == 1
    ids = [b.get_attribute("data-backup") for b in chart.locator("rect.bar").all()]
    assert ids == [m.backup_id for m in reversed(catalog_history.manifests["critical_data/mongodb"])]
    heights = [float(b.get_attribute("height")) for b in chart.locator("rect.bar").all()]
    assert heights == sorted(heights, reverse=True)  # older backups were made bigger in the fixture
    assert page.locator('figure[data-chart="operational_data/app_logs"] svg').count() == 0
    assert "No backups yet" in page.locator('figure[data-chart="operational_data/app_logs"]').inner_text()

    # PITR window and drill tiles
    crit = page.locator('article[data-source="critical_data/mongodb"]')
    assert crit.locator('[data-tile="pitr"] .badge').get_attribute("data-color") == "green"
    assert "→" in crit.locator('[data-tile="pitr"]').inner_text()
    assert page.locator('article[data-source="operational_data/mongodb"] [data-tile="pitr"] .pitr-na').inner_text() == "n/a"
    assert "RTO 30m" in crit.locator('[data-tile="drill"] .badge').inner_text()
    # times were localised by the JS ("... ago"), not left as ISO text
    assert re.fullmatch(r"1h( \d+m)? ago", crit.locator("table.backups tbody tr time").first.inner_text())
    assert crit.locator('[data-tile="drill"] time').inner_text() in ("just now",) or \
        crit.locator('[data-tile="drill"] time').inner_text().endswith(" ago")
    assert "T" not in crit.locator('[data-tile="age"] time').inner_text()  # an ISO stamp became a local date
    as_of = page.locator('[data-as-of="local"]').inner_text()  # the store card says how old its figures are
    assert re.search(r"when listed (just now|.+ ago); usage measured by the health check (just now|.+ ago)", as_of), as_of

    text = page.content()
    assert LEAKED_SECRET not in text
    assert errors == [] and outside == []
    shot, top = tmp_path / "catalog-page.png", tmp_path / "catalog-first-screen.png"
    page.screenshot(path=str(shot), full_page=True)
    page.screenshot(path=str(top))
    for i, cls in enumerate(("critical_data", "operational_data")):
        page.locator(f"section#class-{cls}").screenshot(path=str(tmp_path / f"catalog-class-{i}-{cls}.png"))
    print(f"\nscreenshots: {shot} {top}")
    assert shot.stat().st_size > 20_000
    page.close()


def test_page_inside_the_airflow_ui_nav_route(signed_in, live_server, tmp_path):
    page = signed_in.new_page()
    page.goto(f"{live_server}/plugin/backup-catalog")
    frame_el = page.wait_for_selector('iframe[title="Backup catalog"]', timeout=60_000)
    assert frame_el.get_attribute("src") == "backup-dr/"
    frame = frame_el.content_frame()
    frame.wait_for_selector('body[data-ready="1"]', timeout=30_000)
    assert frame.locator("svg.chart-svg").count() >= 5
    assert frame.locator("section#class-critical_data").count() == 1
    page.get_by_role("button", name="Browse").click()
    assert page.get_by_role("menuitem", name="Backup catalog").count() == 1  # the nav entry
    shot = tmp_path / "airflow-ui-backup-catalog.png"
    page.screenshot(path=str(shot))
    print(f"\nscreenshot: {shot}")
    page.close()


def test_browser_without_a_token_gets_401(browser, live_server):
    browser.clear_cookies()
    page = browser.new_page()
    response = page.goto(f"{live_server}/backup-dr/")
    assert response.status == 401 and "Not authenticated" in page.content()
    assert page.locator("section.class").count() == 0
    page.close()
