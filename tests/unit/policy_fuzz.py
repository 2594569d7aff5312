"""A seeded fuzzer for the policy loader (run by ``test_policy_fuzz.py`` in a memory-limited child).

Each case is the shipped ``include/policy.yaml`` after one to three random mutations: bytes
deleted, inserted, garbled or truncated; lines duplicated, swapped or re-indented; values and
keys replaced by hostile ones (empty, huge, NaN, a date YAML cannot build, a Python tag, an
unset ``${VAR}``, nested structures); alias bombs, deep nesting; or a structural change to
the parsed document (a random field set to a random value) dumped back to YAML. Every case
goes through :func:`document_from_bytes` and :func:`parse_policy` (lenient, as the DAG files
load it, and strict, as ``policy check``); the outcome, its time and its peak memory
(how far it pushed the process's peak RSS) are written as one JSON line.

Usage: ``python tests/unit/policy_fuzz.py --seed 15 --seconds 20 --out results.jsonl --cases-dir DIR``
"""

from __future__ import annotations

import argparse
import itertools
import json
import math
import random
import resource
import sys
import time
import traceback
from datetime import date
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "plugins"))

from backup_dr.core.errors import PolicyError, PolicyFileError  # noqa: E402
from backup_dr.core.policy import parse_policy  # noqa: E402
from backup_dr.core.policy_causes import summary_lines  # noqa: E402
from backup_dr.core.policy_io import document_from_bytes  # noqa: E402

SHIPPED = (ROOT / "include" / "policy.yaml").read_text(encoding="utf-8")
ALPHABET = ":[]{}&*!|>'\"#-?,%@` \t\n0123456789abcxyz_.$"
HOSTILE_VALUES = [
    '""', '"  "', "~", "[]", "{}", ".nan", ".inf", "-1", "0", "99999999999999999999999999", "9" * 5000, "2026-13-45",
    "2026-01-01", "2026-01-01T25:00:00", "!!binary aGVsbG8=", "!!set {a, b}", "!!python/object/apply:os.system ['id']",
    "!!python/name:os.system", "*undefined", "&x", "${UNSET_FUZZ_VAR}", "${UNSET_FUZZ_VAR:-}", "${BACKUP_DR_LOCAL_PTAH}/x",
    "yes", "null", "[1, [2, [3]]]", "{a: 1, b: [x]}", "1:30", "0x1F", "1e400", "é한글", '"\\0\\x07"', "x" * 20000,
    "'0 */4 * *'", "@never", "3 parsecs", "-4h", "0s", "99999999999 years", "!!omap [a: 1]", "!!pairs [a: 1]",
]
HOSTILE_KEYS = ["retension", "1", "null", "~", "Classes", "x" * 300, "'a b'", "<<", "? [a]", "2026-01-01", "true"]
PY_VALUES = [None, "", "   ", 0, -5, 10 ** 30, 1.5, math.nan, math.inf, True, [], {}, [1, "a", None], {"x": 1},
             date(2026, 1, 1), "x" * 10000, ["", "  "], [[[]]], {"a": {"b": {"c": None}}}]


def _lines(text: str) -> list[str]:
    return text.split("\n")


def mutate_text(rng: random.Random, text: str) -> str | bytes:
    kind = rng.randrange(12)
    n = len(text)
    lines = _lines(text)
    i = rng.randrange(len(lines))
    if kind == 0:
        a = rng.randrange(n)
        return text[:a] + text[a + rng.randint(1, 20):]
    if kind == 1:
        a = rng.randrange(n)
        return text[:a] + "".join(rng.choice(ALPHABET) for _ in range(rng.randint(1, 8))) + text[a:]
    if kind == 2:
        lines.insert(i, lines[i])
    elif kind == 3:
        j = rng.randrange(len(lines))
        lines[i], lines[j] = lines[j], lines[i]
    elif kind == 4:
        lines[i] = rng.choice(["", " ", "  ", "\t", "   "]) + lines[i].lstrip(" ") if rng.random() < 0.5 else lines[i][rng.randint(1, 3):]
    elif kind == 5 and ": " in lines[i]:
        key = lines[i].split(": ", 1)[0]
        lines[i] = f"{key}: {rng.choice(HOSTILE_VALUES)}"
    elif kind == 6 and ":" in lines[i]:
        indent = len(lines[i]) - len(lines[i].lstrip(" "))
        lines[i] = " " * indent + rng.choice(HOSTILE_KEYS) + ":" + lines[i].split(":", 1)[1]
    elif kind == 7:
        snippet = rng.choice([
            "lol0: &l0 [a, a, a, a, a, a, a, a, a]\n" + "".join(f"lol{k}: &l{k} [{', '.join([f'*l{k - 1}'] * 9)}]\n" for k in range(1, 9)),
            "deep: " + "[" * rng.randint(30, 3000) + "]" * rng.randint(30, 3000) + "\n",
            "loop: &loop {a: *loop}\n",
            "big: [" + ", ".join(["x" * 40] * rng.randint(100, 20000)) + "]\n",
        ])
        return text + "\n" + snippet
    elif kind == 8:
        a = rng.randrange(n)
        raw = text.encode()
        return raw[:a] + bytes(rng.randrange(256) for _ in range(rng.randint(1, 6))) + raw[a:]
    elif kind == 9:
        return text[: rng.randrange(n)]
    elif kind == 10:
        return mutate_doc(rng, text)
    else:
        return text.replace("\n", rng.choice(["\r\n", "\r", "\n\n"]), rng.randint(1, 50))
    return "\n".join(lines)


