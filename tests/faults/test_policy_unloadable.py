"""Row 8b: a policy FILE that cannot be loaded at all still leaves a DAG that fails and alerts (issue 19).

Before, every DAG file raised at import: no DAG existed, not even the health monitor, and
nobody was alerted. Now, for each way the file can be unusable, through the real DagBag and
a real ``dag.test()`` run:

* every DAG file imports; ``backup_dr_policy_error`` (the watchdog: hourly, not paused on
  creation) and a degraded ``ops_backup_health`` exist;
* the watchdog's run fails, and the SMTP and Slack-webhook sinks receive its alert through the
  FALLBACK route (connections ``backup_dr_fallback_smtp`` / ``backup_dr_fallback_slack`` and
  ``$BACKUP_DR_FALLBACK_EMAIL_TO``: the policy's own routes are in the broken file), naming
  the file, the line and the parser's message;
* the degraded health check still reports backup ages from the fallback store;
* restoring the file brings every DAG back at the next parse, with no restart.
"""

from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest

from tests.faults.conftest import ROOT, run_cli, xcom

POLICY = (ROOT / "include" / "policy.yaml").read_text(encoding="utf-8")
ALL = {"backup_critical_data", "backup_operational_data", "backup_configuration", "backup_application_code",
       "ops_backup_health", "ops_restore_drill", "pitr_oplog_archive",
       "dr_database_server_failure", "dr_full_infrastructure_failure", "dr_data_corruption"}
WATCHDOG = "backup_dr_policy_error"
_UNCLOSED = POLICY.replace("  critical_data:\n", "  critical_data: [unclosed\n", 1)
_LINE = POLICY[: POLICY.index("  critical_data:\n")].count("\n") + 1

