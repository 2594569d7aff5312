"""Root causes of policy problems: one typo is reported once, with everything it takes down.

The validator records a *knock-on* problem (``dr_scenarios.data_corruption.backup_class``:
its class is invalid) together with the entry that caused it (``classes.critical_data``).
From that link, the root problem (``classes.critical_data.schedule: '0 */4 * *' is not a
valid cron expression``) is what an error DAG, an alert, ``policy check`` and the CLI show,
and the dependents are listed after it instead of as problems of their own.
"""

from __future__ import annotations

Issue = tuple[str, str]


def entry_of(path: str) -> str:
    """The entry a field path belongs to: ``classes.a.jobs[0].source`` -> ``classes.a``."""
    head, _, rest = path.partition(".")
    head = head.split("[")[0]
    if not rest:
        return head
    return f"{head}.{rest.split('.')[0].split('[')[0]}"


def under(path: str, prefix: str) -> bool:
    return not prefix or path == prefix or path.startswith(prefix + ".") or path.startswith(prefix + "[")


def root_causes(issues: list[Issue], causes: dict[str, str], prefix: str) -> list[Issue]:
    """The problems that make ``prefix`` (an entry or field) invalid, knock-ons replaced by their roots."""
    out: list[Issue] = []
    seen: set[str] = set()
    todo = [prefix]
    while todo:
        pre = todo.pop(0)
        if pre in seen:
            continue
        seen.add(pre)
        for path, reason in issues:
            if not under(path, pre):
                continue
            if is_knock_on(path, issues, causes):
                todo.append(causes[path])
            elif (path, reason) not in out:
                out.append((path, reason))
    return out


def dependents(issues: list[Issue], causes: dict[str, str], entry: str) -> list[str]:
    """Entries invalid because of ``entry``, directly or through others, in the order found."""
    out: list[str] = []
    todo = [entry]
    while todo:
        cur = todo.pop(0)
        for path, _ in issues:
            cause = causes.get(path)
            if cause and under(cause, cur):
                dep = entry_of(path)
                if dep != entry and dep not in out:
                    out.append(dep)
                    todo.append(dep)
    return out


def is_knock_on(path: str, issues: list[Issue], causes: dict[str, str]) -> bool:
    """True when the problem at ``path`` only reports another entry's problems."""
    return path in causes and any(under(p, causes[path]) for p, _ in issues)


def summary_lines(issues: list[Issue], causes: dict[str, str]) -> list[str]:
    """Each root problem once, grouped by entry, then what that entry takes down; knock-ons are not repeated."""
    groups: dict[str, list[str]] = {}
    for path, reason in issues:
        if not is_knock_on(path, issues, causes):
            groups.setdefault(entry_of(path) if path else "", []).append(f"{path}: {reason}" if path else reason)
    lines: list[str] = []
    for entry, texts in groups.items():
        lines += texts
        deps = dependents(issues, causes, entry) if entry else []
        if deps:
            lines.append(f"  -> so these are invalid too: {', '.join(deps)}")
    return lines
