"""Airflow itself finds and loads the plugin from the plugins folder, in a fresh process.

The test session's AIRFLOW_HOME / plugins folder / SQLite DB (set by tests/conftest.py)
are inherited by the subprocesses, as an Airflow deployment's components would see them.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
AIRFLOW = Path(sys.executable).with_name("airflow")


def _run(args: list[str], **env: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "AIRFLOW__CORE__PLUGINS_FOLDER": str(ROOT / "plugins"), **env}
    out = subprocess.run(args, capture_output=True, text=True, env=env, cwd=ROOT, timeout=180)
    assert out.returncode == 0, out.stderr[-3000:]
    return out


@pytest.mark.parametrize("syntax", ["glob", "regexp"])
def test_airflow_plugins_cli_lists_the_app_and_the_nav_entry(airflow_db, syntax):
    """plugins/.airflowignore hides the package in both ignore-file syntaxes."""
    out = _run([str(AIRFLOW), "plugins", "-o", "json"], AIRFLOW__CORE__DAG_IGNORE_FILE_SYNTAX=syntax)
    plugins = json.loads(out.stdout)
    ours = [p for p in plugins if p["name"] == "backup_dr_catalog"]
    assert len(ours) == 1, plugins
    plugin = ours[0]
    assert plugin["source"] == "$PLUGINS_FOLDER/backup_dr_plugin.py"
    assert plugin["fastapi_apps"] == [{"app": "backup_dr.ui.lazy.LazyASGIApp", "url_prefix": "/backup-dr", "name": "Backup catalog"}]
    assert plugin["external_views"] == [{"name": "Backup catalog", "href": "backup-dr/", "url_route": "backup-catalog",
                                         "destination": "nav", "category": "browse", "icon": "backup-dr/static/icon.svg"}]
    # only the entry file is a plugin: nothing inside plugins/backup_dr/ was imported as one
    assert [p["source"] for p in plugins if str(p["source"]).startswith("$PLUGINS_FOLDER")] == ["$PLUGINS_FOLDER/backup_dr_plugin.py"]


def test_plugin_manager_has_no_import_errors_and_loading_stays_light(airflow_db):
    code = (
        "import json, sys\n"
        "from airflow import plugins_manager as pm\n"
        "pm.ensure_plugins_loaded()\n"
        "names = [p.name for p in pm._get_plugins()[0]]\n"
        "heavy = [m for m in ('backup_dr.ui.app', 'backup_dr.ui.data', 'airflow.api_fastapi.core_api.security') if m in sys.modules]\n"
        "print(json.dumps({'errors': pm.get_import_errors(), 'names': names, 'heavy': heavy}))\n"
    )
    result = json.loads(_run([sys.executable, "-c", code]).stdout.strip().splitlines()[-1])
    assert result["errors"] == {}
    assert "backup_dr_catalog" in result["names"]
    # a scheduler, triggerer or task runner loading plugins does not build the web app
    assert result["heavy"] == []


@pytest.mark.parametrize("syntax", ["glob", "regexp"])
def test_reading_the_ignore_file_prints_no_deprecation_warning(airflow_db, syntax):
    """Airflow 3.3.2 builds a pathspec ``GitWildMatchPattern`` for each line of
    plugins/.airflowignore (the Task SDK always, whatever the configured syntax); pathspec 1.x
    calls that class deprecated, so every Airflow process (each task, the demo twice) printed a
    DeprecationWarning. The constraints pin pathspec 0.12.1, which Airflow accepts (>=0.9)."""
    code = "from airflow import plugins_manager as pm\npm.ensure_plugins_loaded()\n" \
           "from airflow.sdk import plugins_manager as sdk_pm\nsdk_pm._get_plugins()\n"
    out = _run([sys.executable, "-W", "default", "-c", code], AIRFLOW__CORE__DAG_IGNORE_FILE_SYNTAX=syntax)
    printed = out.stdout + out.stderr  # Airflow's logging may route py.warnings to either
    assert "deprecated" not in printed and "DeprecationWarning" not in printed, printed[-2000:]
