"""The alert rules users load into Prometheus, tested with the real ``promtool`` (Debian
``prometheus`` package) on synthetic series, and checked against what /metrics serves."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from backup_dr.ui.metrics import METRICS

ROOT = Path(__file__).resolve().parents[2]
RULES_DIR = ROOT / "include" / "prometheus"
RULES = RULES_DIR / "backup-dr.rules.yml"
RULE_TESTS = RULES_DIR / "backup-dr.rules.test.yml"
PROMTOOL = shutil.which("promtool")

pytestmark = pytest.mark.skipif(PROMTOOL is None and not os.environ.get("CI"),
                                reason="promtool missing: bash scripts/setup.sh installs the Debian prometheus package")


def promtool(*args: str, cwd: Path = RULES_DIR) -> subprocess.CompletedProcess:
    assert PROMTOOL, "promtool is not installed (Debian package prometheus; scripts/setup.sh installs it)"
    return subprocess.run([PROMTOOL, *args], cwd=cwd, capture_output=True, text=True, timeout=300)


def test_rules_are_valid():
    out = promtool("check", "rules", str(RULES))
    assert out.returncode == 0 and "SUCCESS" in out.stdout, out.stdout + out.stderr


def test_promtool_unit_tests_pass():
    out = promtool("test", "rules", RULE_TESTS.name)
    assert out.returncode == 0 and "SUCCESS" in out.stdout, out.stdout + out.stderr


def test_every_alert_is_tested_firing_and_not_firing():
    rules = [r for g in yaml.safe_load(RULES.read_text())["groups"] for r in g["rules"]]
    alerts = [r["alert"] for r in rules]
    cases = [c for t in yaml.safe_load(RULE_TESTS.read_text())["tests"] for c in t["alert_rule_test"]]
    fired = {c["alertname"] for c in cases if c["exp_alerts"]}
    assert set(alerts) <= fired, set(alerts) - fired
    # a rule that waits ("for") is also shown NOT firing before it does (exp_alerts lists every
    # alert expected at that time, so a series that must not fire is tested wherever a case exists)
    quiet = {c["alertname"] for c in cases if not c["exp_alerts"]}
    waiting = {r["alert"] for r in rules if r.get("for")}
    assert waiting <= quiet, waiting - quiet
    for required in ("BackupRPOBreached", "RestoreDrillOverdue", "RestoreDrillOverRTO", "PITRLagHigh",
                     "BackupStoreUnreachable", "BackupSizeDropped"):
        assert required in alerts


def test_rules_and_their_tests_use_only_series_the_endpoint_serves():
    names = set(re.findall(r"\bbackup_dr_[a-z_]+\b", RULES.read_text()))
    assert names and names <= set(METRICS), names - set(METRICS)
    series = {re.match(r"[a-z_]+", s["series"]).group(0) for t in yaml.safe_load(RULE_TESTS.read_text())["tests"]
              for s in t["input_series"]}
    assert series - {"up"} <= set(METRICS), series - set(METRICS)
    for t in yaml.safe_load(RULE_TESTS.read_text())["tests"]:  # and with the labels it gives them
        for s in t["input_series"]:
            name, _, labels = s["series"].partition("{")
            if name in METRICS:
                assert set(re.findall(r"(\w+)=", labels)) == set(METRICS[name][0]), s["series"]


def test_a_broken_rule_is_caught(tmp_path):
    """The unit tests can fail: an RPO rule without its 5-minute ``for`` fires too early."""
    rules = RULES.read_text()
    broken = rules.replace("> on (class) group_left () backup_dr_rpo_target_seconds\n        for: 5m",
                           "> on (class) group_left () backup_dr_rpo_target_seconds", 1)
    assert broken != rules
    (tmp_path / RULES.name).write_text(broken)
    tests = yaml.safe_load(RULE_TESTS.read_text())
    tests["tests"] = tests["tests"][:1]  # the RPO scenario only
    (tmp_path / RULE_TESTS.name).write_text(yaml.safe_dump(tests, sort_keys=False))
    out = promtool("test", "rules", RULE_TESTS.name, cwd=tmp_path)
    assert out.returncode != 0 and "BackupRPOBreached" in out.stdout + out.stderr, out.stdout + out.stderr
