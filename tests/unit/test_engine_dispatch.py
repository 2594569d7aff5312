"""Source types are dispatched through the engine registry, nowhere else (issue 16).

A comparison of a type-ish value (``src.type``, ``manifest.source_type``, ``kind``) with a
source type's name, or a dict keyed by source-type names, outside the engines is the drift
the registry removed: each place used to keep its own list of types. Store types (local,
s3, gcs) are a different registry and not source names, so they pass.
"""

from __future__ import annotations

import ast
from pathlib import Path

from backup_dr.core.engines import ENGINES, engine_for, engine_for_journal, types_restored_by
from backup_dr.core.policy_inventory import SOURCE_FIELDS

PKG = Path(__file__).resolve().parents[2] / "plugins" / "backup_dr"
SOURCE_TYPES = set(ENGINES)

#: the registry and the engine packages themselves may name their own type
ALLOWED = ("core/engines/", "core/mongo/", "core/redis/", "core/files/", "core/postgres/", "core/gitbundle.py",
           "core/policy_inventory.py")  # the policy schema: one parser per engine, keyed by type (checked below)
#: files still allowed to dispatch on a source type by name (none: the DR steps in core/dr/ go through the registry too)
TODO: tuple[str, ...] = ()


def _names_source_type(node: ast.AST) -> bool:
    if isinstance(node, ast.Constant) and node.value in SOURCE_TYPES:
        return True
    return isinstance(node, (ast.Tuple, ast.List, ast.Set)) and any(_names_source_type(e) for e in node.elts)


def _typeish(node: ast.AST) -> bool:
    if isinstance(node, ast.Attribute):
        return node.attr in ("type", "source_type")
    return isinstance(node, ast.Name) and node.id in ("kind", "source_type", "src_type")


def offenders(tree: ast.AST) -> list[tuple[int, str]]:
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Compare):
            sides = [node.left, *node.comparators]
            if any(_typeish(s) for s in sides) and any(_names_source_type(s) for s in sides):
                found.append((node.lineno, ast.unparse(node)))
        elif isinstance(node, ast.Dict):
            keys = {k.value for k in node.keys if isinstance(k, ast.Constant)}
            if len(keys & SOURCE_TYPES) >= 2 and keys <= SOURCE_TYPES:  # a table of types (not URI schemes)
                found.append((node.lineno, ast.unparse(node)[:80]))
    return found


def test_no_source_type_dispatch_outside_the_engines():
    bad = []
    for path in sorted(PKG.rglob("*.py")):
        rel = path.relative_to(PKG).as_posix()
        if rel.startswith(ALLOWED) or rel in TODO:
            continue
        bad += [f"{rel}:{line}: {text}" for line, text in offenders(ast.parse(path.read_text(encoding="utf-8")))]
    assert not bad, "dispatch through backup_dr.core.engines instead:\n" + "\n".join(bad)


def test_the_check_finds_dispatch():
    code = 'if src.type == "mongodb": pass\nx = {"redis": 1, "files": 2}\nok = spec.type == "s3"\n'
    assert [line for line, _ in offenders(ast.parse(code))] == [1, 2]


def test_todo_files_still_need_it():
    """The lead shrinks TODO as the DR files move to the registry; a listed file that no longer
    dispatches must leave the list, so it cannot hide a new offender later."""
    for rel in TODO:
        path = PKG / rel
        if path.exists():
            assert offenders(ast.parse(path.read_text(encoding="utf-8"))), f"{rel} dispatches through the registry now: drop it from TODO"


def test_every_engine_has_a_policy_schema_and_a_restore_command():
    assert set(SOURCE_FIELDS) == SOURCE_TYPES
    for name, engine in ENGINES.items():
        assert engine_for(name) is engine and engine.type == name
        assert engine.label and engine.restore_commands
        assert name in types_restored_by(engine.restore_commands[0])
        module, cls = engine.backup_operator.split(":")
        assert module.startswith("backup_dr.operators.") and cls
        for journal_name in engine.journal_engines:
            assert engine_for_journal(journal_name) is engine
    assert engine_for_journal("from-a-newer-release") is None


def test_every_journal_record_kind_can_be_resumed_by_the_cli():
    """A new engine's journal name must come with its `restore resume` (or the check fails here,
    not at 3 a.m. in a resume); takeover names are names the engine writes."""
    from backup_dr.cli.restore_resume import _RESTORE_AGAIN

    written = {name for e in ENGINES.values() for name in e.journal_engines}
    assert set(_RESTORE_AGAIN) == written
    for engine in ENGINES.values():
        assert set(engine.journal_takeover) <= set(engine.journal_engines), engine.type
