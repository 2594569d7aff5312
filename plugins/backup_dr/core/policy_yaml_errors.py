"""Turn a PyYAML error into a :class:`PolicyFileError` that points at the mistake, with a YAML hint.

PyYAML reports where it *noticed* a problem, which is often a line after the mistake: an
unclosed ``[`` or quote is reported where the file ends, a key missing its ``:`` on the
next line. Its ``context_mark`` says where the unfinished construct began; for those
constructs that line is the one to fix, and the message says both.
"""

from __future__ import annotations

import re

import yaml

from backup_dr.core.errors import PolicyFileError

#: Unfinished constructs whose start (the context mark) is where the mistake usually is.
_STARTS_AT_CONTEXT = ("flow sequence", "flow mapping", "quoted scalar", "simple key", "block scalar", "directive", "tag",
                      "anchor", "alias")

#: problem text -> what it usually means in a hand-edited YAML file.
_HINTS = (
    ("that cannot start any token", "YAML does not allow tabs for indentation (indent with spaces), nor a value starting "
                                    "with '@' or '`' (quote it)"),
    ("mapping values are not allowed", "a ': ' inside an unquoted value starts a new key: quote the value "
                                       "(e.g. \"a: b\"), or fix this line's indentation"),
    ("expected <block end>", "this line is indented differently from the lines above it: keys of one mapping "
                             "start in the same column, list items ('- ') too"),
    ("could not find expected ':'", "a key without its ':' (or a value continued on the next line without quotes)"),
    ("did not find expected key", "the indentation is off, or a '- ' / ':' is missing"),
    ("did not find expected '-'", "a list item without its '- ', or an indentation mistake"),
    ("expected ',' or ']'", "an unclosed '[' (or a missing ',' between items)"),
    ("expected ',' or '}'", "an unclosed '{' (or a missing ',' between entries)"),
    ("maximum nesting depth", "the policy needs a few levels of nesting: check for runaway brackets"),
    ("control characters are not allowed", "control characters are not allowed in YAML: remove it (a paste from a terminal?)"),
    ("found unexpected end of stream", "an unclosed quote or bracket"),
    ("found undefined alias", "an alias (*name) must come after its anchor (&name)"),
    ("found duplicate anchor", "each anchor (&name) may be defined once"),
    ("could not determine a constructor", "tags such as !!python/object are not allowed: the policy is data, never code; "
                                          "remove the tag"),
    ("duplicate name", "each key may appear once per mapping (PyYAML would silently keep only the last one)"),
    ("unacceptable character", "control characters are not allowed in YAML: remove it (a paste from a terminal?)"),
    ("alias references", "aliases are bounded so a hostile file cannot hang DAG parsing: write the values out"),
    ("expands to more than", "aliases are bounded so a hostile file cannot hang DAG parsing: write the values out"),
    ("nested more than", "the policy needs a few levels of nesting: check for runaway brackets"),
    ("recursive structure", "an alias cannot point into the value that contains it"),
    ("cannot read", "quote the value to keep it as text (e.g. '2026-13-45')"),
)


def _hint(problem: str) -> str:
    for needle, hint in _HINTS:
        if needle in problem:
            return hint
    return "check the YAML syntax around that line (indentation with spaces, ':' after keys, quotes closed)"


def _line_text(text: str, line: int) -> str:
    lines = text.splitlines()
    return lines[line - 1] if 0 < line <= len(lines) else ""


def _excerpt(text: str, line: int, column: int) -> str:
    """The line as written, with a caret under the column (tabs kept so the caret lines up)."""
    src = _line_text(text, line)
    if not src and line > len(text.splitlines()):
        return f"line {line} is the end of the file"
    start = max(column - 60, 0) if len(src) > 120 else 0  # a 200 KB line is shown around the column only
    shown = ("…" if start else "") + src[start: start + 120].rstrip() + ("…" if len(src) > start + 120 else "")
    pad = ("…" if start else "") + "".join(c if c == "\t" else " " for c in src[start: max(column - 1, 0)])
    return f"line {line}:\n    {shown}\n    {' ' * len(pad) if start else pad}^"


def describe(e: yaml.YAMLError, text: str, source: str) -> PolicyFileError:
    """The located error for ``e`` raised while reading ``text`` (the content of ``source``)."""
    if isinstance(e, yaml.reader.ReaderError):
        char = e.character if isinstance(e.character, str) else chr(e.character)
        pos = e.position  # a character index (pure-Python reader) or a UTF-8 byte offset (libyaml)
        if not (0 <= pos < len(text) and text[pos] == char):
            pos = len(text.encode("utf-8", "surrogatepass")[:pos].decode("utf-8", "ignore"))
        line = text.count("\n", 0, pos) + 1
        column = pos - (text.rfind("\n", 0, pos) + 1) + 1
        problem = f"unacceptable character #x{ord(char):04x} (control characters are not allowed)"
        return PolicyFileError(f"YAML syntax error at line {line}, column {column}: {problem}", source=source, line=line,
                               column=column, hint=_hint("unacceptable character"), detail=_excerpt(text, line, column))
    mark = getattr(e, "problem_mark", None)
    problem = getattr(e, "problem", None) or str(e)
    if mark is None:
        return PolicyFileError(f"YAML syntax error: {problem}", source=source, hint=_hint(problem))
    line, column = mark.line + 1, mark.column + 1
    kind = getattr(e, "kind", None) or ("YAML tag not allowed" if "constructor for the tag" in problem else "YAML syntax error")
    context, cmark = getattr(e, "context", None), getattr(e, "context_mark", None)
    if context and cmark is not None and cmark.line != mark.line and any(c in context for c in _STARTS_AT_CONTEXT):
        construct = re.sub(r"^while (parsing|scanning) (an? )?", "", context)
        where, wcol = cmark.line + 1, cmark.column + 1
        reason = (f"{kind} at line {where}, column {wcol}: {problem} (the {construct} starting there is not finished; "
                  f"the parser noticed it only at line {line}, column {column})")
    else:
        where, wcol = line, column
        reason = f"{kind} at line {line}, column {column}: {problem}"
        if "could not find expected ':'" in problem or "expected <block end>" in problem and not _line_text(text, line).strip():
            reason += f" (the parser reports the line after the mistake: check line {max(line - 1, 1)} too)"
    return PolicyFileError(reason, source=source, line=where, column=wcol, hint=_hint(problem), detail=_excerpt(text, where, wcol))
