"""Reading the policy file: YAML that refuses duplicate keys, and ``${VAR:-default}`` expansion.

This is the only I/O DAG parsing does. Syntax errors are reported with line and column.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any

import yaml

from backup_dr.core.errors import PolicyError

_ENV = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}")


class _UniqueKeyLoader(yaml.SafeLoader):
    """SafeLoader that refuses duplicate mapping keys (PyYAML silently keeps the last one)."""


def _construct_mapping(loader: _UniqueKeyLoader, node: yaml.MappingNode, deep: bool = False):
    seen: dict[Any, int] = {}
    for key_node, _ in node.value:
        key = loader.construct_object(key_node, deep=deep)
        if key in seen:
            raise yaml.constructor.ConstructorError(
                None,
                None,
                f"duplicate name {key!r} (first defined on line {seen[key] + 1})",
                key_node.start_mark,
            )
        seen[key] = key_node.start_mark.line
    return yaml.SafeLoader.construct_mapping(loader, node, deep=deep)


_UniqueKeyLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _construct_mapping)


def _expand_env(value: Any) -> Any:
    if isinstance(value, str):
        return _ENV.sub(lambda m: os.environ.get(m.group(1)) or (m.group(2) or ""), value)
    if isinstance(value, list):
        return [_expand_env(v) for v in value]
    if isinstance(value, dict):
        return {k: _expand_env(v) for k, v in value.items()}
    return value


def read_policy_document(path: str | os.PathLike) -> dict:
    """Read the YAML (the only I/O DAG parsing does); syntax errors name line and column."""
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8")
    except OSError as e:
        raise PolicyError([("", f"cannot read policy file: {e.strerror}")], source=str(p)) from e
    try:
        doc = yaml.load(text, Loader=_UniqueKeyLoader)  # noqa: S506 - SafeLoader subclass
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        where = f"line {mark.line + 1}, column {mark.column + 1}: " if mark else ""
        problem = getattr(e, "problem", None) or str(e)
        raise PolicyError([("", f"YAML syntax error at {where}{problem}")], source=str(p)) from e
    if not isinstance(doc, dict):
        raise PolicyError([("", "the policy file must be a mapping of sections")], source=str(p))
    return _expand_env(doc)


def default_policy_path() -> Path:
    """``$BACKUP_DR_POLICY``, else ``include/policy.yaml`` of this project / Airflow home."""
    env = os.environ.get("BACKUP_DR_POLICY")
    if env:
        return Path(env)
    here = Path(__file__).resolve()
    for parent in here.parents:
        candidate = parent / "include" / "policy.yaml"
        if candidate.is_file():
            return candidate
    return Path(os.environ.get("AIRFLOW_HOME", "/opt/airflow")) / "include" / "policy.yaml"
