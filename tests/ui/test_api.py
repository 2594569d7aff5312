"""The catalog app as Airflow's API server mounts it from the plugin: authentication, JSON, page.

Requests go through Airflow's own ``create_app`` (plugin manager -> ``/backup-dr`` mount,
auth manager, middlewares); tokens are minted by its SimpleAuthManager.
"""

from __future__ import annotations

import json

import pytest
from fastapi.testclient import TestClient

from .conftest import LEAKED_SECRET, mounted_catalog_app

ROUTES = ["/backup-dr/", "/backup-dr/api/catalog", "/backup-dr/api/classes/critical_data",
          "/backup-dr/static/catalog.js", "/backup-dr/static/catalog.css", "/backup-dr/static/icon.svg"]


@pytest.mark.parametrize("path", ROUTES + ["/backup-dr/api/classes/nope", "/backup-dr/api/catalog?refresh=1"])
def test_every_endpoint_rejects_unauthenticated_requests(client, path):
    r = client.get(path)
    assert r.status_code == 401 and r.json() == {"detail": "Not authenticated"}, (path, r.status_code)


def test_every_route_of_the_app_is_behind_airflow_auth(client, airflow_api):
    """No route slips past the app-wide dependency (FastAPI's docs routes would: they are off)."""
    from fastapi.routing import APIRoute

    app = mounted_catalog_app(airflow_api)
    routes = [r for r in app.routes if hasattr(r, "path")]
    assert routes and all(isinstance(r, APIRoute) for r in routes), [r.path for r in routes]
    for route in routes:
        r = client.get("/backup-dr" + route.path.replace("{name}", "catalog.js" if "static" in route.path else "critical_data"))
        assert r.status_code == 401, route.path


def test_invalid_or_expired_tokens_are_rejected(client, mint_token):
    forged = mint_token()[:-4] + "AAAA"
    assert client.get("/backup-dr/api/catalog", headers={"Authorization": f"Bearer {forged}"}).status_code == 403
    assert client.get("/backup-dr/api/catalog", cookies={"_token": "not-a-jwt"}).status_code == 403
    from airflow.api_fastapi.app import get_auth_manager
    from airflow.api_fastapi.auth.managers.simple.user import SimpleAuthManagerUser

    expired = get_auth_manager().generate_jwt(SimpleAuthManagerUser(username="viewer", role="viewer"),
                                              expiration_time_in_seconds=-60)
    r = client.get("/backup-dr/api/catalog", headers={"Authorization": f"Bearer {expired}"})
    assert r.status_code == 401 and r.json()["detail"] == "Token Expired"


def test_docs_and_openapi_are_not_exposed_even_when_authenticated(client, mint_token):
    auth = {"Authorization": f"Bearer {mint_token()}"}
    for path in ("/backup-dr/openapi.json", "/backup-dr/docs", "/backup-dr/redoc"):
        assert client.get(path, headers=auth).status_code == 404


def test_bearer_token_gets_the_catalog(client, mint_token, catalog_history):
    r = client.get("/backup-dr/api/catalog", headers={"Authorization": f"Bearer {mint_token()}"})
    assert r.status_code == 200 and r.headers["cache-control"] == "no-store"
    data = r.json()
    assert sorted(c["name"] for c in data["classes"]) == sorted(catalog_history.policy.classes)
    crit = data["classes"][[c["name"] for c in data["classes"]].index("critical_data")]["sources"][0]
    assert crit["newest"]["backup_id"] == catalog_history.newest("critical_data/mongodb").backup_id
    assert crit["age"]["color"] == "green" and crit["last_drill"]["record"]["restore_seconds"] == 42.5
    assert data["health_report"]["status"] == "critical"
    assert data["cache"]["ttl_seconds"] > 0 and data["cache"]["age_seconds"] == 0
    assert LEAKED_SECRET not in r.text


def test_ui_cookie_gets_the_page(client, mint_token, catalog_history):
    r = client.get("/backup-dr/", cookies={"_token": mint_token()})
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/html")
    html = r.text
    for cls in catalog_history.policy.classes:
        assert f'id="class-{cls}"' in html
    assert 'data-source="operational_data/redis_cache"' in html and 'data-chart="critical_data/mongodb"' in html
    assert catalog_history.newest("critical_data/mongodb").backup_id in html
    assert 'class="badge badge-red"' in html and 'class="badge badge-amber"' in html and 'class="badge badge-green"' in html
    assert LEAKED_SECRET not in html and "redis://default:***@10.0.0.7" in html
    # the page's data block is the API's JSON (the charts are drawn from it), safely embedded
    embedded = html.split('<script type="application/json" id="catalog-data">', 1)[1].split("</script>", 1)[0]
    assert json.loads(embedded)["classes"][0]["name"] == "critical_data"
    csp = r.headers["content-security-policy"]
    assert "default-src 'self'" in csp and "frame-ancestors 'self'" in csp and "http" not in csp
    assert "https://" not in html.split("<footer")[0].split("<body")[0]  # nothing loaded from outside


