"""The project's exceptions.

Every error carries a *message* (what failed), an optional *detail* (why) and an optional
*hint* (what to do), in the manner of WAL-E and Barman: the person reading it at 3 a.m.
should not need the source code. ``retryable`` tells the Airflow adapters whether to let
``retries`` apply (transient I/O) or to fail the task for good (bad policy, corrupt data).
"""

from __future__ import annotations


class BackupDRError(Exception):
    """Base class: message, detail, hint."""

    retryable = False

    def __init__(self, message: str, *, detail: str | None = None, hint: str | None = None):
        super().__init__(message)
        self.message = message
        self.detail = detail
        self.hint = hint

    def __str__(self) -> str:
        parts = [self.message]
        if self.detail:
            parts.append(f"detail: {self.detail}")
        if self.hint:
            parts.append(f"hint: {self.hint}")
        return "\n  ".join(parts)


class PolicyError(BackupDRError):
    """The policy file is malformed or inconsistent. Carries every problem found.

    ``causes`` maps a knock-on problem's path to the entry whose own problems caused it
    (``dr_scenarios.x.backup_class`` -> ``classes.critical_data``): the message lists each
    ROOT problem once, with what it takes down, instead of one line per dependent entry.
    """

    def __init__(self, issues: list[tuple[str, str]], *, source: str | None = None, causes: dict[str, str] | None = None,
                 hint: str | None = None):
        from backup_dr.core.policy_causes import is_knock_on, summary_lines

        self.issues = list(issues)
        self.causes = dict(causes or {})
        self.source = source
        where = f" in {source}" if source else ""
        lines = summary_lines(self.issues, self.causes)
        roots = sum(1 for p, _ in self.issues if not is_knock_on(p, self.issues, self.causes))
        message = f"{roots} problem(s){where}:\n    " + "\n    ".join(lines)
        super().__init__(message, hint=hint or "fix the named fields in the policy file and reload")


class PolicyFileError(PolicyError):
    """The policy file cannot be read as a policy at all: missing, unreadable, too large, not UTF-8,
    not YAML, or hostile. Nothing can be built from it, so the DAG files fall back to the
    watchdog DAG, which alerts with ``source``, ``line`` and ``reason``."""

    def __init__(self, reason: str, *, source: str, line: int | None = None, column: int | None = None,
                 hint: str | None = None, detail: str | None = None):
        BackupDRError.__init__(self, f"policy file {source} cannot be loaded: {reason}", detail=detail,
                               hint=hint or "fix the file and reload")
        self.issues, self.causes, self.source = [("", reason)], {}, source
        self.reason, self.line, self.column = reason, line, column


class ConnectionConfigError(BackupDRError):
    """A connection id is missing or unusable. Never includes the secret itself."""


class TransientError(BackupDRError):
    """A network or service hiccup: the same call may well succeed on retry."""

    retryable = True


class StoreError(TransientError):
    """A backup store could not be read or written."""


class StoreSpaceError(BackupDRError):
    """The store has no room for the artifact: retrying will not help until space is freed."""


class IntegrityError(BackupDRError):
    """Bytes do not match their recorded size or checksum: corruption or tampering."""


class NotFoundError(BackupDRError):
    """A backup, object or source that was asked for does not exist."""


class SourceError(TransientError):
    """The protected system (MongoDB, Redis, files) failed while being read."""


class RestoreError(BackupDRError):
    """A restore failed; the message says whether the target was rolled back."""


class RestoreRolledBack(RestoreError):
    """A restore failed or was interrupted, and the target was put back as it was before it.

    ``signum``: the signal that interrupted it (SIGTERM, SIGINT, SIGHUP), else None; the CLI
    exits with 128 + signum, as a process killed by that signal would."""

    def __init__(self, message: str, *, detail: str | None = None, hint: str | None = None, signum: int | None = None):
        super().__init__(message, detail=detail, hint=hint)
        self.signum = signum


class RestoreRefused(BackupDRError):
    """A restore was refused before touching the target (non-empty target, bad time, ...)."""


class InterruptedRestoreFound(RestoreRefused):
    """An earlier restore into the same target never finished (killed, power loss): the target
    may be half-written, and it must be rolled back or finished before anything else writes it."""


class TargetNotEmpty(RestoreRefused):
    """The restore would overwrite existing collections and ``drop`` was not given."""


class VerificationError(BackupDRError):
    """A restored copy does not match its manifest."""


class PitrGapError(BackupDRError):
    """The oplog chain is broken: point-in-time recovery is impossible across the gap."""
