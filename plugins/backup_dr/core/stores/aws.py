"""The one way an ``aws`` connection becomes a boto3 session, for the CLI and the operators alike.

Why it is in the core: the break-glass CLI must open the same S3 stores as the Airflow
operators with Airflow gone, so the provider's ``AwsBaseHook`` cannot be the builder. This
module reads a connection exactly as the amazon provider (9.x) reads it, so one connection
works in both places:

* login/password (or extra ``aws_access_key_id``/``aws_secret_access_key``, plus
  ``aws_session_token``) are the base credentials; none = boto3's default chain
  (instance profile, ``AWS_*`` environment, ...).
* extra ``role_arn``: the base credentials call STS ``AssumeRole`` and every request then uses
  the temporary credentials, refreshed before they expire (a long dump outlives a one-hour
  session). ``RoleSessionName`` defaults to ``Airflow_<conn_id>``; ``assume_role_kwargs``
  (``ExternalId``, ``DurationSeconds``, ``Policy``, ``Tags``, even ``RoleSessionName``) are
  passed to the call. Only ``assume_role_method: assume_role`` is supported here: SAML and web
  identity are refused with a message rather than silently ignored.
* STS is reached at ``service_config.sts.endpoint_url`` and otherwise at AWS's own endpoint —
  never the global ``endpoint_url`` (the provider does the same: an S3-compatible endpoint
  is rarely an STS).
* ``region_name``; ``endpoint_url`` and ``service_config.<service>.endpoint_url`` for the
  service clients (:func:`service_endpoint`).
"""

from __future__ import annotations

import logging
import re
from typing import Any

from backup_dr.core.connections import ConnInfo, redact
from backup_dr.core.errors import ConnectionConfigError, StoreError

log = logging.getLogger(__name__)

AWS_CONN_TYPES = ("aws", "s3", "")


def service_endpoint(conn: ConnInfo, service: str) -> str | None:
    """The endpoint a service client uses: ``service_config.<service>.endpoint_url``, else the global one."""
    extra = conn.extra or {}
    cfg = (extra.get("service_config") or {}).get(service) or {}
    return cfg.get("endpoint_url") or extra.get("endpoint_url")


def session_from_conn(conn: ConnInfo):
    """A ``boto3.session.Session`` for an ``aws`` connection (module docstring), assumed role included.

    :raises ConnectionConfigError: the connection is unusable (wrong type, half a key pair,
        an unsupported assume-role method, or STS refused the role) — not retryable.
    :raises StoreError: STS could not be reached (retryable).
    """
    import boto3

    if conn.conn_type not in AWS_CONN_TYPES:
        raise ConnectionConfigError(f"connection {conn.conn_id!r} has type {conn.conn_type!r}; an S3 store needs an 'aws' connection")
    extra = conn.extra or {}
    key_id = conn.login or extra.get("aws_access_key_id")
    secret = conn.password or extra.get("aws_secret_access_key")
    if bool(key_id) != bool(secret):
        raise ConnectionConfigError(f"connection {conn.conn_id!r} has {'an access key id but no secret' if key_id else 'a secret but no access key id'}",
                                    hint="set login = access key id and password = secret access key")
    try:
        base = boto3.session.Session(aws_access_key_id=key_id, aws_secret_access_key=secret,
                                     aws_session_token=extra.get("aws_session_token"), region_name=extra.get("region_name"))
    except ValueError as e:
        raise ConnectionConfigError(f"connection {conn.conn_id!r} cannot build an AWS session ({type(e).__name__})") from None
    if not extra.get("role_arn"):
        return base
    return _assumed_role_session(conn, base)


def _assumed_role_session(conn: ConnInfo, base):
    """A session whose credentials come from STS AssumeRole with ``base``'s, refreshed on expiry."""
    import boto3
    import botocore.session
    from botocore.config import Config
    from botocore.credentials import RefreshableCredentials

    extra = conn.extra
    method = extra.get("assume_role_method") or "assume_role"
    if method != "assume_role":
        raise ConnectionConfigError(
            f"connection {conn.conn_id!r} asks for assume_role_method {method!r}, which backup_dr does not do",
            hint="use assume_role_method 'assume_role' (the default), or give the connection keys of the role itself",
        )
    kwargs = extra.get("assume_role_kwargs") or {}
    if not isinstance(kwargs, dict):
        raise ConnectionConfigError(f"connection {conn.conn_id!r}: extra assume_role_kwargs must be a JSON object",
                                    hint='e.g. "assume_role_kwargs": {"ExternalId": "..."}')
    call = {"RoleSessionName": re.sub(r"[^\w+=,.@-]+", "-", f"Airflow_{conn.conn_id}")[:64], **kwargs,
            "RoleArn": extra["role_arn"]}
    sts = base.client("sts", endpoint_url=((extra.get("service_config") or {}).get("sts") or {}).get("endpoint_url"),
                      config=Config(retries={"max_attempts": 5, "mode": "standard"}, connect_timeout=10, read_timeout=60))

    def refresh() -> dict[str, Any]:
        creds = _assume(conn, sts, call)
        return {"access_key": creds["AccessKeyId"], "secret_key": creds["SecretAccessKey"],
                "token": creds["SessionToken"], "expiry_time": creds["Expiration"].isoformat()}

    credentials = RefreshableCredentials.create_from_metadata(metadata=refresh(), refresh_using=refresh,
                                                              method="sts-assume-role")
    core = botocore.session.get_session()
    core._credentials = credentials  # as AwsBaseHook does: botocore has no public setter for this
    if base.region_name:
        core.set_config_variable("region", base.region_name)
    log.info("connection %s: assumed role %s (session %s)", conn.conn_id, call["RoleArn"], call["RoleSessionName"])
    return boto3.session.Session(botocore_session=core)


def _assume(conn: ConnInfo, sts, call: dict[str, Any]) -> dict[str, Any]:
    """One ``AssumeRole`` call, its failures as core errors naming the connection and the role."""
    from botocore.exceptions import BotoCoreError, ClientError, ParamValidationError

    try:
        return sts.assume_role(**call)["Credentials"]
    except ClientError as e:
        code = (getattr(e, "response", None) or {}).get("Error", {}).get("Code", "") or type(e).__name__
        raise ConnectionConfigError(
            f"connection {conn.conn_id!r}: STS refused to assume role {call['RoleArn']!r} ({code})",
            detail=redact(str(e), conn.secrets),
            hint="check the role's trust policy allows the connection's key (and the ExternalId in assume_role_kwargs)",
        ) from None
    except (ParamValidationError, ValueError, TypeError) as e:
        raise ConnectionConfigError(f"connection {conn.conn_id!r}: assume_role_kwargs are not valid for AssumeRole "
                                    f"({type(e).__name__})", detail=redact(str(e), conn.secrets)) from None
    except BotoCoreError as e:
        raise StoreError(f"connection {conn.conn_id!r}: STS unreachable while assuming role {call['RoleArn']!r} ({type(e).__name__})",
                         hint="the STS endpoint may be down (service_config.sts.endpoint_url); the task will retry") from e
