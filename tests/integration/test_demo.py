"""The demo as a newcomer runs it: its printed commands work when pasted, and it prints no
warning caused by the product's own configuration.

The demo runs as ``scripts/demo.sh`` runs it (``PYTHONPATH=plugins .venv/bin/python -m
backup_dr.devstack.demo``, after setup; setup itself is not re-run here) with ``--keep`` and a
clean environment. Each command it prints is run by ``bash -c`` exactly as printed, from
another directory with a bare environment (no venv, no PYTHONPATH, no demo variables): the
``--keep`` one while the services run (every store), the closing hint after the demo has
stopped them (the local store). ``--only-critical`` keeps it to one backup class.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
BARE = {"PATH": "/usr/bin:/bin", "LANG": "C.UTF-8"}


class Output:
    """The demo's stdout+stderr, read by a thread (the demo blocks at "Press Ctrl-C")."""

    def __init__(self, stream):
        self.lines: list[str] = []
        self._thread = threading.Thread(target=self._read, args=(stream,), daemon=True)
        self._thread.start()

    def _read(self, stream):
        for line in iter(stream.readline, ""):
            self.lines.append(line.rstrip("\n"))

    def wait_for(self, pattern: str, proc: subprocess.Popen, timeout: float) -> re.Match:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for line in list(self.lines):
                if m := re.search(pattern, line):
                    return m
            if proc.poll() is not None and not self._thread.is_alive():
                break
            time.sleep(0.2)
        raise AssertionError(f"no line matching {pattern!r}; demo output:\n" + "\n".join(self.lines[-60:]))

    def text(self) -> str:
        self._thread.join(timeout=30)
        return "\n".join(self.lines)


def paste(command: str, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run(["bash", "-c", command], capture_output=True, text=True, cwd=cwd, env={**BARE, "HOME": str(cwd)},
                          timeout=180)


@pytest.mark.slow
def test_demo_hints_work_when_pasted_and_it_prints_no_config_warnings(tmp_path):
    work, elsewhere = tmp_path / "demo", tmp_path / "elsewhere"
    elsewhere.mkdir()
    env = {**BARE, "HOME": str(tmp_path), "PYTHONPATH": str(ROOT / "plugins")}
    proc = subprocess.Popen([sys.executable, "-m", "backup_dr.devstack.demo", "--workdir", str(work), "--keep", "--only-critical"],
                            cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            start_new_session=True)
    out = Output(proc.stdout)
    try:
        keep = out.wait_for(r"^  (\. .+ list)$", proc, timeout=600).group(1)
        out.wait_for(r"^Press Ctrl-C to stop\.$", proc, timeout=30)
        closing = out.wait_for(r"^Restore without Airflow, e\.g\.:  (.+)$", proc, timeout=5).group(1)
        env_file = work / "cli.env"
        assert oct(env_file.stat().st_mode & 0o777) == "0o600"  # it holds the stand-ins' connections now
        while_running = paste(keep, elsewhere)
        assert while_running.returncode == 0, while_running.stderr[-3000:]
        newest = re.search(r"critical_data\.mongodb\.full\.\d{8}T\d{6}Z", while_running.stdout)
        assert newest, while_running.stdout
        row = next(line for line in while_running.stdout.splitlines() if newest.group(0) in line)
        assert all(store in row for store in ("local", "s3", "gcs")), row
        os.killpg(proc.pid, signal.SIGINT)  # Ctrl-C
        assert proc.wait(timeout=120) == 0, out.text()[-3000:]
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(30)
    text = out.text()
    # after the demo: the closing hint, pasted, lists the same backup from the local store that is left
    after = paste(closing, elsewhere)
    assert after.returncode == 0, after.stderr[-3000:]
    row = next(line for line in after.stdout.splitlines() if newest.group(0) in line)
    assert "local" in row and "s3" not in row, row
    assert "AIRFLOW_CONN_BACKUP_S3" not in env_file.read_text()  # back to the local-only form
    # nothing a newcomer would take for a problem, from the product's own configuration
    for noise in ("DeprecationWarning", "deprecated", "Skipping masking", "too short"):
        assert noise not in text, [line for line in text.splitlines() if noise in line]
    assert "backup_critical_data: success" in text and "drill from" in text