def _paths(value, prefix=()):
    yield prefix
    if len(prefix) > 20:  # a recursive structure (an alias into itself) has no end
        return
    if isinstance(value, dict):
        for k, v in value.items():
            yield from _paths(v, prefix + (k,))
    elif isinstance(value, list):
        for k, v in enumerate(value):
            yield from _paths(v, prefix + (k,))


def mutate_doc(rng: random.Random, text: str) -> str:
    try:  # the generator's own read of a mutated text (the product's reader is what is tested)
        doc = yaml.load(text, Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader))  # noqa: S506
    except (yaml.YAMLError, RecursionError, ValueError):
        return text
    if not isinstance(doc, (dict, list)):
        return text
    paths = [p for p in itertools.islice(_paths(doc), 5000) if p]  # shared (aliased) values: bounded walk
    if not paths:
        return text
    path = rng.choice(paths)
    parent = doc
    for k in path[:-1]:
        parent = parent[k]
    value = rng.choice(PY_VALUES)
    if rng.random() < 0.2 and isinstance(parent, dict):
        parent[rng.choice([None, 1, "retension", "x" * 100])] = parent.pop(path[-1])
    else:
        parent[path[-1]] = value
    try:
        return yaml.safe_dump(doc, allow_unicode=True, sort_keys=False)
    except (yaml.YAMLError, RecursionError):  # a recursive structure from an alias the mutation made
        return text


def make_case(rng: random.Random) -> bytes:
    data: str | bytes = SHIPPED
    for _ in range(rng.randint(1, 3)):
        if isinstance(data, bytes):
            break
        data = mutate_text(rng, data)
    return data if isinstance(data, bytes) else data.encode("utf-8", errors="surrogatepass")


def clear(e: PolicyError) -> str | None:
    """None when the error is clear (names a field or a line, says something short); else why not."""
    if not e.issues:
        return "no problem listed"
    for path, reason in e.issues:
        if not reason or len(reason) > 2000:
            return f"bad reason {reason[:80]!r}"
        if not isinstance(e, PolicyFileError) and not path:
            return f"validation problem without a field path: {reason[:200]}"
    if isinstance(e, PolicyFileError) and e.line is None and not any(w in e.reason for w in ("NUL", "UTF", "empty", "mapping", "larger")):
        return f"file error without a line: {e.reason[:200]}"
    if len(str(e)) > 200_000:
        return "message longer than 200 KB"
    return None


def _peak_mb() -> float:
    """This process's own peak RSS: ``VmHWM`` belongs to the address space, which exec made new.
    (``ru_maxrss`` survives exec on Linux: a child of a big pytest process would report the
    parent's peak, e.g. 690 MB late in a full suite run.)"""
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def run_case(data: bytes) -> dict:
    peak_before = _peak_mb()
    start = time.perf_counter()
    outcome, detail = "policy", None
    try:
        doc = document_from_bytes(data, source="fuzz.yaml", environ={"BACKUP_DR_LOCAL_PATH": "/srv/backups"})
        policy = parse_policy(doc, strict=False, source="fuzz.yaml")
        summary_lines(list(policy.issues), policy.causes)
        for section in ("classes", "stores", "sources", "pitr", "dr_scenarios", "ops"):
            policy.broken(section)
        try:
            parse_policy(doc, strict=True, source="fuzz.yaml")
        except PolicyError as e:
            detail = clear(e)
            outcome = "policy" if detail is None else "unclear"
    except PolicyError as e:
        detail = clear(e)
        outcome = "error" if detail is None else "unclear"
    except BaseException as e:  # noqa: BLE001 - exactly what the fuzzer looks for
        outcome, detail = "crash", "".join(traceback.format_exception(e))[-3000:]
    seconds = time.perf_counter() - start
    return {"outcome": outcome, "detail": detail, "seconds": round(seconds, 4),
            "peak_growth_mb": round(_peak_mb() - peak_before, 1), "peak_mb": round(_peak_mb(), 1)}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--seed", type=int, default=15)
    ap.add_argument("--seconds", type=float, default=20)
    ap.add_argument("--out", required=True)
    ap.add_argument("--cases-dir", required=True)
    args = ap.parse_args(argv)
    rng = random.Random(args.seed)
    cases_dir = Path(args.cases_dir)
    cases_dir.mkdir(parents=True, exist_ok=True)
    deadline = time.monotonic() + args.seconds
    with open(args.out, "w") as out:
        n = 0
        while time.monotonic() < deadline:
            data = make_case(rng)
            case = cases_dir / f"case-{n:05d}.yaml"
            case.write_bytes(data)  # kept while it runs: a case that kills the child is on disk
            result = run_case(data)
            if result["outcome"] in ("policy", "error") and result["seconds"] < 2 and result["peak_growth_mb"] < 64:
                case.unlink()
            out.write(json.dumps({"case": case.name, **result}) + "\n")
            out.flush()
            n += 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
