"""Fuzz the policy loader for a bounded time: it always returns a policy or a clear error, fast and small.

The generator (``policy_fuzz.py``, seeded, so a failure reproduces) runs in a child process
limited to 1 GiB of address space: a case that hangs or explodes kills the child, not the
suite, and is left on disk for the report.
"""

from __future__ import annotations

import json
import resource
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent
SECONDS = 20


def test_fuzzed_policies_end_in_a_policy_or_a_clear_error(tmp_path):
    out, cases = tmp_path / "results.jsonl", tmp_path / "cases"

    def limit():
        resource.setrlimit(resource.RLIMIT_AS, (1 << 30, 1 << 30))

    try:
        child = subprocess.run([sys.executable, str(HERE / "policy_fuzz.py"), "--seed", "15", "--seconds", str(SECONDS),
                                "--out", str(out), "--cases-dir", str(cases)],
                               capture_output=True, text=True, timeout=SECONDS + 120, preexec_fn=limit)
    except subprocess.TimeoutExpired:
        left = sorted(p.name for p in cases.glob("*.yaml"))
        pytest.fail(f"the loader hung on a fuzzed policy (the child ran {SECONDS + 120}s): {left[-1:]} in {cases}")
    results = [json.loads(line) for line in out.read_text().splitlines()] if out.exists() else []
    left = sorted(p.name for p in cases.glob("*.yaml"))
    assert child.returncode == 0, f"the fuzzer died (exit {child.returncode}) at {left[-1:]}:\n{child.stderr[-3000:]}"
    outcomes = Counter(r["outcome"] for r in results)
    assert len(results) >= 150, (len(results), outcomes)  # enough cases ran to mean something
    assert outcomes["policy"] and outcomes["error"], outcomes  # both kinds of outcome were exercised
    bad = [r for r in results if r["outcome"] not in ("policy", "error")]
    assert not bad, f"{len(bad)} of {len(results)} cases crashed or were unclear, e.g. {bad[0]['case']}:\n{bad[0]['detail']}"
    slow = [r for r in results if r["seconds"] >= 2]
    assert not slow, f"cases over 2 s: {[(r['case'], r['seconds']) for r in slow[:5]]}"
    big = [r for r in results if r["peak_growth_mb"] >= 64]
    assert not big, f"cases that grew the peak RSS by 64 MB or more: {[(r['case'], r['peak_growth_mb']) for r in big[:5]]}"
    assert results[-1]["peak_mb"] < 400, results[-1]  # the whole run, imports included


def test_the_peak_is_the_fuzzers_own_not_its_parents(tmp_path):
    """Late in a full run pytest itself is big, and Linux carries ``ru_maxrss`` across fork and
    exec: the fuzzer must report its own address space's peak, or the bound above fails for
    nothing (it did in CI: 692 MB)."""
    out = tmp_path / "results.jsonl"
    parent = (
        "import subprocess, sys\n"
        "ballast = bytearray(500 << 20)\n"
        "for i in range(0, len(ballast), 4096): ballast[i] = 1\n"
        f"sys.exit(subprocess.call([sys.executable, {str(HERE / 'policy_fuzz.py')!r}, '--seed', '15', '--seconds', '1',"
        f" '--out', {str(out)!r}, '--cases-dir', {str(tmp_path / 'cases')!r}], stdout=subprocess.DEVNULL))\n"
    )
    subprocess.run([sys.executable, "-c", parent], check=True, timeout=120)
    results = [json.loads(line) for line in out.read_text().splitlines()]
    assert results and results[-1]["peak_mb"] < 400, results[-1]
