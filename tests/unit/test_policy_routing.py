"""Pools, queues and priorities from the policy (backup_dr.core.routing): validated by the loader,
one answer for the DAG factory and the CLI."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from backup_dr.core.errors import PolicyError
from backup_dr.core.policy import load_policy, parse_policy, read_policy_document
from backup_dr.core.routing import class_queue, dump_queue, pool_for, pools, priority_weight, source_queue

ROOT = Path(__file__).resolve().parents[2]
POLICY = ROOT / "include" / "policy.yaml"


@pytest.fixture
def doc():
    return read_policy_document(POLICY)


def _issues(doc) -> dict[str, str]:
    with pytest.raises(PolicyError) as err:
        parse_policy(doc, strict=True)
    return dict(err.value.issues)


def test_queue_per_class_and_per_source_of_every_type(doc):
    doc["classes"]["critical_data"]["queue"] = "offsite"
    for name, queue in (("mongodb", "near_db"), ("redis_cache", "near-cache.1"), ("app_logs", "files"), ("app_repository", "git")):
        doc["sources"][name]["queue"] = queue
    p = parse_policy(doc)
    crit, ops = p.classes["critical_data"], p.classes["operational_data"]
    assert class_queue(crit) == "offsite" and class_queue(ops) is None
    # a dump runs on its source's queue; a source without one follows its class's queue, else the default
    assert dump_queue(p, crit, crit.jobs[0]) == "near_db"
    by_source = {j.source: dump_queue(p, ops, j) for j in ops.jobs}
    assert by_source == {"mongodb": "near_db", "redis_cache": "near-cache.1", "app_logs": "files", "app_uploads": None}
    doc["sources"]["mongodb"].pop("queue")
    p = parse_policy(doc)
    assert dump_queue(p, p.classes["critical_data"], p.classes["critical_data"].jobs[0]) == "offsite"
    assert source_queue(p, "mongodb") is None and source_queue(p, "redis_cache") == "near-cache.1"


@pytest.mark.parametrize("bad", ["near db", "a,b", "", "-lead", 7, ["q"], "x" * 101, None])
def test_bad_queue_names_are_refused_with_the_fix(doc, bad):
    doc["classes"]["critical_data"]["queue"] = bad
    doc["sources"]["redis_cache"]["queue"] = bad
    issues = _issues(doc)
    for path in ("classes.critical_data.queue", "sources.redis_cache.queue"):
        assert path in issues, issues
        assert "is not a queue name" in issues[path] and "--queues default,near_db" in issues[path]


def test_a_bad_queue_drops_only_its_entry_in_lenient_mode(doc):
    doc["classes"]["configuration"]["queue"] = "two words"
    p = parse_policy(doc, strict=False)
    assert "configuration" not in p.classes and {"critical_data", "operational_data"} <= set(p.classes)
    assert ("classes.configuration.queue" in dict(p.issues))


def test_misspelled_queue_key_is_named(doc):
    doc["sources"]["mongodb"]["queues"] = "near_db"
    assert "did you mean 'queue'" in _issues(doc)["sources.mongodb.queues"]


def test_the_critical_class_outranks_every_job_of_a_looser_class():
    p = load_policy(POLICY)
    weights = {(c.name, j.source, j.metadata_only): priority_weight(p, c, j) for c in p.classes.values() for j in c.jobs}
    crit = weights[("critical_data", "mongodb", False)]
    assert crit > max(w for (c, _, _), w in weights.items() if c != "critical_data")
    # inside a class, the seed orchestrator's order: MongoDB (1) > Redis (2) > files (3)
    ops = {s: w for (c, s, _), w in weights.items() if c == "operational_data"}
    assert ops["mongodb"] > ops["redis_cache"] > ops["app_logs"] == ops["app_uploads"]
    # tighter objective first: critical (4h) > operational (24h) > application_code (72h) > configuration (7d)
    top = {c: max(w for (cc, _, _), w in weights.items() if cc == c) for c in p.classes}
    assert sorted(top, key=top.get, reverse=True) == ["critical_data", "operational_data", "application_code", "configuration"]
    assert weights[("operational_data", "app_logs", False)] > weights[("application_code", "app_repository", False)]


def test_one_single_slot_pool_per_source_shared_by_every_class():
    p = load_policy(POLICY)
    got = pools(p)
    used = {j.source for c in p.classes.values() for j in c.jobs}
    assert set(got) == {pool_for(s) for s in used} and all(v["slots"] == 1 for v in got.values())
    assert "configuration, critical_data, operational_data" in got["backup_dr_mongodb"]["description"]


def test_cli_writes_the_airflow_pools_import_file(tmp_path):
    out = tmp_path / "pools.json"
    env = {**os.environ, "PYTHONPATH": str(ROOT / "plugins"), "BACKUP_DR_POLICY": str(POLICY)}
    proc = subprocess.run([sys.executable, "-m", "backup_dr", "pools", "--out", str(out)], env=env,
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    data = json.loads(out.read_text())
    assert data == pools(load_policy(POLICY))
    # the shape airflow's `pools import` reads: {name: {"slots": int, "description": str, ...}}
    assert all(isinstance(v["slots"], int) and isinstance(v["description"], str) for v in data.values())
