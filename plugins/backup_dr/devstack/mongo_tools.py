"""The stock MongoDB Database Tools (mongodump, mongorestore, bsondump), found as a user's machine has them.

The README promises that every MongoDB backup restores with stock ``mongorestore`` when this
product and Airflow are both gone; the tests and benchmarks prove it with the real tools, so
they need one way to find them: the directory named by ``MONGO_TOOLS_BIN`` first, else
``PATH``. A tool that is present but does not run (``--version`` fails, e.g. a damaged copy)
is reported as such, never mistaken for a working one. Not used by the product at run time.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

ENV_VAR = "MONGO_TOOLS_BIN"
TOOLS = ("mongodump", "mongorestore", "bsondump")


class ToolsUnavailable(RuntimeError):
    """A stock tool is missing or broken; the message says which and how to provide it."""


@dataclass(frozen=True)
class StockTools:
    paths: dict[str, Path]
    version: str  # e.g. "100.8.0", from ``mongorestore --version``

    def path(self, name: str) -> Path:
        return self.paths[name]

    def env(self, base: dict[str, str] | None = None) -> dict[str, str]:
        """An environment whose PATH starts with the tools' directories (for README commands run by a shell)."""
        env = dict(os.environ if base is None else base)
        dirs = list(dict.fromkeys(str(p.parent) for p in self.paths.values()))
        env["PATH"] = os.pathsep.join(dirs + [env.get("PATH", "")])
        return env

    def run(self, name: str, *args: str, cwd: str | os.PathLike | None = None, stdin=None,
            timeout: float = 300) -> subprocess.CompletedProcess:
        return subprocess.run([str(self.paths[name]), *args], cwd=cwd, stdin=stdin, capture_output=True,
                              text=True, timeout=timeout)


def _locate(name: str, bin_dir: str | None, search_path: str | None) -> Path:
    if bin_dir:
        path = Path(bin_dir) / name
        if not path.is_file():
            raise ToolsUnavailable(f"{ENV_VAR}={bin_dir} has no {name}; point {ENV_VAR} at the directory holding "
                                   f"mongodump, mongorestore and bsondump (MongoDB Database Tools 100.x)")
        return path
    found = shutil.which(name, path=search_path)
    if not found:
        raise ToolsUnavailable(f"{name} is not on PATH and {ENV_VAR} is not set; install the MongoDB Database "
                               f"Tools 100.x or set {ENV_VAR} to the directory holding mongodump, mongorestore and bsondump")
    return Path(found)


def _version(name: str, path: Path) -> str:
    try:
        out = subprocess.run([str(path), "--version"], capture_output=True, text=True, timeout=30)
    except OSError as e:
        raise ToolsUnavailable(f"{path} does not run ({e}); replace it or point {ENV_VAR} at a working copy") from e
    first = (out.stdout or "").splitlines()[:1]
    if out.returncode != 0 or not first or "version" not in first[0]:
        how = f"killed by signal {-out.returncode}" if out.returncode < 0 else f"exit code {out.returncode}"
        raise ToolsUnavailable(f"{path} --version failed ({how}): the binary is damaged or not for this machine; "
                               f"replace it or point {ENV_VAR} at a working copy")
    return first[0].split("version:")[-1].strip()


def find_stock_tools(env: dict[str, str] | None = None) -> StockTools:
    """All three tools, each checked to run; :class:`ToolsUnavailable` names what is wrong."""
    env = os.environ if env is None else env
    bin_dir = env.get(ENV_VAR) or None
    paths = {name: _locate(name, bin_dir, env.get("PATH")) for name in TOOLS}
    versions = {name: _version(name, path) for name, path in paths.items()}
    return StockTools(paths, versions["mongorestore"])
