"""Finding the stock MongoDB tools: MONGO_TOOLS_BIN, then PATH; a binary that does not run is broken, not found."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from backup_dr.devstack.mongo_tools import TOOLS, ToolsUnavailable, find_stock_tools


def _tool(directory: Path, name: str, body: str) -> None:
    path = directory / name
    path.write_text(f"#!/bin/sh\n{body}\n")
    path.chmod(path.stat().st_mode | stat.S_IXUSR)


def _working(directory: Path) -> Path:
    directory.mkdir()
    for name in TOOLS:
        _tool(directory, name, f'echo "{name} version: 100.8.0"; echo "git version: x"')
    return directory


def test_mongo_tools_bin_wins_over_path(tmp_path):
    on_path, named = _working(tmp_path / "path"), _working(tmp_path / "named")
    tools = find_stock_tools({"MONGO_TOOLS_BIN": str(named), "PATH": str(on_path)})
    assert tools.version == "100.8.0"
    assert {p.parent for p in tools.paths.values()} == {named}
    assert tools.env({"PATH": "/usr/bin"})["PATH"].split(os.pathsep)[0] == str(named)


def test_found_on_path_without_the_variable(tmp_path):
    on_path = _working(tmp_path / "path")
    assert find_stock_tools({"PATH": f"/nonexistent:{on_path}"}).path("bsondump") == on_path / "bsondump"


def test_missing_tool_names_the_variable(tmp_path):
    with pytest.raises(ToolsUnavailable, match="mongodump is not on PATH and MONGO_TOOLS_BIN is not set"):
        find_stock_tools({"PATH": str(tmp_path)})
    partial = _working(tmp_path / "partial")
    (partial / "bsondump").unlink()
    with pytest.raises(ToolsUnavailable, match=f"MONGO_TOOLS_BIN={partial} has no bsondump"):
        find_stock_tools({"MONGO_TOOLS_BIN": str(partial), "PATH": ""})


def test_a_crashing_binary_is_reported_broken(tmp_path):
    broken = _working(tmp_path / "broken")
    _tool(broken, "mongorestore", "kill -SEGV $$")
    with pytest.raises(ToolsUnavailable, match=r"mongorestore --version failed \(killed by signal 11\): the binary is damaged"):
        find_stock_tools({"MONGO_TOOLS_BIN": str(broken)})
