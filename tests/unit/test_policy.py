"""The policy validator: the shipped file is valid, and every class of mistake is named exactly."""

from __future__ import annotations

import copy
from datetime import timedelta
from pathlib import Path

import pytest
import yaml

from backup_dr.core.durations import format_duration, parse_duration
from backup_dr.core.errors import PolicyError
from backup_dr.core.policy import load_policy, parse_policy, read_policy_document

POLICY = Path(__file__).resolve().parents[2] / "include" / "policy.yaml"


@pytest.fixture
def doc():
    return read_policy_document(POLICY)


def issues_of(doc) -> list[tuple[str, str]]:
    with pytest.raises(PolicyError) as err:
        parse_policy(doc, strict=True)
    return err.value.issues


def one_issue(doc, path: str) -> str:
    found = [reason for p, reason in issues_of(doc) if p == path]
    assert found, f"no issue at {path}; got {issues_of(doc)}"
    return found[0]


def test_shipped_policy_has_the_seed_tables():
    p = load_policy(POLICY)
    assert set(p.classes) == {"critical_data", "operational_data", "configuration", "application_code"}
    crit = p.classes["critical_data"]
    assert crit.schedule.interval == timedelta(hours=4)
    assert crit.retention.keep_within == timedelta(days=90)
    assert crit.stores == ("local", "s3", "gcs")
    assert (crit.objective.rpo, crit.objective.rto) == (timedelta(hours=4), timedelta(minutes=30))
    assert p.classes["operational_data"].stores == ("local", "s3")
    assert p.classes["operational_data"].retention.keep_within == timedelta(days=30)
    assert p.classes["configuration"].schedule.interval == timedelta(days=7)
    assert p.classes["configuration"].retention.keep_within == timedelta(days=180)
    app = p.classes["application_code"]
    assert app.schedule.kind == "on_deploy" and app.retention.keep_within == timedelta(days=365)
    tiers = {n: (o.rpo, o.rto) for n, o in p.objectives.items()}
    assert tiers == {
        "critical_services": (timedelta(hours=4), timedelta(minutes=30)),
        "standard_services": (timedelta(hours=24), timedelta(hours=2)),
        "non_critical": (timedelta(hours=72), timedelta(hours=4)),
    }
    assert p.sources["mongodb"].collections == ("announcements", "businesses", "contents", "statistics")
    assert {(s.name, s.rpo, s.rto) for s in p.scenarios.values()} == {
        ("database_server_failure", timedelta(hours=4), timedelta(minutes=30)),
        ("full_infrastructure_failure", timedelta(hours=24), timedelta(hours=4)),
        ("data_corruption", timedelta(hours=1), timedelta(hours=2)),
    }
    assert p.alerts.email_to and p.alerts.slack_conn_id == "slack_backup_alerts"
    assert [j.source for j in p.classes["operational_data"].jobs] == ["mongodb", "redis_cache", "app_logs", "app_uploads"]
    assert p.issues == ()


def test_unknown_store_name(doc):
    doc["classes"]["critical_data"]["stores"] = ["local", "s3", "gsc"]
    msg = one_issue(doc, "classes.critical_data.stores[2]")
    assert "unknown store 'gsc'" in msg and "gcs" in msg


def test_bad_cron_expression(doc):
    doc["classes"]["critical_data"]["schedule"] = "0 */4 * *"
    msg = one_issue(doc, "classes.critical_data.schedule")
    assert "'0 */4 * *' is not a valid cron expression" in msg


def test_retention_shorter_than_schedule_interval(doc):
    doc["classes"]["operational_data"]["retention"] = "12h"
    msg = one_issue(doc, "classes.operational_data.retention")
    assert msg.startswith("'12h' is shorter than the schedule interval 1d")


