"""Entry points the DAG files call: read the policy once, build in sorted order, register.

Nothing in the policy file may leave the deployment without a DAG that alerts:

* one bad entry takes down exactly what uses it: the policy is loaded leniently (broken
  entries dropped, each knock-on linked to its root cause), each DAG is built in its own try
  block, and a broken entry becomes a failing, alerting DAG of the same id whose message is
  the ROOT problem;
* problems no entry owns (a misspelled section, a field that fell back to its default, a
  broken alert route) go to ``backup_dr_policy_error``;
* a file that cannot be loaded at all (missing, unreadable, binary, YAML syntax, a Python
  tag, an alias bomb, an unsupported version) raises in no DAG file: the ops file registers
  the watchdog ``backup_dr_policy_error`` (hourly, fails, alerts through the fallback route
  with the file, the line and the parser's message) and a degraded ``ops_backup_health``
  that still reports backup ages from the fallback stores; the other files register nothing.
  Fixing the file brings every DAG back at the next parse, without a restart.
"""

from __future__ import annotations

import logging
from typing import Any, Callable

from backup_dr.core.errors import PolicyError
from backup_dr.core.policy import load_policy, policy_location
from backup_dr.core.policy_model import Policy
from backup_dr.dag_factory.common import broken_entries, build_policy_error_dag, should_build, unowned_issues

log = logging.getLogger(__name__)

#: The DAG standing in for policy problems outside any entry (see :func:`unowned_issues`), and
#: the watchdog when the file cannot be loaded at all.
POLICY_ERROR_DAG_ID = "backup_dr_policy_error"


def _policy() -> Policy | PolicyError:
    """The leniently loaded policy, or the error that makes the whole file unusable (never raises)."""
    path, origin = policy_location()
    try:
        return load_policy(path, strict=False, origin=origin)
    except PolicyError as e:
        log.error("the policy file cannot be loaded; only %s and a degraded ops_backup_health are built: %s",
                  POLICY_ERROR_DAG_ID, e)
        return e


def _register(namespace: dict[str, Any], policy: Policy, dag_id: str, build: Callable[[], Any], what: str) -> None:
    if not should_build(dag_id):
        return
    try:
        namespace[dag_id] = build()
    except Exception as e:  # noqa: BLE001 - isolate one DAG's failure from the others
        log.exception("building %s failed", dag_id)
        namespace[dag_id] = build_policy_error_dag(policy, dag_id, [("", f"{type(e).__name__}: {e}")], what)


def _error_dags(namespace: dict[str, Any], policy: Policy, section: str, prefix: str, what: str) -> None:
    for name, issues in sorted(broken_entries(policy, section).items()):
        dag_id = f"{prefix}{name}"
        if should_build(dag_id):
            namespace[dag_id] = build_policy_error_dag(policy, dag_id, issues, f"{what} {name}")


def register_backup_dags(namespace: dict[str, Any]) -> None:
    from backup_dr.dag_factory.backup_classes import build_backup_dag

    policy = _policy()
    if isinstance(policy, PolicyError):
        return
    for name in sorted(policy.classes):
        cls = policy.classes[name]
        _register(namespace, policy, f"backup_{name}", lambda cls=cls: build_backup_dag(policy, cls), f"backup class {name}")
    _error_dags(namespace, policy, "classes", "backup_", "backup class")


def register_ops_dags(namespace: dict[str, Any]) -> None:
    from backup_dr.core.policy_fallback import fallback_alerts
    from backup_dr.dag_factory.ops import build_drill_dag, build_health_dag

    policy, fallback = _policy(), fallback_alerts()
    for problem in fallback.problems:  # the fallback route is checked whenever the DAGs are parsed
        log.warning("fallback alert route: %s", problem)
    if isinstance(policy, PolicyError):
        from backup_dr.dag_factory.watchdog import build_degraded_health_dag, build_watchdog_dag

        for dag_id, build in ((POLICY_ERROR_DAG_ID, build_watchdog_dag), ("ops_backup_health", build_degraded_health_dag)):
            if should_build(dag_id):
                namespace[dag_id] = build(policy, fallback)
        return
    _register(namespace, policy, "ops_backup_health", lambda: build_health_dag(policy), "backup health monitor")
    scratch = policy.root_causes("ops.drill_scratch")
    if scratch and should_build("ops_restore_drill"):
        namespace["ops_restore_drill"] = build_policy_error_dag(policy, "ops_restore_drill", scratch, "restore drill")
    else:
        _register(namespace, policy, "ops_restore_drill", lambda: build_drill_dag(policy), "restore drill")
    orphans = unowned_issues(policy)
    if orphans and should_build(POLICY_ERROR_DAG_ID):
        namespace[POLICY_ERROR_DAG_ID] = build_policy_error_dag(
            policy, POLICY_ERROR_DAG_ID, orphans, "part of the policy (a section, a default or an alert route)")


def register_dr_dags(namespace: dict[str, Any]) -> None:
    from backup_dr.dag_factory.dr import build_dr_dag

    policy = _policy()
    if isinstance(policy, PolicyError):
        return
    for name in sorted(policy.scenarios):
        sc = policy.scenarios[name]
        _register(namespace, policy, f"dr_{name}", lambda sc=sc: build_dr_dag(policy, sc), f"DR scenario {name}")
    _error_dags(namespace, policy, "dr_scenarios", "dr_", "DR scenario")


def register_pitr_dags(namespace: dict[str, Any]) -> None:
    """``pitr_oplog_archive`` when the policy has ``pitr`` entries (broken ones become failing tasks in it)."""
    from backup_dr.dag_factory.pitr import DAG_ID, build_pitr_dag

    policy = _policy()
    if isinstance(policy, PolicyError):
        return
    if policy.pitr or broken_entries(policy, "pitr"):
        _register(namespace, policy, DAG_ID, lambda: build_pitr_dag(policy), "PITR oplog archiving")
