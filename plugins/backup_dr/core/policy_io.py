"""Reading the policy file, safely: it is the only I/O DAG parsing does, so it must survive anything.

Every DAG file and the break-glass CLI read this file, so whatever is in it (a typo, a file
saved in the wrong encoding, a paste of binary garbage, a hostile "billion laughs" alias bomb)
must end in a clear :class:`PolicyFileError` within milliseconds and a few MB, never in a hang,
an out-of-memory kill or a raw traceback:

* size: at most :data:`MAX_FILE_BYTES` are read (a policy is a few KB);
* encoding: UTF-8 only; NUL bytes, UTF-16/32 and undecodable bytes are refused with the line;
* YAML: safe tags only (``!!python/...`` is refused: the policy is data, never code), duplicate
  keys refused, nesting depth, alias references and the size after alias expansion bounded
  (PyYAML shares aliased objects, but anything that walks the tree, as the ``${VAR}``
  expansion does, pays for every reference), syntax errors located with a YAML-specific hint;
* ``${VAR:-default}`` expansion: a variable that is not set and has no default becomes an
  :class:`UnsetVariable`, which the validator reports under the field's path (so in lenient
  mode only the entry using it is dropped), instead of silently expanding to ``""``.
"""

from __future__ import annotations

import codecs
import os
import re
from pathlib import Path
from typing import Any

import yaml

from backup_dr.core.errors import PolicyFileError

MAX_FILE_BYTES = 256 * 1024  # the shipped policy is ~10 KB; PyYAML reads ~0.3 MB/s on a busy 2-core box
MAX_ALIASES = 200  # alias references (*name) in one file
MAX_DEPTH = 40  # nesting levels, counted after alias expansion
MAX_NODES = 20_000  # values, also after alias expansion (the shipped policy has ~700)
MAX_TEXT = 2_000_000  # characters of scalar text after alias expansion

_ENV = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}")


class UnsetVariable(str):
    """A policy value naming ``${VAR}`` that is not set and has no default (the text stays as written)."""

    variables: tuple[str, ...] = ()
    suggestions: dict[str, str] = {}


class _Limit(yaml.MarkedYAMLError):
    """A bound of :mod:`policy_io` was exceeded (reported like a YAML error, with its line)."""

    kind = "YAML limit exceeded"


#: libyaml's parser when PyYAML has it (30-100x faster than the pure-Python one, and it bounds
#: nesting itself); the pure-Python parser otherwise. Both raise the same error classes.
_BaseLoader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


class _PolicyLoader(_BaseLoader):
    """SafeLoader that refuses duplicate keys and non-hashable keys, locates values YAML cannot
    construct, and bounds the size after alias expansion (:func:`_expanded_size`)."""

    def get_single_node(self):
        node = super().get_single_node()
        if node is not None:
            _expanded_size(node, 1, {}, set())
        return node

    def construct_object(self, node, deep=False):
        try:
            return super().construct_object(node, deep=deep)
        except (ValueError, OverflowError) as e:  # e.g. a date 2026-13-45, an int of 5000 digits
            tag = node.tag.rsplit(":", 1)[-1]
            raise yaml.constructor.ConstructorError(
                None, None, f"cannot read {_short(node.value)} as a YAML {tag}: {e}", node.start_mark) from None


def _check_events(text: str) -> None:
    """First pass over the parser's events (iterative, cheap): bound alias references, values and
    nesting BEFORE anything is composed, so a hostile file is refused in milliseconds."""
    aliases = nodes = depth = 0
    for event in yaml.parse(text, Loader=_BaseLoader):
        if isinstance(event, yaml.AliasEvent):
            aliases += 1
            if aliases > MAX_ALIASES:
                raise _Limit(None, None, f"more than {MAX_ALIASES} alias references (*name)", event.start_mark)
        elif isinstance(event, (yaml.ScalarEvent, yaml.SequenceStartEvent, yaml.MappingStartEvent)):
            nodes += 1
            if nodes > MAX_NODES:
                raise _Limit(None, None, f"more than {MAX_NODES:,} values (a policy has a few hundred)", event.start_mark)
            if not isinstance(event, yaml.ScalarEvent):
                depth += 1
                if depth > MAX_DEPTH:
                    raise _Limit(None, None, f"values nested more than {MAX_DEPTH} levels deep", event.start_mark)
        elif isinstance(event, (yaml.SequenceEndEvent, yaml.MappingEndEvent)):
            depth -= 1


