"""Row 8: a malformed policy file (YAML syntax, wrong types, unknown keys) through Airflow's DagBag.

Each variant is a copy of include/policy.yaml with one mistake, parsed by the DagBag exactly
as the dag-processor parses the DAG files. What must hold:

* the error names the field (``classes.operational_data.stores: ...``) and the reason;
* a broken entry becomes a failing, alerting DAG of the same id (or a failing task in the
  PITR DAG); a misspelled or malformed top-level section becomes ``backup_dr_policy_error``
  (before the fix it vanished silently, taking e.g. every DR DAG with it);
* every other DAG still loads;
* only problems nothing can be built without (YAML syntax, ``alerts``) make the DAG files
  import errors, naming the line/field;
* the strict check (``python -m backup_dr policy``, what CI runs) fails on every variant.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.faults.conftest import ROOT, run_cli

POLICY = (ROOT / "include" / "policy.yaml").read_text(encoding="utf-8")
ALL = {"backup_critical_data", "backup_operational_data", "backup_configuration", "backup_application_code",
       "ops_backup_health", "ops_restore_drill", "pitr_oplog_archive",
       "dr_database_server_failure", "dr_full_infrastructure_failure", "dr_data_corruption"}


def _edit(old: str, new: str) -> str:
    assert POLICY.count(old) >= 1, old
    return POLICY.replace(old, new, 1)


# name -> (policy text, the DAG that must carry the error, the field path and reason it must name,
#          the DAGs that depend on the broken part and go or fail with it, saying why)
ENTRY_VARIANTS = {
    "wrong type: stores is a string": (
        _edit("    stores: [local, s3]                   # 2중화", "    stores: local"),
        "backup_operational_data", "classes.operational_data.stores", set()),
    "wrong type: priority is a word": (
        _edit("      - {source: app_repository, priority: 1, timeout: 30m}", "      - {source: app_repository, priority: high, timeout: 30m}"),
        "backup_application_code", "classes.application_code.jobs[0].priority", set()),
    "wrong type: an RTO that is no duration": (
        _edit("    rpo: 1h\n    rto: 2h\n", "    rpo: 1h\n    rto: fast\n"),
        "dr_data_corruption", "dr_scenarios.data_corruption.rto", set()),
    "unknown key in a class": (
        _edit("    retention: 6 months\n", "    retension: 6 months\n"),
        "backup_configuration", "classes.configuration.retension: unknown key (did you mean 'retention'?)", set()),
    "unknown key in a PITR entry": (
        _edit("    interval: 15m\n", "    intervall: 15m\n"),
        "pitr_oplog_archive", "pitr.mongodb.intervall: unknown key (did you mean 'interval'?)",
        {"dr_data_corruption"}),  # without PITR its 1 h RPO cannot be met: it fails too, saying so
    "misspelled top-level section": (
        _edit("\ndr_scenarios:", "\ndr_scenarious:"),
        "backup_dr_policy_error", "dr_scenarious: unknown key (did you mean 'dr_scenarios'?)",
        {"dr_database_server_failure", "dr_full_infrastructure_failure", "dr_data_corruption"}),
    "section of the wrong type": (
        _edit("\npitr:\n  mongodb:\n    backup_class: critical_data\n    interval: 15m\n    stores: [local, s3]\n", "\npitr: every 15m\n"),
        "backup_dr_policy_error", "pitr: must be a mapping of named entries, got a string",
        {"pitr_oplog_archive", "dr_data_corruption"}),
}


def _bag(tmp_path: Path, text: str, monkeypatch):
    from airflow.dag_processing.dagbag import DagBag

    path = tmp_path / "policy.yaml"
    path.write_text(text, encoding="utf-8")
    monkeypatch.setenv("BACKUP_DR_POLICY", str(path))
    return path, DagBag(dag_folder=str(ROOT / "dags"))


def _failure_text(dag) -> str:
    """What the error DAG's failing task says when it runs (the text of its alert)."""
    from airflow.sdk.exceptions import AirflowFailException

    task = next(t for t in dag.tasks if t.task_id.startswith("policy_error"))
    with pytest.raises(AirflowFailException) as err:
        task.python_callable(*task.op_args)
    return str(err.value)


@pytest.mark.parametrize("variant", list(ENTRY_VARIANTS))
def test_a_broken_entry_names_the_field_and_the_other_dags_still_load(variant, airflow_db, tmp_path, monkeypatch):
    text, carrier, named, gone = ENTRY_VARIANTS[variant]
    path, bag = _bag(tmp_path, text, monkeypatch)
    assert bag.import_errors == {}, bag.import_errors
    dag = bag.get_dag(carrier)
    assert dag is not None, sorted(bag.dags)
    if carrier == "pitr_oplog_archive":  # the PITR DAG stays; the broken entry is a failing task in it
        assert "policy_error_mongodb" in dag.task_ids and "archive_oplog_mongodb" not in dag.task_ids
    else:
        assert "policy-error" in dag.tags and dag.task_ids == ["policy_error"]
        assert named.split(":")[0] in dag.doc_md
    assert named in _failure_text(dag)
    assert dag.default_args["on_failure_callback"], "the failing DAG must alert"
    for dependent in gone:
        assert dependent not in bag.dags or "policy-error" in bag.dags[dependent].tags, dependent
    others = ALL - {carrier} - gone
    assert others <= set(bag.dags), others - set(bag.dags)
    assert not [d for d in others if "policy-error" in bag.dags[d].tags]
    # the strict check CI runs fails on it, naming the field
    out = run_cli("policy", "check", "--policy", str(path))
    assert out.returncode == 2 and named.split(":")[0] in out.stderr, out.stderr


@pytest.mark.parametrize("variant, text, named", [
    ("YAML syntax", POLICY.replace("  critical_data:\n", "  critical_data: [unclosed\n", 1), "YAML syntax error at line"),
    ("unknown key in alerts", _edit("    conn_id: slack_backup_alerts\n", "    conn_id: slack_backup_alerts\n    channel: '#dba'\n"),
     "alerts.slack.channel: unknown key"),
])
def test_an_unreadable_policy_is_an_import_error_naming_the_problem(variant, text, named, airflow_db, tmp_path, monkeypatch):
    """Nothing can be built from these (no file to read, or no alert route for the failure DAGs):
    every DAG file shows the import error, naming the line or the field."""
    path, bag = _bag(tmp_path, text, monkeypatch)
    assert sorted(Path(f).name for f in bag.import_errors) == [
        "backup_dr_backups.py", "backup_dr_disaster_recovery.py", "backup_dr_ops.py", "backup_dr_pitr.py"]
    assert all(named in e for e in bag.import_errors.values()), list(bag.import_errors.values())[0][-600:]
    out = run_cli("policy", "check", "--policy", str(path))
    assert out.returncode == 2 and named in out.stderr, out.stderr


def test_the_policy_error_dag_fails_and_alerts(airflow_db, sinks, tmp_path, monkeypatch):
    from tests.dags.conftest import run_dag

    smtp, slack = sinks
    text, carrier, named, _ = ENTRY_VARIANTS["misspelled top-level section"]
    (tmp_path / "policy.yaml").write_text(text, encoding="utf-8")
    monkeypatch.setenv("BACKUP_DR_POLICY", str(tmp_path / "policy.yaml"))
    dr, states = run_dag(carrier)
    assert str(dr.state) == "failed" and states == {"policy_error": "failed"}
    mail = smtp.wait_for(lambda m: carrier in smtp.text(m))
    assert mail and named in smtp.text(mail[0])
    assert slack.wait_for(lambda p: named in str(p["body"]))
