"""Where the page's inputs come from inside Airflow: the policy, the stores, the health report.

Stores are opened exactly as the operators open them (:func:`backup_dr.operators._common.open_store`:
S3/GCS clients from the provider hooks, connections from Airflow's secrets backends), so
the page sees what the DAGs write. A store that cannot be opened (missing connection, bad
credentials) is reported on the page as unreachable instead of failing the page: during an
incident the page must show which store is gone, not an error 500.
"""

from __future__ import annotations

import logging

from backup_dr.core.errors import BackupDRError
from backup_dr.core.health import load_latest_report
from backup_dr.core.stores.base import Store
from backup_dr.ui.data import CatalogInputs

log = logging.getLogger(__name__)


def _open_stores(policy) -> tuple[dict[str, Store], dict[str, str]]:
    from backup_dr.operators._common import open_store

    stores: dict[str, Store] = {}
    errors: dict[str, str] = {}
    for name, spec in policy.stores.items():
        try:
            stores[name] = open_store(spec)
        except BackupDRError as e:
            errors[name] = e.message
        except Exception as e:  # noqa: BLE001 - provider hooks raise their own types; shown on the page, not swallowed
            errors[name] = f"{type(e).__name__}: {e}"
        if name in errors:
            log.warning("catalog page: store %s cannot be opened: %s", name, errors[name])
    return stores, errors


def _latest_report(policy, stores: dict[str, Store]) -> dict | None:
    """The health report kept in the first local store (where the health DAG saves it)."""
    for name, spec in policy.stores.items():
        if spec.type == "local" and name in stores:
            try:
                return load_latest_report(stores[name])
            except (BackupDRError, ValueError) as e:
                log.warning("catalog page: latest health report in store %s unreadable: %s", name, e)
                return None
    return None


def load_inputs(policy_path: str | None = None) -> CatalogInputs:
    """Policy (lenient, as the DAGs see it), every store of it, and the latest health report."""
    from backup_dr.operators._common import get_policy

    policy = get_policy(policy_path)
    stores, errors = _open_stores(policy)
    return CatalogInputs(policy=policy, stores=stores, store_errors=errors, report=_latest_report(policy, stores))