def test_one_class_and_unknown_class(client, mint_token):
    auth = {"Authorization": f"Bearer {mint_token()}"}
    r = client.get("/backup-dr/api/classes/operational_data", headers=auth)
    assert r.status_code == 200
    body = r.json()
    assert body["class"]["name"] == "operational_data" and body["class"]["color"] == "red"
    assert [s["age"]["color"] for s in body["class"]["sources"]] == ["amber", "red", "red", "green"]
    r = client.get("/backup-dr/api/classes/nope", headers=auth)
    assert r.status_code == 404
    assert r.json()["detail"] == ("no backup class 'nope' in the policy; known classes: "
                                  "critical_data, operational_data, application_code, configuration")


def test_listings_are_cached_between_requests(client, mint_token, catalog_app_cache):
    auth = {"Authorization": f"Bearer {mint_token()}"}
    before = catalog_app_cache.builds
    client.get("/backup-dr/api/catalog", headers=auth)
    client.get("/backup-dr/", headers=auth)
    second = client.get("/backup-dr/api/classes/critical_data", headers=auth).json()
    assert catalog_app_cache.builds == before + 1 and second["cache"]["age_seconds"] >= 0
    client.get("/backup-dr/api/catalog?refresh=1", headers=auth)  # too soon after the build: still cached
    assert catalog_app_cache.builds == before + 1


def test_static_files_are_served_only_by_name(client, mint_token):
    auth = {"Authorization": f"Bearer {mint_token()}"}
    js = client.get("/backup-dr/static/catalog.js", headers=auth)
    assert js.status_code == 200 and js.headers["content-type"].startswith("text/javascript")
    for bad in ("../app.py", "..%2Fapp.py", "%2e%2e%2fdata.py", "missing.js", ".hidden.css"):
        assert client.get(f"/backup-dr/static/{bad}", headers=auth).status_code == 404, bad


def test_unreadable_policy_gives_a_clear_503(airflow_api, mint_token, catalog_env, monkeypatch, tmp_path):
    from backup_dr.ui.app import create_app

    monkeypatch.setenv("BACKUP_DR_POLICY", str(tmp_path / "missing-policy.yaml"))
    with TestClient(create_app()) as c:
        auth = {"Authorization": f"Bearer {mint_token()}"}
        r = c.get("/api/catalog", headers=auth)
        assert r.status_code == 503
        assert r.json()["detail"].startswith("the backup policy cannot be read") and "missing-policy.yaml" in r.json()["detail"]
        page = c.get("/", headers=auth)
        assert page.status_code == 503 and "Catalog unavailable" in page.text and "BACKUP_DR_POLICY" in page.text
        metrics = c.get("/metrics", headers=auth)  # a scraper sees up == 0 and the reason as its last error
        assert metrics.status_code == 503 and metrics.text.startswith("# catalog unavailable: the backup policy cannot be read")
        assert c.get("/api/catalog").status_code == 401  # still authenticated first


def test_airflow_lists_the_plugin_with_its_app_and_nav_entry(client, mint_token):
    auth = {"Authorization": f"Bearer {mint_token()}"}
    plugins = client.get("/api/v2/plugins", headers=auth).json()["plugins"]
    ours = next(p for p in plugins if p["name"] == "backup_dr_catalog")
    assert ours["fastapi_apps"] == [{"app": "backup_dr.ui.lazy.LazyASGIApp", "url_prefix": "/backup-dr", "name": "Backup catalog"}]
    view = ours["external_views"][0]
    assert (view["name"], view["href"], view["url_route"], view["destination"], view["category"]) == (
        "Backup catalog", "backup-dr/", "backup-catalog", "nav", "browse")
    assert ours["source"] == "$PLUGINS_FOLDER/backup_dr_plugin.py"
    errors = client.get("/api/v2/plugins/importErrors", headers=auth).json()
    assert errors["import_errors"] == [], errors
    assert client.get(f"/{view['icon']}", headers=auth).headers["content-type"] == "image/svg+xml"


def test_store_cards_say_how_old_their_figures_are(client, mint_token, catalog_history):
    """Usage comes from the hourly health report, reachability from this page build: each card says when."""
    import re

    from backup_dr.core.health import load_latest_report

    auth = {"Authorization": f"Bearer {mint_token()}"}
    data = client.get("/backup-dr/api/catalog", headers=auth).json()
    html = client.get("/backup-dr/", headers=auth).text
    measured = load_latest_report(catalog_history.stores["local"])["generated_at"]
    for store in data["stores"]:
        assert store["usage_as_of"] == measured and store["checked_at"] == data["generated_at"]
        card = re.search(rf'<div class="store card" data-store="{store["name"]}">(.*?)</div>\s*</div>', html, re.S).group(1)
        as_of = re.search(r'<div class="muted as-of"[^>]*>(.*?)</div>', card + "</div>", re.S).group(1)
        assert "reachable when listed" in as_of and f'datetime="{data["generated_at"]}"' in as_of
        assert "usage measured by the health check" in as_of and f'datetime="{measured}"' in as_of
