"""The catalog page's FastAPI app, mounted by Airflow's API server (see ``plugins/backup_dr_plugin.py``).

Routes (relative to the mount point, ``/backup-dr`` by default)::

    GET /                      the page (HTML; ?refresh=1 re-reads the stores). Mind the
                               trailing slash: Airflow's UI catch-all route answers
                               ``/backup-dr`` without it, and the page's links are relative
    GET /api/catalog           everything the page shows, as JSON
    GET /api/classes/{name}    one backup class
    GET /metrics               the same data for Prometheus (text exposition format; see
                               :mod:`backup_dr.ui.metrics`)
    GET /static/{file}         the page's CSS, JS and icon

Every route requires Airflow authentication through Airflow's own dependency
(:func:`airflow.api_fastapi.core_api.security.requires_access_view`): the JWT from the
``Authorization: Bearer`` header or the ``_token`` cookie the Airflow UI sets, and the
right to use the Airflow UI (``AccessView.WEBSITE``). Missing token: 401; invalid: 403.
The OpenAPI and docs routes, which FastAPI would add without that dependency, are off.
"""

from __future__ import annotations

import logging
import os
from datetime import datetime, timezone
from typing import Callable

from fastapi import Depends, FastAPI, HTTPException, Request
from fastapi.responses import HTMLResponse, JSONResponse, PlainTextResponse, Response

from backup_dr.core.errors import BackupDRError
from backup_dr.ui.cache import DEFAULT_TTL_SECONDS, TTLCache
from backup_dr.ui.data import CatalogInputs, build_catalog, class_view
from backup_dr.ui.page import render_error, render_page, static_file

log = logging.getLogger(__name__)

TTL_ENV = "BACKUP_DR_UI_CACHE_SECONDS"

#: Sent with every response: no third-party content, framing only by the Airflow UI itself.
SECURITY_HEADERS = {
    "Content-Security-Policy": "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
                               "connect-src 'self'; frame-ancestors 'self'; base-uri 'self'; form-action 'self'",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
}
NO_STORE = {"Cache-Control": "no-store"}


class CatalogUnavailable(Exception):
    """The page's inputs could not be read at all (policy missing or malformed)."""

    def __init__(self, message: str, hint: str | None = None):
        super().__init__(message)
        self.message, self.hint = message, hint


def airflow_auth_dependency():
    """Airflow's own check: an authenticated user allowed to use the Airflow UI."""
    from airflow.api_fastapi.auth.managers.models.resource_details import AccessView
    from airflow.api_fastapi.core_api.security import requires_access_view

    return Depends(requires_access_view(AccessView.WEBSITE))


def _ttl() -> float:
    try:
        return float(os.environ.get(TTL_ENV, DEFAULT_TTL_SECONDS))
    except ValueError:
        log.warning("%s=%r is not a number of seconds; using %ss", TTL_ENV, os.environ.get(TTL_ENV), DEFAULT_TTL_SECONDS)
        return DEFAULT_TTL_SECONDS


def create_app(loader: Callable[[], CatalogInputs] | None = None, *, ttl: float | None = None) -> FastAPI:
    """The app. ``loader`` yields the page inputs (default: policy and stores through Airflow)."""
    if loader is None:
        from backup_dr.ui.context import load_inputs as loader

    def build():
        try:
            inputs = loader()
        except BackupDRError as e:
            raise CatalogUnavailable(e.message, e.hint) from e
        except OSError as e:
            raise CatalogUnavailable(f"the backup policy cannot be read: {e}",
                                     "check BACKUP_DR_POLICY / include/policy.yaml on the API server") from e
        return build_catalog(inputs)

    cache = TTLCache(build, ttl=_ttl() if ttl is None else ttl)
    app = FastAPI(title="Backup catalog", docs_url=None, redoc_url=None, openapi_url=None,
                  dependencies=[airflow_auth_dependency()])
    app.state.catalog_cache = cache

    @app.middleware("http")
    async def security_headers(request: Request, call_next):
        response = await call_next(request)
        for k, v in SECURITY_HEADERS.items():
            response.headers.setdefault(k, v)
        return response

    @app.exception_handler(CatalogUnavailable)
    async def unavailable(request: Request, exc: CatalogUnavailable):
        log.error("backup catalog unavailable: %s", exc.message)
        if request.url.path.endswith("/metrics"):  # a scraper: up == 0 and the reason in its target page
            return PlainTextResponse(f"# catalog unavailable: {exc.message}\n", status_code=503, headers=NO_STORE)
        if "/api/" in request.url.path:
            return JSONResponse({"detail": exc.message, "hint": exc.hint}, status_code=503, headers=NO_STORE)
        return HTMLResponse(render_error("Catalog unavailable", exc.message, exc.hint), status_code=503, headers=NO_STORE)

    @app.get("/", response_class=HTMLResponse)
    def page(refresh: bool = False) -> HTMLResponse:
        data, age = cache.get(refresh=refresh)
        return HTMLResponse(render_page(data, cache_age=age, ttl=cache.ttl), headers=NO_STORE)

    @app.get("/api/catalog")
    def api_catalog(refresh: bool = False) -> JSONResponse:
        data, age = cache.get(refresh=refresh)
        return JSONResponse({**data, "cache": {"age_seconds": round(age, 1), "ttl_seconds": cache.ttl}}, headers=NO_STORE)

    @app.get("/api/classes/{name}")
    def api_class(name: str, refresh: bool = False) -> JSONResponse:
        data, age = cache.get(refresh=refresh)
        view = class_view(data, name)
        if view is None:
            known = ", ".join(c["name"] for c in data["classes"])
            raise HTTPException(404, f"no backup class {name!r} in the policy; known classes: {known}")
        return JSONResponse({**view, "cache": {"age_seconds": round(age, 1), "ttl_seconds": cache.ttl}}, headers=NO_STORE)

    @app.get("/metrics")
    def metrics() -> Response:
        """Same cache as the page: a scrape reads no store while the data is fresh."""
        from backup_dr.ui.metrics import render

        data, age = cache.get()
        body = render(data, now=datetime.now(timezone.utc), cache_age=age)
        return Response(body, media_type="text/plain; version=0.0.4; charset=utf-8", headers=NO_STORE)

    @app.get("/static/{name}")
    def static(name: str) -> Response:
        found = static_file(name)
        if found is None:
            raise HTTPException(404, f"no static file {name!r}")
        body, media_type = found
        return Response(body, media_type=media_type, headers={"Cache-Control": "private, max-age=300"})

    return app
