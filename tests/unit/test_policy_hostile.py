"""The policy loader against hostile and broken files: every one ends in a clear error, fast and small.

What a new user (or an attacker with write access to the policy) can feed it: an alias bomb,
a huge file, binary garbage, text in another encoding, a typo in a ``${VAR}``, numbers no
one meant, values YAML cannot construct. Each must end in an error that names the file, the
line or the field and the fix, within seconds and a bounded amount of memory (the
"billion laughs" file hung ``policy check`` and DAG parsing at 2.3-3.6 GB before).
"""

from __future__ import annotations

import os
import resource
import subprocess
import sys
import time
from pathlib import Path

import pytest

from backup_dr.core.errors import PolicyError, PolicyFileError
from backup_dr.core.policy import load_policy, parse_policy, read_policy_document

ROOT = Path(__file__).resolve().parents[2]
POLICY_TEXT = (ROOT / "include" / "policy.yaml").read_text(encoding="utf-8")
MEMORY_LIMIT = 1 << 30  # the child's address space: far below the 2.3 GB the alias bomb took


def policy_check(path: Path, *, env: dict[str, str] | None = None, timeout: float = 60) -> tuple[subprocess.CompletedProcess, float]:
    """``python -m backup_dr policy check --policy PATH`` in a child limited to 1 GiB of address space."""

    def limit():
        resource.setrlimit(resource.RLIMIT_AS, (MEMORY_LIMIT, MEMORY_LIMIT))

    full = {**os.environ, "PYTHONPATH": str(ROOT / "plugins"), **(env or {})}
    start = time.monotonic()
    try:
        out = subprocess.run([sys.executable, "-m", "backup_dr", "policy", "check", "--policy", str(path)], env=full,
                             capture_output=True, text=True, timeout=timeout, preexec_fn=limit, cwd=ROOT)
    except subprocess.TimeoutExpired:
        pytest.fail(f"policy check of {path.name} did not finish within {timeout}s (a hang)")
    return out, time.monotonic() - start


def billion_laughs(levels: int = 10, width: int = 9) -> str:
    lines = [f"lol0: &l0 [{', '.join(['lol'] * width)}]"]
    for i in range(1, levels):
        lines.append(f"lol{i}: &l{i} [{', '.join([f'*l{i - 1}'] * width)}]")
    return "\n".join(lines) + "\n"


def file_error(tmp_path: Path, data: bytes | str) -> PolicyFileError:
    p = tmp_path / "policy.yaml"
    p.write_bytes(data if isinstance(data, bytes) else data.encode())
    with pytest.raises(PolicyFileError) as err:
        read_policy_document(p)
    return err.value


@pytest.mark.parametrize("variant, text, named", [
    ("billion laughs", POLICY_TEXT + billion_laughs(), "YAML limit exceeded at line"),
    ("many aliases", POLICY_TEXT + "a: &a x\nb: [" + ", ".join(["*a"] * 300) + "]\n", "more than 200 alias references"),
    ("fewer aliases, each a large list", POLICY_TEXT + "big: &b [" + ", ".join(["x" * 50] * 2000) + "]\n"
     + "\n".join(f"k{i}: [{', '.join(['*b'] * 10)}]" for i in range(15)) + "\n", "expands to more than"),
    ("recursive alias", POLICY_TEXT + "loop: &loop [*loop]\n", "recursive"),
    ("deep nesting", POLICY_TEXT + "deep: " + "[" * 5000 + "]" * 5000 + "\n", "nest"),  # ours or libyaml's bound
    ("nesting just past the bound", POLICY_TEXT + "deep: " + "[" * 45 + "]" * 45 + "\n", "nested more than 40 levels"),
])
def test_alias_bombs_and_deep_nesting_end_in_a_clear_error_fast(variant, text, named, tmp_path):
    path = tmp_path / "policy.yaml"
    path.write_text(text, encoding="utf-8")
    out, seconds = policy_check(path)
    assert out.returncode == 2, (out.returncode, out.stderr[-2000:])
    assert named in out.stderr and "line" in out.stderr and str(path) in out.stderr, out.stderr
    assert seconds < 30, seconds  # a hang bound, not a benchmark: the bomb ran until killed before


def test_a_file_larger_than_the_limit_is_refused(tmp_path):
    err = file_error(tmp_path, POLICY_TEXT + ("# padding\n" * 30_000))
    assert "larger than 256 KiB" in err.message and str(tmp_path / "policy.yaml") in err.message


