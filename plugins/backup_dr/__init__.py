"""Backup and disaster recovery for the Korea Public Data API, as an Airflow 3 DAG package.

Layers (dependencies point one way only)::

    dags/  ->  backup_dr.dag_factory  ->  backup_dr.operators  ->  backup_dr.core

``backup_dr.core`` never imports Airflow, so the break-glass CLI (``python -m backup_dr``)
restores with only the policy file, store credentials and the stores.
"""

from __future__ import annotations

__version__ = "0.1.0"
TOOL_NAME = "backup_dr"
