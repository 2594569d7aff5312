"""Every DAG file parses through Airflow's DagBag, with the conventions every DAG must keep."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]

EXPECTED = {
    "backup_critical_data", "backup_operational_data", "backup_configuration", "backup_application_code",
    "ops_backup_health", "ops_restore_drill", "pitr_oplog_archive",
    "dr_database_server_failure", "dr_full_infrastructure_failure", "dr_data_corruption",
}


@pytest.fixture(scope="module")
def dagbag(airflow_db):
    from airflow.dag_processing.dagbag import DagBag

    return DagBag(dag_folder=str(ROOT / "dags"))


def test_no_import_errors(dagbag):
    assert dagbag.import_errors == {}


def test_every_policy_dag_exists(dagbag):
    built = set(dagbag.dags)
    missing = EXPECTED - built
    assert not missing, missing


def test_conventions(dagbag):
    from airflow.providers.slack.notifications.slack_webhook import SlackWebhookNotifier
    from airflow.providers.smtp.notifications.smtp import SmtpNotifier
    from airflow.providers.standard.operators.hitl import HITLOperator

    for dag_id, dag in dagbag.dags.items():
        assert dag.tags and "backup-dr" in dag.tags, dag_id
        assert dag.doc_md and len(dag.doc_md) > 80, f"{dag_id}: doc_md must explain what it protects"
        assert dag.max_active_runs == 1, dag_id
        assert dag.catchup is False, dag_id
        for task in dag.tasks:
            where = f"{dag_id}.{task.task_id}"
            assert task.owner == "platform-dba", where
            # a human's answer is not retried: a rejected approval must stop the run
            assert task.retries >= 2 or isinstance(task, HITLOperator), where
            callbacks = task.on_failure_callback if isinstance(task.on_failure_callback, list) else [task.on_failure_callback]
            kinds = {type(c) for c in callbacks}
            assert SmtpNotifier in kinds and SlackWebhookNotifier in kinds, f"{where}: failure must alert by email and Slack"


def test_backup_dags_have_rpo_deadlines(dagbag):
    from backup_dr.core.policy import load_policy

    policy = load_policy(ROOT / "include" / "policy.yaml")
    for name, cls in policy.classes.items():
        dag = dagbag.dags[f"backup_{name}"]
        assert len(dag.deadline) == 1
        alert = dag.deadline[0]
        assert alert.interval == cls.objective.rpo
        assert alert.callback.path == "backup_dr.alerts.deadline_missed"  # importable by the triggerer (plugins/)


def _parse_in_subprocess(env_extra: dict[str, str], code: str) -> subprocess.CompletedProcess:
    import os

    env = {k: v for k, v in os.environ.items() if not k.startswith("AIRFLOW_CONN_")}
    env.update(env_extra)
    return subprocess.run([sys.executable, "-c", textwrap.dedent(code)], capture_output=True, text=True, env=env, timeout=300)


def test_parsing_needs_no_service_and_does_no_io(tmp_path):
    """DAG files parse with every service down and no connection defined, and touch nothing but
    the policy file: sockets are forbidden and every file opened is recorded."""
    out = _parse_in_subprocess(
        {"BACKUP_DR_LOCAL_PATH": str(tmp_path / "no-such-dir"), "PYTHONPATH": str(ROOT / "plugins")},
        f"""
        import builtins, socket, sys
        sys.path.insert(0, {str(ROOT / 'plugins')!r})
        import airflow  # imports and configuration first: those may read files
        from airflow.dag_processing.dagbag import DagBag
        opened = []
        real_open = builtins.open
        def spy_open(file, *a, **k):
            opened.append(str(file))
            return real_open(file, *a, **k)
        def no_socket(*a, **k):
            raise RuntimeError("network I/O at DAG parse time")
        socket.socket.connect = no_socket
        socket.create_connection = no_socket
        builtins.open = spy_open
        bag = DagBag(dag_folder={str(ROOT / 'dags')!r})
        builtins.open = real_open
        assert not bag.import_errors, bag.import_errors
        assert len(bag.dags) >= 6, sorted(bag.dags)
        mine = [f for f in opened if not f.endswith('.py') and 'site-packages' not in f and 'airflow' not in f.split('/')[-1]]
        print("OPENED", mine)
        """,
    )
    assert out.returncode == 0, out.stderr[-3000:]
    opened = eval(out.stdout.split("OPENED", 1)[1].strip().splitlines()[0])  # noqa: S307 - our own printed list
    assert all(f.endswith("policy.yaml") for f in opened), opened
    assert not (tmp_path / "no-such-dir").exists(), "parsing must not create the local store"


def test_bad_policy_entry_keeps_other_dags(tmp_path):
    """A broken class becomes a failing, alerting DAG; the rest still load."""
    text = (ROOT / "include" / "policy.yaml").read_text(encoding="utf-8")
    bad = text.replace('schedule: "0 2 * * *"', 'schedule: "every day at two"', 1)
    assert bad != text
    policy = tmp_path / "policy.yaml"
    policy.write_text(bad, encoding="utf-8")
    out = _parse_in_subprocess(
        {"BACKUP_DR_POLICY": str(policy), "PYTHONPATH": str(ROOT / "plugins")},
        f"""
        from airflow.dag_processing.dagbag import DagBag
        bag = DagBag(dag_folder={str(ROOT / 'dags')!r})
        assert not bag.import_errors, bag.import_errors
        broken = bag.get_dag("backup_operational_data")
        assert "policy-error" in broken.tags, broken.tags
        assert [t.task_id for t in broken.tasks] == ["policy_error"]
        assert "classes.operational_data.schedule" in broken.doc_md
        ok = bag.get_dag("backup_critical_data")
        assert "policy-error" not in ok.tags and "backup_mongodb" in ok.task_ids
        print("OK", len(bag.dags))
        """,
    )
    assert out.returncode == 0 and "OK" in out.stdout, out.stderr[-3000:]


def test_unreadable_policy_leaves_the_watchdog_dag(tmp_path):
    """No import error any more (nobody was alerted by one): the watchdog DAG carries the YAML error
    (issue 19; tests/faults/test_policy_unloadable.py runs it and checks the alerts)."""
    policy = tmp_path / "policy.yaml"
    policy.write_text("version: 1\nclasses: [unclosed\n")
    out = _parse_in_subprocess(
        {"BACKUP_DR_POLICY": str(policy), "PYTHONPATH": str(ROOT / "plugins")},
        f"""
        from airflow.dag_processing.dagbag import DagBag
        bag = DagBag(dag_folder={str(ROOT / 'dags')!r})
        assert bag.import_errors == {{}}, bag.import_errors
        assert sorted(bag.dags) == ["backup_dr_policy_error", "ops_backup_health"], sorted(bag.dags)
        doc = bag.dags["backup_dr_policy_error"].doc_md
        assert "YAML syntax error at line 2" in doc, doc
        print("OK")
        """,
    )
    assert out.returncode == 0 and "OK" in out.stdout, out.stderr[-3000:]
