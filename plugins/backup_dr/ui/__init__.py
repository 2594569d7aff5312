"""The backup catalog page in the Airflow UI (an Airflow 3 plugin: FastAPI app + nav entry).

* :mod:`backup_dr.ui.data` assembles what the page shows from the stores and the latest
  health report (plain functions, no FastAPI, no Airflow);
* :mod:`backup_dr.ui.app` serves it (page, JSON API, static files) behind Airflow's auth;
* :mod:`backup_dr.ui.lazy` lets ``plugins/backup_dr_plugin.py`` register the app without
  importing FastAPI or Airflow's API security module in every Airflow process.
"""

from __future__ import annotations

#: Where Airflow's API server mounts the app, and the page's nav route in the Airflow UI.
URL_PREFIX = "/backup-dr"
NAV_ROUTE = "backup-catalog"