def test_rpo_shorter_than_class_frequency(doc):
    doc["classes"]["configuration"].pop("rpo")
    doc["classes"]["configuration"].pop("rto")
    doc["classes"]["configuration"]["objective"] = "non_critical"
    msg = one_issue(doc, "classes.configuration.objective")
    assert "RPO 3d (non_critical) is shorter than the class frequency 7d" in msg


def test_class_with_no_source(doc):
    doc["classes"]["critical_data"]["jobs"] = []
    assert "needs at least one source" in one_issue(doc, "classes.critical_data.jobs")


def test_duplicate_job_source(doc):
    jobs = doc["classes"]["operational_data"]["jobs"]
    jobs.append(copy.deepcopy(jobs[1]))
    msg = one_issue(doc, "classes.operational_data.jobs[4].source")
    assert "duplicate name" in msg and "redis_cache" in msg


def test_duplicate_yaml_key_is_named(tmp_path):
    text = POLICY.read_text(encoding="utf-8").replace("  operational_data:\n", "  critical_data:\n", 1)
    p = tmp_path / "policy.yaml"
    p.write_text(text, encoding="utf-8")
    with pytest.raises(PolicyError) as err:
        load_policy(p)
    assert "duplicate name 'critical_data'" in str(err.value) and "line" in str(err.value)


def test_unknown_key_suggests_the_right_one(doc):
    doc["classes"]["critical_data"]["retension"] = doc["classes"]["critical_data"].pop("retention")
    assert "did you mean 'retention'" in one_issue(doc, "classes.critical_data.retension")


def test_wrong_types_are_named(doc):
    doc["classes"]["critical_data"]["jobs"][0]["priority"] = "high"
    doc["stores"]["s3"]["bucket"] = 42
    found = dict(issues_of(doc))
    assert found["classes.critical_data.jobs[0].priority"] == "must be a whole number from 1 to 9, got a string"
    assert found["stores.s3.bucket"] == "must be a non-empty string, got an integer"


def test_unknown_source_and_objective(doc):
    doc["classes"]["critical_data"]["jobs"][0]["source"] = "mongo"
    doc["classes"]["critical_data"]["objective"] = "gold"
    found = dict(issues_of(doc))
    assert "unknown source 'mongo'" in found["classes.critical_data.jobs[0].source"]
    assert "unknown objective 'gold'" in found["classes.critical_data.objective"]


def test_yaml_syntax_error_names_line(tmp_path):
    p = tmp_path / "policy.yaml"
    p.write_text("version: 1\nclasses:\n  a: [unclosed\n")
    with pytest.raises(PolicyError) as err:
        load_policy(p)
    assert "YAML syntax error at line" in str(err.value)


def test_approval_step_needs_instructions(doc):
    step = doc["dr_scenarios"]["full_infrastructure_failure"]["steps"][1]
    step.pop("instructions")
    assert "must tell the operator what to do" in one_issue(doc, "dr_scenarios.full_infrastructure_failure.steps[1].instructions")


def test_scenario_rpo_must_be_achievable(doc):
    doc["pitr"]["mongodb"]["interval"] = "90m"
    doc["classes"]["critical_data"]["objective"] = "critical_services"
    msg = one_issue(doc, "dr_scenarios.data_corruption.rpo")
    assert "1h cannot be met" in msg


def test_lenient_mode_drops_only_the_broken_entry(doc):
    doc["classes"]["operational_data"]["schedule"] = "every day"
    doc["stores"]["gcs"].pop("bucket")
    p = parse_policy(doc, strict=False)
    # gcs is broken, so every class using it is dropped too; operational_data has its own error
    assert set(p.classes) == {"application_code"}
    paths = [path for path, _ in p.issues]
    assert "classes.operational_data.schedule" in paths
    assert "stores.gcs.bucket" in paths
    assert any(path.startswith("classes.critical_data.stores") for path in paths)
    assert p.issues_for("classes.operational_data")