@pytest.mark.parametrize("variant, data, named", [
    ("binary garbage", b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR" + os.urandom(64), "NUL byte"),
    ("Korean saved as CP949", POLICY_TEXT.encode("cp949", errors="replace"), "is not UTF-8 text: byte 0x"),
    ("UTF-16 with a BOM", POLICY_TEXT.encode("utf-16"), "UTF-16"),
    ("a control character", POLICY_TEXT.replace("version: 1", "version: 1\x07"), "unacceptable character #x0007"),
], ids=["binary", "cp949", "utf-16", "control-char"])  # fixed ids: parallel workers must collect the same tests
def test_binary_or_non_utf8_files_are_refused_naming_the_file(variant, data, named, tmp_path):
    path = tmp_path / "policy.yaml"
    path.write_bytes(data if isinstance(data, bytes) else data.encode())
    out, _ = policy_check(path)
    assert out.returncode == 2, (out.returncode, out.stderr)
    assert named in out.stderr and str(path) in out.stderr and "unexpected" not in out.stderr, out.stderr
    assert "line" in out.stderr or variant == "UTF-16 with a BOM", out.stderr


def test_an_unset_variable_without_default_is_refused_naming_it(tmp_path, monkeypatch):
    monkeypatch.setenv("BACKUP_DR_LOCAL_PATH", str(tmp_path))
    monkeypatch.delenv("BACKUP_DR_LOCAL_PTAH", raising=False)
    text = POLICY_TEXT.replace("path: ${BACKUP_DR_LOCAL_PATH:-/opt/airflow/backups}", "path: ${BACKUP_DR_LOCAL_PTAH}/backups")
    path = tmp_path / "policy.yaml"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(PolicyError) as err:
        load_policy(path)
    found = dict(err.value.issues)
    assert "${BACKUP_DR_LOCAL_PTAH} is not set and has no default" in found["stores.local.path"], found
    assert "did you mean BACKUP_DR_LOCAL_PATH?" in found["stores.local.path"]
    lenient = load_policy(path, strict=False)
    assert "local" not in lenient.stores  # never "/backups"
    assert lenient.root_causes("classes.critical_data") == [("stores.local.path", found["stores.local.path"])]
    out, _ = policy_check(path, env={"BACKUP_DR_LOCAL_PATH": str(tmp_path)})
    assert out.returncode == 2 and "BACKUP_DR_LOCAL_PTAH" in out.stderr, out.stderr


@pytest.fixture
def doc():
    return read_policy_document(ROOT / "include" / "policy.yaml")


def issues_of(doc) -> dict[str, str]:
    with pytest.raises(PolicyError) as err:
        parse_policy(doc, strict=True)
    return dict(err.value.issues)


def test_numbers_are_bounded_with_the_range_in_the_message(doc):
    doc["defaults"]["retries"] = 99999999999999999999999999
    doc["classes"]["critical_data"]["jobs"][0]["priority"] = 0
    doc["classes"]["critical_data"]["gfs"] = {"daily": 10 ** 6}
    doc["classes"]["operational_data"]["retention"] = "99999999999 years"
    doc["classes"]["operational_data"]["jobs"][1]["timeout"] = float("inf")
    doc["pitr"]["mongodb"]["interval"] = float("nan")
    found = issues_of(doc)
    assert found["defaults.retries"] == "must be from 0 to 20, got 99999999999999999999999999"
    assert found["classes.critical_data.jobs[0].priority"] == "must be from 1 to 9, got 0"
    assert found["classes.critical_data.gfs.daily"] == "must be from 0 to 1000, got 1000000"
    assert "'99999999999 years' is out of range: a duration must be from 1s to 36500d" in found["classes.operational_data.retention"]
    assert "out of range" in found["classes.operational_data.jobs[1].timeout"]
    assert "got NaN" in found["pitr.mongodb.interval"]


def test_type_errors_say_what_was_found(doc):
    from datetime import date

    doc["defaults"]["owner"] = ""
    doc["alerts"]["slack"]["conn_id"] = "   "
    doc["alerts"]["email"]["to"] = ["dba-team@korea-public-data.example", 42]
    doc["classes"]["critical_data"]["description"] = date(2026, 1, 1)
    doc["sources"]["mongodb"]["database"] = ["korea_public_data"]
    doc["classes"]["configuration"]["jobs"][0]["priority"] = 1.5
    found = issues_of(doc)
    assert found["defaults.owner"] == "must be a non-empty string, got an empty string"
    assert found["alerts.slack.conn_id"] == "must be a non-empty string, got a blank string (only spaces)"
    assert found["alerts.email.to"] == "must be a list of non-empty strings; item [1] is an integer"
    assert found["classes.critical_data.description"] == "must be a non-empty string, got a date"
    assert found["sources.mongodb.database"] == "must be a non-empty string, got a list"
    assert found["classes.configuration.jobs[0].priority"] == "must be a whole number from 1 to 9, got a number 1.5"


@pytest.mark.parametrize("variant, old, new, named", [
    ("an impossible date", "    retention: 3 months\n", "    retention: 2026-13-45\n", "cannot read '2026-13-45' as a YAML timestamp"),
    ("an integer of 5000 digits", "  retries: 2\n", "  retries: " + "9" * 5000 + "\n", "as a YAML int"),
    ("a key that is a list", "  owner: platform-dba\n", "  ? [a, b]\n  : c\n", "a key must be a plain value"),
    ("a Python tag", "  owner: platform-dba\n", "  owner: !!python/object/apply:os.system ['id']\n", "YAML tag not allowed"),
])
def test_values_yaml_cannot_construct_are_located(variant, old, new, named, tmp_path):
    assert old in POLICY_TEXT
    err = file_error(tmp_path, POLICY_TEXT.replace(old, new, 1))
    line = POLICY_TEXT.splitlines().index(old.rstrip("\n")) + 1
    assert named in err.reason and f"at line {line}" in err.reason and err.line == line, err.reason
