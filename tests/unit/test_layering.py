"""The core never imports Airflow, so the break-glass CLI runs with Airflow gone."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

PKG = Path(__file__).resolve().parents[2] / "plugins" / "backup_dr"


def _imports(path: Path) -> set[str]:
    names = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            names |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module)
    return names


def test_core_and_cli_never_import_airflow():
    offenders = []
    for sub in ("core", "cli"):
        for path in (PKG / sub).rglob("*.py"):
            bad = sorted(n for n in _imports(path) if n == "airflow" or n.startswith("airflow."))
            if bad:
                offenders.append(f"{path.relative_to(PKG)}: {bad}")
    assert not offenders, offenders


def test_cli_help_runs_with_airflow_unimportable():
    # sys.modules["airflow"] = None makes every `import airflow...` raise ImportError
    code = "import sys; sys.modules['airflow'] = None; from backup_dr.cli.main import main; raise SystemExit(main(sys.argv[1:]))"
    for argv in (["--help"], ["policy", "check"]):
        out = subprocess.run([sys.executable, "-c", code, *argv], capture_output=True, text=True, cwd=PKG.parents[1],
                             env={"PYTHONPATH": str(PKG.parent), "PATH": "/usr/bin:/bin"})
        assert out.returncode == 0, out.stderr
    assert "restore" in out.stdout or "policy OK" in out.stdout


def test_only_the_hooks_resolve_connections_in_the_airflow_layer():
    """Operators, DAG factories, UI and alerts get clients from :mod:`backup_dr.hooks`; none reads
    an Airflow connection or builds a provider hook itself (one S3/GCS client path, the CLI's)."""
    patterns = ("get_connection(", "S3Hook", "GCSHook", "MongoHook", "RedisHook", "AwsBaseHook", "boto3.client(",
                "boto3.session", "storage.Client(")
    offenders = []
    for path in PKG.rglob("*.py"):
        rel = path.relative_to(PKG)
        if rel.parts[0] in ("hooks", "core", "cli", "devstack"):  # core and cli never import Airflow (above)
            continue
        text = path.read_text(encoding="utf-8")
        offenders += [f"{rel}: {p}" for p in patterns if p in text]
    assert not offenders, offenders
    hook_src = "\n".join(p.read_text(encoding="utf-8") for p in (PKG / "hooks").glob("*.py"))
    assert "S3Hook(" not in hook_src and "GCSHook(" not in hook_src  # the stores use the core builders, as the CLI does