def test_lenient_mode_replaces_broken_alert_routes_by_the_fallback_route(doc):
    """A broken alerts section no longer takes every DAG down: the broken route is replaced by the
    fallback route (configured outside the file), and the problem stays listed for the policy-error DAG."""
    from backup_dr.core.policy_model import Alerts

    fallback = Alerts("backup_dr_fallback_smtp", ("oncall@korea-public-data.example",), "backup_dr_fallback_slack")
    doc["alerts"] = {}
    p = parse_policy(doc, strict=False, fallback_alerts=fallback)
    assert p.alerts == fallback and p.issues_for("alerts") and set(p.classes) == {
        "critical_data", "operational_data", "configuration", "application_code"}
    doc["alerts"] = {"email": {"conn_id": "smtp_backup_alerts", "to": ["dba"]}, "slack": {"conn_id": "slack_backup_alerts"}}
    p = parse_policy(doc, strict=False, fallback_alerts=fallback)  # only the broken route is replaced
    assert p.alerts == Alerts("backup_dr_fallback_smtp", ("oncall@korea-public-data.example",), "slack_backup_alerts")


def test_env_expansion(tmp_path, monkeypatch):
    monkeypatch.setenv("BACKUP_DR_LOCAL_PATH", "/srv/backups")
    monkeypatch.delenv("BACKUP_DR_S3_BUCKET", raising=False)
    p = load_policy(POLICY)
    assert p.stores["local"].path == "/srv/backups"
    assert p.stores["s3"].bucket == "korea-public-data-backups"


@pytest.mark.parametrize(
    "text,expected",
    [("4h", timedelta(hours=4)), ("30 minutes", timedelta(minutes=30)), ("3 months", timedelta(days=90)),
     ("1 year", timedelta(days=365)), ("4시간", timedelta(hours=4)), ("1h30m", timedelta(minutes=90)), (90, timedelta(seconds=90))],
)
def test_durations(text, expected):
    assert parse_duration(text) == expected


@pytest.mark.parametrize("bad", ["", "4 parsecs", "-1h", "h", True])
def test_bad_durations(bad):
    with pytest.raises(ValueError):
        parse_duration(bad)


def test_format_duration():
    assert [format_duration(timedelta(seconds=s)) for s in (45, 4 * 3600, 90 * 86400, 3600 + 120)] == ["45s", "4h", "90d", "1h 2m"]


def test_policy_roundtrips_through_yaml(doc):
    # what we read is plain data: dumping and re-parsing gives the same policy
    again = yaml.safe_load(yaml.safe_dump(doc, allow_unicode=True))
    assert parse_policy(again) == parse_policy(doc)


# --------------------------------------------------------------------------- `policy check` (issue 18)


def _policy_check(*args: str, env: dict[str, str] | None = None):
    import os
    import subprocess
    import sys

    full = {**os.environ, "PYTHONPATH": str(POLICY.parents[1] / "plugins"), **(env or {})}
    return subprocess.run([sys.executable, "-m", "backup_dr", "policy", "check", *args], env=full, capture_output=True,
                          text=True, timeout=120)


def test_policy_check_reports_one_root_error_with_what_it_takes_down(tmp_path):
    p = tmp_path / "policy.yaml"
    p.write_text(POLICY.read_text(encoding="utf-8").replace('schedule: "0 */4 * * *"', 'schedule: "0 */4 * *"', 1), encoding="utf-8")
    out = _policy_check("--policy", str(p))
    assert out.returncode == 2, out.stderr
    assert f"1 problem(s) in {p}" in out.stderr and "classes.critical_data.schedule: '0 */4 * *' is not a valid cron" in out.stderr
    assert ("-> so these are invalid too: pitr.mongodb, dr_scenarios.data_corruption, dr_scenarios.database_server_failure, "
            "dr_scenarios.full_infrastructure_failure") in out.stderr, out.stderr
    assert "invalid class" not in out.stderr and "backup_class:" not in out.stderr, out.stderr  # no knock-on lines