def _construct_mapping(loader: _PolicyLoader, node: yaml.MappingNode, deep: bool = False):
    seen: dict[Any, int] = {}
    for key_node, _ in node.value:
        key = loader.construct_object(key_node, deep=deep)
        try:
            hash(key)
        except TypeError:
            raise yaml.constructor.ConstructorError(None, None, "a key must be a plain value, not a list or mapping",
                                                    key_node.start_mark) from None
        if key in seen:
            raise yaml.constructor.ConstructorError(
                None, None, f"duplicate name {_short(key)} (first defined on line {seen[key] + 1})", key_node.start_mark)
        seen[key] = key_node.start_mark.line
    return yaml.SafeLoader.construct_mapping(loader, node, deep=deep)


_PolicyLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _construct_mapping)


def _expanded_size(node, depth: int, memo: dict[int, tuple[int, int, int]], active: set[int]) -> tuple[int, int, int]:
    """(values, characters, height) of ``node`` with every alias expanded; raises past the bounds.

    Memoised per node, so an alias bomb costs one visit per distinct node, not per reference."""
    if depth > MAX_DEPTH:
        raise _Limit(None, None, f"values nested more than {MAX_DEPTH} levels deep (after alias expansion)", node.start_mark)
    key = id(node)
    if key in memo:
        nodes, chars, height = memo[key]
        if depth + height - 1 > MAX_DEPTH:
            raise _Limit(None, None, f"values nested more than {MAX_DEPTH} levels deep (after alias expansion)", node.start_mark)
        return memo[key]
    if key in active:
        raise _Limit(None, None, "an alias refers to the value that contains it (a recursive structure)", node.start_mark)
    active.add(key)
    nodes, chars, height = 1, 0, 1
    if isinstance(node, yaml.ScalarNode):
        chars = len(node.value)
    else:
        children = node.value if isinstance(node, yaml.SequenceNode) else [n for pair in node.value for n in pair]
        for child in children:
            n, c, h = _expanded_size(child, depth + 1, memo, active)
            nodes, chars, height = nodes + n, chars + c, max(height, h + 1)
            if nodes > MAX_NODES or chars > MAX_TEXT:
                raise _Limit(None, None, f"the file expands to more than {MAX_NODES:,} values or {MAX_TEXT:,} characters "
                             "(aliases are expanded: a 'billion laughs' alias bomb?)", node.start_mark)
    active.discard(key)
    memo[key] = (nodes, chars, height)
    return memo[key]


def _short(value: Any, limit: int = 60) -> str:
    """``repr`` of a value as quoted in messages, shortened (a hostile value may be megabytes)."""
    try:
        text = repr(value)
    except ValueError:  # an int too long to print (Python's 4300-digit limit)
        return "<an integer of more than 4300 digits>"
    return text if len(text) <= limit else f"{text[: limit - 12]}…({len(text)} chars)"


# ----------------------------------------------------------------------------- ${VAR} expansion


def _expand_env(value: Any, names: set[str], environ: os._Environ | dict) -> Any:
    if isinstance(value, str):
        missing = [m.group(1) for m in _ENV.finditer(value) if m.group(1) not in environ and m.group(2) is None]
        if missing:
            out = UnsetVariable(value)
            out.variables = tuple(dict.fromkeys(missing))
            out.suggestions = {v: s for v in out.variables if (s := _closest(v, names | set(environ)))}
            return out
        return _ENV.sub(lambda m: environ.get(m.group(1)) or (m.group(2) or ""), value)
    if isinstance(value, list):
        return [_expand_env(v, names, environ) for v in value]
    if isinstance(value, dict):
        return {k: _expand_env(v, names, environ) for k, v in value.items()}
    return value


def _closest(name: str, candidates: set[str]) -> str | None:
    import difflib

    close = difflib.get_close_matches(name, sorted(c for c in candidates if c != name), n=1, cutoff=0.85)
    return close[0] if close else None


# ----------------------------------------------------------------------------- reading


def policy_location(explicit: str | os.PathLike | None = None) -> tuple[Path, str]:
    """The policy file to read and where that choice came from (for "file not found" messages):
    ``--policy``, ``$BACKUP_DR_POLICY``, else ``include/policy.yaml`` of this project / Airflow home."""
    if explicit:
        return Path(explicit), "--policy"
    env = os.environ.get("BACKUP_DR_POLICY")
    if env:
        return Path(env), "$BACKUP_DR_POLICY"
    here = Path(__file__).resolve()
    for parent in here.parents:
        candidate = parent / "include" / "policy.yaml"
        if candidate.is_file():
            return candidate, "the project's include/policy.yaml ($BACKUP_DR_POLICY is not set)"
    home = os.environ.get("AIRFLOW_HOME", "/opt/airflow")
    return Path(home) / "include" / "policy.yaml", f"$AIRFLOW_HOME/include/policy.yaml ({home}; $BACKUP_DR_POLICY is not set)"


