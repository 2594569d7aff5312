"""``backup-dr``: the console entry point setup.sh puts in the venv, tested as on a fresh clone.

The clone is a copy of plugins/, include/ and scripts/ in a temporary directory whose .venv is
this project's venv (as the worktrees here share one); its package carries a marked version so
the test sees that the launcher runs the clone's code, found from the launcher's own path,
with no PYTHONPATH, from any directory, by name on PATH and through a symlink elsewhere.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
MARK = "0.1.0+fresh-clone"


def test_setup_installs_the_launcher():
    setup = (ROOT / "scripts" / "setup.sh").read_text()
    assert "bash scripts/install-cli.sh" in setup.split("\n#", 1)[-1]  # a command, not a comment


def test_backup_dr_command_runs_the_clones_code_from_anywhere(tmp_path):
    clone = tmp_path / "clone"
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc")
    for d in ("plugins", "include", "scripts"):
        shutil.copytree(ROOT / d, clone / d, ignore=ignore)
    (clone / ".venv").symlink_to((ROOT / ".venv").resolve(), target_is_directory=True)
    init = clone / "plugins" / "backup_dr" / "__init__.py"
    init.write_text(init.read_text().replace('__version__ = "0.1.0"', f'__version__ = "{MARK}"'))
    bare = {"PATH": "/usr/bin:/bin", "HOME": str(tmp_path)}  # no venv active, no PYTHONPATH, no policy variable
    out = subprocess.run(["bash", str(clone / "scripts" / "install-cli.sh")], capture_output=True, text=True, env=bare, timeout=60)
    assert out.returncode == 0, out.stderr
    launcher = clone / ".venv" / "bin" / "backup-dr"
    assert os.access(launcher, os.X_OK) and str(clone) not in launcher.read_text()  # no path baked in

    def run(cmd, env=bare):
        return subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=tmp_path, timeout=120)

    assert run([str(launcher), "--version"]).stdout.strip() == f"backup_dr {MARK}"
    on_path = run(["backup-dr", "--version"], env={**bare, "PATH": f"{clone / '.venv' / 'bin'}:/usr/bin:/bin"})
    assert on_path.returncode == 0 and on_path.stdout.strip() == f"backup_dr {MARK}", on_path.stderr
    (tmp_path / "bin").mkdir()
    (tmp_path / "bin" / "backup-dr").symlink_to(launcher)
    assert run([str(tmp_path / "bin" / "backup-dr"), "--version"]).stdout.strip() == f"backup_dr {MARK}"
    # a real command: the clone's own policy (include/policy.yaml found next to its package)
    check = run([str(launcher), "policy", "check", "--json"])
    assert check.returncode == 0, check.stderr
    assert str(clone / "include" / "policy.yaml") in check.stdout
