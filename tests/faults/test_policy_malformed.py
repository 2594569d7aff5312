"""Row 8: a partial policy (one broken field) through Airflow's DagBag: exactly what uses it goes down.

Each variant is a copy of include/policy.yaml with one mistake, parsed by the DagBag exactly as
the dag-processor parses the DAG files. What must hold:

* the DAGs that use the broken part, and only those, become failing, alerting error DAGs of
  the same id (a broken PITR entry: a failing task in ``pitr_oplog_archive``), each naming the
  ROOT cause (``classes.critical_data.schedule: ...``), never "unknown or invalid class";
* every other DAG loads as usual; no DAG file is an import error;
* a problem no DAG owns (a misspelled section, a default that fell back, a broken alert route)
  is carried by ``backup_dr_policy_error``;
* the strict check (``policy check``, what CI runs) fails on every variant, naming the root.

Unloadable files (syntax, binary, missing, ...) are the watchdog's: ``test_policy_unloadable.py``.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from backup_dr.core.errors import PolicyError
from tests.faults.conftest import ROOT

POLICY = (ROOT / "include" / "policy.yaml").read_text(encoding="utf-8")
DR = {"dr_database_server_failure", "dr_full_infrastructure_failure", "dr_data_corruption"}
ALL = {"backup_critical_data", "backup_operational_data", "backup_configuration", "backup_application_code",
       "ops_backup_health", "ops_restore_drill", "pitr_oplog_archive"} | DR
ERROR_DAG = "backup_dr_policy_error"


def _edit(old: str, new: str) -> str:
    assert POLICY.count(old) >= 1, old
    return POLICY.replace(old, new, 1)


# name -> (policy text, the root field path (and reason) every failing DAG must name,
#          the DAGs it takes down (absent or failing), whether backup_dr_policy_error carries it)
VARIANTS = {
    "cron typo in critical_data": (
        _edit('schedule: "0 */4 * * *"', 'schedule: "0 */4 * *"'),
        "classes.critical_data.schedule: '0 */4 * *' is not a valid cron expression",
        {"backup_critical_data", "pitr_oplog_archive"} | DR, False),
    "cron typo in operational_data (it backs up the Redis cache and uploads DR restores)": (
        _edit('schedule: "0 2 * * *"', 'schedule: "0 2 * * * *"'),
        "classes.operational_data.schedule", {"backup_operational_data", "dr_full_infrastructure_failure"}, False),
    "wrong type: stores is a string": (
        _edit("    stores: [local, s3]                   # 2중화", "    stores: local"),
        "classes.operational_data.stores: must be a list of strings, got a string",
        {"backup_operational_data", "dr_full_infrastructure_failure"}, False),
    "unknown key in a class (app_config is only backed up by it)": (
        _edit("    retention: 6 months\n", "    retension: 6 months\n"),
        "classes.configuration.retension: unknown key (did you mean 'retention'?)",
        {"backup_configuration", "dr_full_infrastructure_failure"}, False),
    "wrong type: priority is a word": (
        _edit("      - {source: app_repository, priority: 1, timeout: 30m}",
              "      - {source: app_repository, priority: high, timeout: 30m}"),
        "classes.application_code.jobs[0].priority", {"backup_application_code"}, False),
    "a typo in the Redis source": (
        _edit("    mode: replication ", "    mode: replicaton "),
        "sources.redis_cache.mode: 'replicaton' is not one of: replication, bgsave, aof (did you mean 'replication'?)",
        {"backup_operational_data", "dr_full_infrastructure_failure"}, False),
    "an unset variable in a store": (
        _edit("bucket: ${BACKUP_DR_GCS_BUCKET:-korea-public-data-backups}", "bucket: ${BACKUP_DR_GCS_BUKET}"),
        "stores.gcs.bucket: ${BACKUP_DR_GCS_BUKET} is not set and has no default",
        {"backup_critical_data", "backup_configuration", "pitr_oplog_archive"} | DR, False),
    "wrong type: an RTO that is no duration": (
        _edit("    rpo: 1h\n    rto: 2h\n", "    rpo: 1h\n    rto: fast\n"),
        "dr_scenarios.data_corruption.rto", {"dr_data_corruption"}, False),
    "unknown key in a PITR entry (the 1 h RPO needs PITR)": (
        _edit("    interval: 15m\n", "    intervall: 15m\n"),
        "pitr.mongodb.intervall: unknown key (did you mean 'interval'?)", {"pitr_oplog_archive", "dr_data_corruption"}, False),
    "the repoint webhook connection is empty": (
        _edit("repoint_webhook_conn_id: dr_repoint_webhook", "repoint_webhook_conn_id: ''"),
        "ops.repoint_webhook_conn_id: must be a non-empty string, got an empty string", DR, False),
    "the drill's scratch target is a list": (
        _edit("mongodb_conn_id: mongo_scratch ", "mongodb_conn_id: [mongo_scratch] "),
        "ops.drill_scratch.mongodb_conn_id: must be a non-empty string, got a list", {"ops_restore_drill"}, False),
    "a time zone typo (falls back to UTC, loudly)": (
        _edit("timezone: Asia/Seoul", "timezone: Asia/Soul"),
        "defaults.timezone: 'Asia/Soul' is not a time zone", set(), True),
    "unknown key in alerts (the route is replaced by the fallback)": (
        _edit("    conn_id: slack_backup_alerts\n", "    conn_id: slack_backup_alerts\n    channel: '#dba'\n"),
        "alerts.slack.channel: unknown key", set(), True),
    "misspelled top-level section": (
        _edit("\ndr_scenarios:", "\ndr_scenarious:"),
        "dr_scenarious: unknown key (did you mean 'dr_scenarios'?)", DR, True),
    "section of the wrong type": (
        _edit("\npitr:\n  mongodb:\n    backup_class: critical_data\n    interval: 15m\n    stores: [local, s3]\n", "\npitr: every 15m\n"),
        "pitr: must be a mapping of named entries, got a string", {"pitr_oplog_archive", "dr_data_corruption"}, True),
}


def _bag(tmp_path: Path, text: str, monkeypatch):
    from airflow.dag_processing.dagbag import DagBag

    path = tmp_path / "policy.yaml"
    path.write_text(text, encoding="utf-8")
    monkeypatch.setenv("BACKUP_DR_POLICY", str(path))
    return path, DagBag(dag_folder=str(ROOT / "dags"))


def _failure_texts(dag) -> list[str]:
    """What each failing policy-error task says when it runs (the text of its alert)."""
    from airflow.sdk.exceptions import AirflowFailException

    out = []
    for task in (t for t in dag.tasks if t.task_id.startswith("policy_error")):
        with pytest.raises(AirflowFailException) as err:
            task.python_callable(*task.op_args)
        out.append(str(err.value))
    return out


def _is_down(dag) -> bool:
    if dag.dag_id == "pitr_oplog_archive":
        return "policy_error_mongodb" in dag.task_ids and "archive_oplog_mongodb" not in dag.task_ids
    return "policy-error" in dag.tags and dag.task_ids == ["policy_error"]


@pytest.mark.parametrize("variant", list(VARIANTS))
def test_a_broken_field_takes_down_exactly_what_uses_it_naming_the_root_cause(variant, airflow_db, tmp_path, monkeypatch):
    text, root, down, carried = VARIANTS[variant]
    path, bag = _bag(tmp_path, text, monkeypatch)
    assert bag.import_errors == {}, bag.import_errors
    failing = {d for d in ALL if d in bag.dags and _is_down(bag.dags[d])}
    absent = ALL - set(bag.dags)
    assert failing | absent == down, f"taken down: {sorted(failing | absent)}, expected {sorted(down)}"
    for dag_id in sorted(failing):
        dag = bag.dags[dag_id]
        texts = _failure_texts(dag)
        assert texts and all(root in t for t in texts), (dag_id, texts)
        assert not any("invalid class" in t or "has errors (see" in t for t in texts), (dag_id, texts)  # the root, not a knock-on
        assert root.split(":")[0] in dag.doc_md and dag.default_args["on_failure_callback"], dag_id
    assert (ERROR_DAG in bag.dags) == carried, sorted(bag.dags)
    if carried:
        assert any(root in t for t in _failure_texts(bag.dags[ERROR_DAG])), _failure_texts(bag.dags[ERROR_DAG])
        assert bag.dags[ERROR_DAG].default_args["on_failure_callback"], "the policy-error DAG must alert"
    with pytest.raises(PolicyError) as err:  # the strict check CI runs (`policy check`) fails, naming the root
        from backup_dr.core.policy import load_policy

        load_policy(path, strict=True)
    assert root.split(":")[0] in str(err.value)


def test_the_policy_error_dag_fails_and_alerts(airflow_db, sinks, tmp_path, monkeypatch):
    from tests.dags.conftest import run_dag

    smtp, slack = sinks
    text, root, _, _ = VARIANTS["misspelled top-level section"]
    (tmp_path / "policy.yaml").write_text(text, encoding="utf-8")
    monkeypatch.setenv("BACKUP_DR_POLICY", str(tmp_path / "policy.yaml"))
    dr, states = run_dag(ERROR_DAG)
    assert str(dr.state) == "failed" and states == {"policy_error": "failed"}
    mail = smtp.wait_for(lambda m: ERROR_DAG in smtp.text(m))
    assert mail and root in smtp.text(mail[0])
    assert slack.wait_for(lambda p: root in str(p["body"]))