def default_policy_path() -> Path:
    """``$BACKUP_DR_POLICY``, else ``include/policy.yaml`` of this project / Airflow home."""
    return policy_location()[0]


def read_policy_document(path: str | os.PathLike, *, origin: str | None = None) -> dict:
    """Read the file (bounded) and return its expanded document; :class:`PolicyFileError` otherwise."""
    p = Path(path)
    src = str(p)
    came = f" (named by {origin})" if origin and origin.startswith(("$", "--")) else f" ({origin})" if origin else ""
    fix = "point BACKUP_DR_POLICY (or --policy) at the policy file" if origin != "--policy" else "pass the policy file's path"
    try:
        with p.open("rb") as f:
            data = f.read(MAX_FILE_BYTES + 1)
    except FileNotFoundError:
        raise PolicyFileError(f"it does not exist{came}", source=src, hint=fix) from None
    except IsADirectoryError:
        raise PolicyFileError(f"it is a directory, not a file{came}", source=src, hint=fix) from None
    except OSError as e:
        raise PolicyFileError(f"it cannot be read{came}: {e.strerror}", source=src,
                              hint=f"check the file's permissions for the user running this (uid {os.getuid()})") from None
    return document_from_bytes(data, source=src)


def document_from_bytes(data: bytes, *, source: str = "<policy>", environ: dict | None = None) -> dict:
    """The checks of :func:`read_policy_document` after the read: size, decode, parse, bound, expand."""
    if len(data) > MAX_FILE_BYTES:
        raise PolicyFileError(f"it is larger than {MAX_FILE_BYTES // 1024} KiB (a policy is a few KB)", source=source,
                              hint="is it the right file? BACKUP_DR_POLICY may name a log, a dump or a device")
    text = _decode(data, source)
    try:
        _check_events(text)
        doc = yaml.load(text, Loader=_PolicyLoader)  # noqa: S506 - a SafeLoader subclass
    except yaml.YAMLError as e:
        from backup_dr.core.policy_yaml_errors import describe

        raise describe(e, text, source) from None
    if doc is None:
        raise PolicyFileError("it is empty", source=source, hint="start from the shipped include/policy.yaml")
    if not isinstance(doc, dict):
        kind = {list: "a list", str: "a single string"}.get(type(doc), type(doc).__name__)
        raise PolicyFileError(f"it must be a mapping of sections (version, stores, sources, classes, ...), "
                              f"got {kind}", source=source, line=1, hint="start from the shipped include/policy.yaml")
    env = os.environ if environ is None else environ
    return _expand_env(doc, set(_ENV_NAMES.findall(text)), env)


_ENV_NAMES = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)")


def _decode(data: bytes, source: str) -> str:
    for bom, name in ((codecs.BOM_UTF32_LE, "UTF-32"), (codecs.BOM_UTF32_BE, "UTF-32"),
                      (codecs.BOM_UTF16_LE, "UTF-16"), (codecs.BOM_UTF16_BE, "UTF-16")):
        if data.startswith(bom):
            raise PolicyFileError(f"it is {name} text; the policy must be UTF-8", source=source,
                                  hint=f"convert it: iconv -f {name} -t UTF-8 {source} > policy.utf8.yaml")
    nul = data.find(b"\x00")
    if nul >= 0:
        line = data.count(b"\n", 0, nul) + 1
        raise PolicyFileError(f"it contains a NUL byte (line {line}): a binary file, not YAML text",
                              source=source, line=line, hint="BACKUP_DR_POLICY must name the YAML policy, e.g. include/policy.yaml")
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as e:
        line = data.count(b"\n", 0, e.start) + 1
        column = e.start - (data.rfind(b"\n", 0, e.start) + 1) + 1
        raise PolicyFileError(
            f"it is not UTF-8 text: byte 0x{data[e.start]:02x} at line {line}, column {column} "
            "cannot be decoded (a binary file, or text saved in another encoding)", source=source, line=line, column=column,
            hint=f"save it as UTF-8 (Korean comments saved as CP949/EUC-KR: iconv -f CP949 -t UTF-8 {source})") from None
