"""Airflow plugin: the backup catalog page (a FastAPI app + a "Backup catalog" nav entry).

This is the only file Airflow's plugin manager imports from ``plugins/`` (see
``.airflowignore``): it imports every ``.py`` there under its bare file name. It stays
tiny and imports neither FastAPI nor the catalog code: the app is built by the API server
on the first request (:class:`backup_dr.ui.lazy.LazyASGIApp`), so the scheduler, the
triggerer and every task runner, which also load plugins, pay nothing for it.

The page lives at ``<airflow>/backup-dr/`` and opens inside the Airflow UI at
``<airflow>/plugin/backup-catalog`` (Browse > Backup catalog). ``href`` has no leading
slash, so it resolves against the UI's base URL and works behind a path prefix.
"""

from __future__ import annotations

from airflow.plugins_manager import AirflowPlugin

from backup_dr.ui import NAV_ROUTE, URL_PREFIX
from backup_dr.ui.lazy import LazyASGIApp

backup_catalog_app = {
    "app": LazyASGIApp("backup_dr.ui.app:create_app"),
    "url_prefix": URL_PREFIX,
    "name": "Backup catalog",
}

backup_catalog_view = {
    "name": "Backup catalog",
    "href": URL_PREFIX.lstrip("/") + "/",
    "url_route": NAV_ROUTE,
    "destination": "nav",
    "category": "browse",
    "icon": URL_PREFIX.lstrip("/") + "/static/icon.svg",
}


class BackupCatalogPlugin(AirflowPlugin):
    name = "backup_dr_catalog"
    fastapi_apps = [backup_catalog_app]
    external_views = [backup_catalog_view]