# name -> (what to put at the policy path: text, bytes, None = nothing, "dir" = a directory; what the alert must say)
CASES = {
    "YAML syntax error": (_UNCLOSED, [f"line: {_LINE}", "YAML syntax error", "not finished"]),
    "a Python tag": (POLICY.replace("  owner: platform-dba", "  owner: !!python/object/apply:os.system ['id']", 1),
                     ["line: 13", "YAML tag not allowed", "python/object/apply"]),
    "binary garbage": (b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\x00\x00\x01\x00", ["line: 3", "NUL byte", "binary"]),
    "an alias bomb": (POLICY + "lol0: &l0 [a, a, a, a, a, a, a, a, a]\n" + "".join(
        f"lol{i}: &l{i} [{', '.join([f'*l{i - 1}'] * 9)}]\n" for i in range(1, 10)), ["YAML limit exceeded", "line: "]),
    "missing file": (None, ["does not exist (named by $BACKUP_DR_POLICY)"]),
    "unreadable (a directory)": ("dir", ["is a directory"]),
}


@pytest.fixture
def fallback_route(sinks, monkeypatch):
    """The documented fallback route, pointed at this test's SMTP and webhook sinks."""
    smtp, slack = sinks
    monkeypatch.setenv("AIRFLOW_CONN_BACKUP_DR_FALLBACK_SMTP", json.dumps({
        "conn_type": "smtp", "host": "127.0.0.1", "port": smtp.port,
        "extra": {"disable_tls": True, "disable_ssl": True, "from_email": "backup-dr@korea-public-data.example"}}))
    monkeypatch.setenv("AIRFLOW_CONN_BACKUP_DR_FALLBACK_SLACK", json.dumps({
        "conn_type": "slackwebhook", "host": f"{slack.url}/services", "password": "T0FALLBACK/B0FALLBACK/fallback-secret"}))
    monkeypatch.setenv("BACKUP_DR_FALLBACK_EMAIL_TO", "oncall@korea-public-data.example")
    return smtp, slack


def _write(path: Path, content) -> None:
    if content == "dir":
        path.mkdir()
    elif isinstance(content, bytes):
        path.write_bytes(content)
    elif content is not None:
        path.write_text(content, encoding="utf-8")


def _bag():
    from airflow.dag_processing.dagbag import DagBag

    return DagBag(dag_folder=str(ROOT / "dags"))


@pytest.mark.parametrize("case", [c if c == "YAML syntax error" else pytest.param(c, marks=pytest.mark.slow) for c in CASES])
def test_an_unloadable_policy_file_leaves_a_watchdog_that_fails_and_alerts(case, airflow_db, fallback_route, tmp_path, monkeypatch):
    from tests.dags.conftest import run_dag

    smtp, slack = fallback_route
    content, says = CASES[case]
    path = tmp_path / "policy.yaml"
    _write(path, content)
    monkeypatch.setenv("BACKUP_DR_POLICY", str(path))
    bag = _bag()
    assert bag.import_errors == {}, bag.import_errors  # every DAG file imports
    assert set(bag.dags) == {WATCHDOG, "ops_backup_health"}, sorted(bag.dags)
    watchdog = bag.dags[WATCHDOG]
    assert watchdog.timetable.expression == "0 * * * *" and watchdog.is_paused_upon_creation is False  # hourly, runs at once
    assert "degraded" in bag.dags["ops_backup_health"].tags
    dr, states = run_dag(WATCHDOG)
    assert str(dr.state) == "failed" and states == {"policy_error": "failed"}, states
    mail = smtp.wait_for(lambda m: str(path) in smtp.text(m))
    assert mail, [smtp.text(m)[:300] for m in smtp.messages]
    text = smtp.text(mail[0])
    assert "POLICY FILE CANNOT BE LOADED" in text and all(s in text for s in says), text
    posts = slack.wait_for(lambda p: str(path) in str(p["body"]))
    assert posts and all(s in str(posts[0]["body"]) for s in says), posts


def test_degraded_health_reports_backup_ages_from_the_fallback_store(airflow_db, fallback_route, local_store_root, tmp_path,
                                                                      monkeypatch):
    """With the policy unreadable the health DAG cannot judge any RPO, but it still says how old the
    newest backups are, from the local store named by $BACKUP_DR_LOCAL_PATH (the fallback store)."""
    from backup_dr.core.artifacts.layout import BackupId
    from backup_dr.core.artifacts.writer import ArtifactWriter
    from backup_dr.core.files import backup_files
    from backup_dr.core.policy_model import FilesSource, Retention
    from backup_dr.core.stores.local import LocalStore
    from tests.cli.cli_support import backdate
    from tests.dags.conftest import run_dag

    smtp, _ = fallback_route
    (tmp_path / "config").mkdir()
    (tmp_path / "config" / "app.yaml").write_text("workers: 4\n")
    when = datetime.now(timezone.utc).replace(microsecond=0) - timedelta(hours=3)
    bid = BackupId.new("configuration", "app_config", "files", when)
    store = LocalStore(local_store_root, name="local")
    writer = ArtifactWriter(store, bid, source_type="files",
                            retention=Retention(keep_within=timedelta(days=180)), run_after=when)
    # its data is 3 h old too (ages are taken from the capture time, not the slot in the id)
    manifest = backdate(store, backup_files(FilesSource(name="app_config", path=str(tmp_path / "config")), writer),
                        timedelta(hours=3))
    path = tmp_path / "policy.yaml"
    path.write_text(_UNCLOSED, encoding="utf-8")
    monkeypatch.setenv("BACKUP_DR_POLICY", str(path))
    dr, states = run_dag("ops_backup_health")
    assert states == {"check_backup_health": "success"}, states
    report = xcom(dr, "check_backup_health")
    assert report["status"] == "critical" and report["degraded"] is True
    row = next(b for b in report["backups"] if b["backup_id"] == manifest.backup_id)
    assert row["complete_in"] == ["local"] and 3 * 3600 - 60 <= row["age_seconds"] <= 3 * 3600 + 600, row
    assert any("no RPO can be checked" in r for r in report["reasons"])
    mail = smtp.wait_for(lambda m: manifest.backup_id in smtp.text(m))
    assert mail and "3h" in smtp.text(mail[0]) and "UNKNOWN" in smtp.text(mail[0])


def test_degraded_health_says_plainly_when_no_store_can_be_read():
    from backup_dr.core.health_fallback import degraded_report
    from backup_dr.core.policy_fallback import fallback_stores

    specs, problems = fallback_stores({})  # neither BACKUP_DR_FALLBACK_STORES nor BACKUP_DR_LOCAL_PATH
    report = degraded_report({}, {}, problems, "YAML syntax error at line 3")
    assert specs == {} and report["backups"] == []
    assert any("cannot report backup ages either" in r and "BACKUP_DR_LOCAL_PATH" in r for r in report["reasons"]), report


def test_restoring_the_file_brings_every_dag_back_without_a_restart(airflow_db, tmp_path, monkeypatch):
    path = tmp_path / "policy.yaml"
    path.write_bytes(CASES["binary garbage"][0])
    monkeypatch.setenv("BACKUP_DR_POLICY", str(path))
    assert set(_bag().dags) == {WATCHDOG, "ops_backup_health"}
    path.write_text(POLICY, encoding="utf-8")  # fixed in place, as an operator would
    bag = _bag()  # the dag-processor's next parse, in the same process
    assert bag.import_errors == {} and set(bag.dags) == ALL, sorted(bag.dags)
    assert "degraded" not in bag.dags["ops_backup_health"].tags


def test_the_fallback_route_is_checked_at_parse_time_and_by_policy_check(airflow_db, tmp_path, monkeypatch, caplog):
    monkeypatch.setenv("BACKUP_DR_FALLBACK_EMAIL_TO", "oncall-at-example")
    path = tmp_path / "policy.yaml"
    path.write_text(POLICY, encoding="utf-8")
    monkeypatch.setenv("BACKUP_DR_POLICY", str(path))
    caplog.set_level("WARNING")
    _bag()
    assert "$BACKUP_DR_FALLBACK_EMAIL_TO: oncall-at-example is not an email address" in caplog.text
    out = run_cli("policy", "check", "--policy", str(path), env={"BACKUP_DR_FALLBACK_EMAIL_TO": "oncall@korea-public-data.example"})
    assert out.returncode == 0 and ("fallback alert route (alerts when this file cannot be loaded): email to "
                                    "oncall@korea-public-data.example via connection 'backup_dr_fallback_smtp'") in out.stdout, out.stdout
    out = run_cli("policy", "check", "--policy", str(path), env={"BACKUP_DR_FALLBACK_EMAIL_TO": "",
                                                                   "BACKUP_DR_FALLBACK_SLACK_CONN_ID": ""})
    assert out.returncode == 0 and "WARNING: fallback alert route: no fallback alert route" in out.stdout, out.stdout
