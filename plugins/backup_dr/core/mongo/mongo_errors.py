"""pymongo exceptions -> the project's errors, with credentials redacted.

Connection trouble is a :class:`SourceError` (retryable: the next attempt may well work);
authentication/authorisation failures are a :class:`ConnectionConfigError` (retrying will
not fix a wrong password); anything else the server refuses is a :class:`SourceError`
carrying the server's code. Our own errors pass through untouched.
"""

from __future__ import annotations

from contextlib import contextmanager
from typing import Iterator

from pymongo import errors as pe

from backup_dr.core.connections import redact
from backup_dr.core.errors import BackupDRError, ConnectionConfigError, SourceError

_AUTH_CODES = {13, 18}  # Unauthorized, AuthenticationFailed


def describe(e: BaseException, secrets: list[str] | None = None) -> str:
    text = str(e)
    if isinstance(e, pe.OperationFailure) and e.details:
        text = str(e.details.get("errmsg") or text)
    return redact(text, secrets or [])[:2000]


def convert(e: BaseException, what: str, secrets: list[str] | None = None, cls: type[BackupDRError] = SourceError) -> BackupDRError:
    msg = describe(e, secrets)
    if isinstance(e, (pe.ConnectionFailure, pe.NetworkTimeout, pe.ServerSelectionTimeoutError)):
        return SourceError(
            f"{what}: cannot reach the MongoDB server",
            detail=f"{type(e).__name__}: {msg}",
            hint="check the server is up and the connection's host/port (Airflow connection / AIRFLOW_CONN_*); the task retries",
        )
    if isinstance(e, pe.OperationFailure) and e.code in _AUTH_CODES:
        return ConnectionConfigError(
            f"{what}: MongoDB refused the credentials or the permission",
            detail=f"code {e.code}: {msg}",
            hint="the user needs the 'backup' role for dumps and 'restore' for restores (authSource in the connection extra)",
        )
    code = getattr(e, "code", None)
    return cls(f"{what}: MongoDB error", detail=f"{type(e).__name__}{f' code {code}' if code else ''}: {msg}")


@contextmanager
def translate(what: str, *, secrets: list[str] | None = None, cls: type[BackupDRError] = SourceError) -> Iterator[None]:
    """Re-raise pymongo errors from the block as project errors (chained)."""
    try:
        yield
    except BackupDRError:
        raise
    except pe.PyMongoError as e:
        raise convert(e, what, secrets, cls) from e
