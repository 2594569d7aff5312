"""Entry points the DAG files call: read the policy once, build in sorted order, register.

One bad entry must not take the other DAGs down: the policy is loaded leniently (broken
entries are dropped and listed), each DAG is built in its own try block, and a broken
entry becomes a failing, alerting DAG of the same id. Only a policy that cannot be read
at all (YAML syntax, alerts section) raises, which Airflow shows as an import error of
the DAG file.
"""

from __future__ import annotations

import logging
from typing import Any, Callable

from backup_dr.core.policy import default_policy_path, load_policy
from backup_dr.core.policy_model import Policy
from backup_dr.dag_factory.common import broken_entries, build_policy_error_dag, should_build, unowned_issues

log = logging.getLogger(__name__)

#: The DAG standing in for policy problems outside any entry (see :func:`unowned_issues`).
POLICY_ERROR_DAG_ID = "backup_dr_policy_error"


def _policy() -> Policy:
    return load_policy(default_policy_path(), strict=False)


def _register(namespace: dict[str, Any], policy: Policy, dag_id: str, build: Callable[[], Any], what: str) -> None:
    if not should_build(dag_id):
        return
    try:
        namespace[dag_id] = build()
    except Exception as e:  # noqa: BLE001 - isolate one DAG's failure from the others
        log.exception("building %s failed", dag_id)
        namespace[dag_id] = build_policy_error_dag(policy, dag_id, [("", f"{type(e).__name__}: {e}")], what)


def register_backup_dags(namespace: dict[str, Any]) -> None:
    from backup_dr.dag_factory.backup_classes import build_backup_dag

    policy = _policy()
    for name in sorted(policy.classes):
        cls = policy.classes[name]
        _register(namespace, policy, f"backup_{name}", lambda cls=cls: build_backup_dag(policy, cls), f"backup class {name}")
    for name, issues in sorted(broken_entries(policy, "classes").items()):
        dag_id = f"backup_{name}"
        if should_build(dag_id):
            namespace[dag_id] = build_policy_error_dag(policy, dag_id, issues, f"backup class {name}")


def register_ops_dags(namespace: dict[str, Any]) -> None:
    from backup_dr.dag_factory.ops import build_drill_dag, build_health_dag

    policy = _policy()
    _register(namespace, policy, "ops_backup_health", lambda: build_health_dag(policy), "backup health monitor")
    _register(namespace, policy, "ops_restore_drill", lambda: build_drill_dag(policy), "restore drill")
    # problems no entry owns (a misspelled section name, a section of the wrong type): one loud DAG for them
    orphans = unowned_issues(policy)
    if orphans and should_build(POLICY_ERROR_DAG_ID):
        namespace[POLICY_ERROR_DAG_ID] = build_policy_error_dag(
            policy, POLICY_ERROR_DAG_ID, orphans, "part of the policy (a misspelled or malformed top-level section)")


def register_dr_dags(namespace: dict[str, Any]) -> None:
    from backup_dr.dag_factory.dr import build_dr_dag

    policy = _policy()
    for name in sorted(policy.scenarios):
        sc = policy.scenarios[name]
        _register(namespace, policy, f"dr_{name}", lambda sc=sc: build_dr_dag(policy, sc), f"DR scenario {name}")
    for name, issues in sorted(broken_entries(policy, "dr_scenarios").items()):
        dag_id = f"dr_{name}"
        if should_build(dag_id):
            namespace[dag_id] = build_policy_error_dag(policy, dag_id, issues, f"DR scenario {name}")


def register_pitr_dags(namespace: dict[str, Any]) -> None:
    """``pitr_oplog_archive`` when the policy has ``pitr`` entries (broken ones become failing tasks in it)."""
    from backup_dr.dag_factory.pitr import DAG_ID, build_pitr_dag

    policy = _policy()
    if policy.pitr or broken_entries(policy, "pitr"):
        _register(namespace, policy, DAG_ID, lambda: build_pitr_dag(policy), "PITR oplog archiving")
