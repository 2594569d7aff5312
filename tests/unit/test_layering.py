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