def test_unknown_names_get_a_did_you_mean(doc):
    doc["classes"]["critical_data"]["stores"] = ["local", "s3", "gsc"]
    doc["classes"]["operational_data"]["jobs"][1]["source"] = "redis_cahce"
    doc["dr_scenarios"]["data_corruption"]["backup_class"] = "critical_dat"
    found = dict(issues_of(doc))
    assert found["classes.critical_data.stores[2]"] == "unknown store 'gsc' (did you mean 'gcs'?); defined stores: gcs, local, s3"
    assert "unknown source 'redis_cahce' (did you mean 'redis_cache'?)" in found["classes.operational_data.jobs[1].source"]
    assert "(did you mean 'critical_data'?)" in found["dr_scenarios.data_corruption.backup_class"]


@pytest.mark.parametrize("variant, old, new, mistake_line, says", [
    ("an unclosed '['", "    stores: [local, s3]                   # 2중화\n", "    stores: [local, s3                    # 2중화\n",
     0, "the parser noticed it only at line"),
    ("a key without ':'", "    retention: 1 month\n", "    retention 1 month\n", 0, "could not find expected ':'"),
    ("a tab for indentation", "    retention: 1 month\n", "\tretention: 1 month\n", 0, "tabs for indentation"),
])
def test_a_yaml_syntax_error_points_at_the_line_of_the_mistake(variant, old, new, mistake_line, says, tmp_path):
    text = POLICY.read_text(encoding="utf-8")
    line = text[: text.index(old)].count("\n") + 1 + mistake_line
    p = tmp_path / "policy.yaml"
    p.write_text(text.replace(old, new, 1), encoding="utf-8")
    out = _policy_check("--policy", str(p))
    assert out.returncode == 2, out.stderr
    assert f"at line {line}," in out.stderr and says in out.stderr and new.strip()[:20] in out.stderr, out.stderr
    assert "hint:" in out.stderr


def test_a_missing_file_names_the_path_and_where_it_came_from(tmp_path):
    missing = tmp_path / "etc" / "policy.yaml"
    out = _policy_check(env={"BACKUP_DR_POLICY": str(missing)})
    assert out.returncode == 2 and f"policy file {missing} cannot be loaded: it does not exist (named by $BACKUP_DR_POLICY)" in out.stderr, out.stderr
    out = _policy_check("--policy", str(missing))
    assert out.returncode == 2 and "(named by --policy)" in out.stderr, out.stderr


def test_source_capabilities_come_from_the_engine_registry(doc):
    """PITR, partial jobs, restore_files steps and a scenario's database are engine capabilities
    (``pitr``, ``partial_jobs``, ``dr_role``), not type checks in the loader."""
    d = copy.deepcopy(doc)
    d["pitr"]["redis_cache"] = dict(d["pitr"]["mongodb"])
    assert "point-in-time recovery needs a MongoDB source; 'redis_cache' is redis" in one_issue(d, "pitr.redis_cache")
    d = copy.deepcopy(doc)
    d["classes"]["operational_data"]["jobs"][2]["metadata_only"] = True
    assert any("apply to MongoDB sources only; 'app_logs' is files" in m for _, m in issues_of(d))
    d = copy.deepcopy(doc)
    d["dr_scenarios"]["full_infrastructure_failure"]["steps"][6]["sources"] = ["app_config", "app_repository", "mongodb"]
    found = [m for p, m in issues_of(d) if p == "dr_scenarios.full_infrastructure_failure.steps[6].sources"]
    assert found == ["'app_repository' is not a files source", "'mongodb' is not a files source"]  # a git clone needs an empty dir
    d = copy.deepcopy(doc)
    d["dr_scenarios"]["database_server_failure"]["backup_class"] = "application_code"
    assert "takes no full MongoDB backup" in one_issue(d, "dr_scenarios.database_server_failure.backup_class")
