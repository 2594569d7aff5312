"""S3 store: multipart upload with SHA256 checksums, optional Object Lock, verified puts.

Why it looks the way it does:

* Uploads go through boto3's managed transfer (multipart above ``multipart_threshold``)
  with ``ChecksumAlgorithm=SHA256``; the bytes actually sent are hashed on the way
  (:class:`HashingReader`) and checked against the caller's sha256, the object size and,
  for single-part objects, the server's ``ChecksumSHA256`` (S3 itself checks the per-part
  checksums of a multipart upload). moto accepts WRONG checksums,
  so :func:`backup_dr.core.replicate.replicate` also reads every object back.
* Object Lock: the retain-until date is sent with the upload, but multipart uploads may
  ignore it (moto does), so it is read back with ``head_object`` and applied with
  ``put_object_retention`` when missing (``get_object_retention`` is broken on moto).
* Delete in a versioned (Object Lock) bucket removes every VERSION of the key: a plain
  delete only adds a delete marker, which would hide a backup while its bytes stay
  (and are billed). A locked version refuses (403) and becomes :class:`ObjectLockedError`.
* Vendor exceptions become core errors: network trouble and 5xx are ``StoreError``
  (retryable), bad credentials ``ConnectionConfigError`` naming the connection id, never
  the secret.
"""

from __future__ import annotations

import logging
from contextlib import contextmanager
from datetime import datetime, timedelta, timezone
from typing import Any, BinaryIO, Iterator

from backup_dr.core.connections import ConnInfo, redact
from backup_dr.core.errors import BackupDRError, ConnectionConfigError, IntegrityError, NotFoundError, StoreError
from backup_dr.core.policy_model import ObjectLock
from backup_dr.core.stores.base import BucketStore, ObjectInfo, ObjectLockedError
from backup_dr.core.stores.streams import HashingReader, b64_to_hex

log = logging.getLogger(__name__)

MiB = 1024 * 1024
_AUTH_CODES = {"InvalidAccessKeyId", "SignatureDoesNotMatch", "AccessDenied", "Forbidden", "403", "ExpiredToken",
               "InvalidToken", "AllAccessDisabled", "AuthorizationHeaderMalformed", "InvalidClientTokenId"}
_NOT_FOUND = {"NoSuchKey", "404", "NotFound", "NoSuchVersion"}
_TRANSIENT = {"SlowDown", "RequestTimeout", "InternalError", "ServiceUnavailable", "RequestTimeTooSkewed", "500", "503"}


def _error_code(e: Exception) -> tuple[str, int]:
    resp = getattr(e, "response", None) or {}
    return str(resp.get("Error", {}).get("Code", "")), int(resp.get("ResponseMetadata", {}).get("HTTPStatusCode") or 0)


class _GuardedBody:
    """A GET body whose network errors surface as ``StoreError`` (retryable) mid-read."""

    def __init__(self, body, store: "S3Store", key: str):
        self._body, self._store, self._key = body, store, key

    def read(self, n: int = -1) -> bytes:
        from botocore.exceptions import BotoCoreError

        try:
            return self._body.read(None if n is None or n < 0 else n)
        except (BotoCoreError, OSError) as e:
            raise StoreError(f"{self._store.where}: reading {self._key} failed mid-stream ({type(e).__name__})") from e

    def readable(self) -> bool:
        return True


class S3Store(BucketStore):
    """A bucket (and optional key prefix) on S3 or an S3-compatible service."""

    type = "s3"

    def __init__(self, client, bucket: str, *, prefix: str = "", name: str = "s3", conn_id: str | None = None,
                 object_lock: ObjectLock | None = None, multipart_threshold: int = 16 * MiB, part_size: int = 8 * MiB,
                 max_concurrency: int = 4, secrets: list[str] | None = None):
        from boto3.s3.transfer import TransferConfig

        self.client = client
        self.bucket = bucket
        self.prefix = prefix.strip("/")
        self.name = name
        self.conn_id = conn_id
        self.object_lock = object_lock
        self._secrets = list(secrets or [])
        self._versioned: bool | None = None
        self._transfer = TransferConfig(multipart_threshold=multipart_threshold, multipart_chunksize=part_size,
                                        max_concurrency=max_concurrency, use_threads=True)
        # our reader is not seekable, so boto3 buffers parts in memory: bound it
        self._transfer.max_in_memory_upload_chunks = max(2, max_concurrency)

    # ------------------------------------------------------------------ naming / errors

    def describe(self) -> str:
        return f"s3://{self.bucket}/{self.prefix}" if self.prefix else f"s3://{self.bucket}"

    @property
    def where(self) -> str:
        return f"S3 store {self.name!r} ({self.describe()})"

    def _translate(self, e: Exception, doing: str) -> BackupDRError:
        """A core error for a boto3/botocore exception (the caller chains it with ``from e``)."""
        from botocore.exceptions import BotoCoreError, ClientError, NoCredentialsError, PartialCredentialsError

        conn = f"connection {self.conn_id!r}" if self.conn_id else "the S3 credentials"
        if isinstance(e, (NoCredentialsError, PartialCredentialsError)):
            return ConnectionConfigError(f"{self.where}: no usable credentials in {conn} while {doing}",
                                         hint="set login (access key id) and password (secret access key) on the aws connection")
        if isinstance(e, ClientError):
            code, status = _error_code(e)
            text = redact(str(e), self._secrets)
            if code in _NOT_FOUND:
                return NotFoundError(f"{self.where}: {doing}: no such object")
            if code == "NoSuchBucket":
                return ConnectionConfigError(f"{self.where}: bucket {self.bucket!r} does not exist (while {doing})",
                                             hint=f"create the bucket or fix stores.{self.name}.bucket in the policy")
            if code in _AUTH_CODES or status == 403:
                return ConnectionConfigError(
                    f"{self.where}: access denied for {conn} while {doing} ({code or status})",
                    detail=text,
                    hint=f"check the access key/secret of {conn} and its permissions on bucket {self.bucket!r}",
                )
            if code in _TRANSIENT or status >= 500 or status == 429:
                return StoreError(f"{self.where}: service error while {doing} ({code or status})", detail=text)
            return BackupDRError(f"{self.where}: request rejected while {doing} ({code or status})", detail=text)
        if isinstance(e, BotoCoreError):
            return StoreError(f"{self.where}: network error while {doing} ({type(e).__name__})",
                              detail=redact(str(e), self._secrets), hint="the endpoint may be down; the task will retry")
        return StoreError(f"{self.where}: {doing} failed ({type(e).__name__})")

    def _call(self, doing: str, fn, **kw):
        from botocore.exceptions import BotoCoreError, ClientError

        try:
            return fn(**kw)
        except (ClientError, BotoCoreError) as e:
            raise self._translate(e, doing) from e

    # ------------------------------------------------------------------ primitives

    def put(self, key: str, stream: BinaryIO, *, size: int | None = None, sha256: str | None = None,
            retain_until: datetime | None = None) -> ObjectInfo:
        """Upload, then check size and checksums; apply Object Lock retention when asked."""
        from botocore.exceptions import BotoCoreError, ClientError

        full = self._k(key)
        reader = HashingReader(stream)
        extra: dict[str, Any] = {"ChecksumAlgorithm": "SHA256"}
        lock = self._lock_args(retain_until)
        if lock:
            extra.update(ObjectLockMode=lock[0], ObjectLockRetainUntilDate=lock[1])
        try:
            self.client.upload_fileobj(reader, self.bucket, full, ExtraArgs=extra, Config=self._transfer)
        except (ClientError, BotoCoreError) as e:
            raise self._translate(e, f"uploading {key}") from e
        self._check_sent(key, reader, size, sha256)
        head = self._head(full, f"checking {key}")
        if head is None or head["ContentLength"] != reader.size:
            got = "nothing" if head is None else f"{head['ContentLength']} bytes"
            raise IntegrityError(f"{self.where}: {key} holds {got} after uploading {reader.size} bytes")
        self._check_server_checksum(key, head, reader)
        if lock:
            head = self._ensure_lock(full, key, head, *lock)
        info = self._info(key, head)
        return ObjectInfo(info.key, info.size, info.mtime, reader.sha256, info.retain_until, info.lock_mode)

    @contextmanager
    def open(self, key: str) -> Iterator[BinaryIO]:
        resp = self._call(f"reading {key}", self.client.get_object, Bucket=self.bucket, Key=self._k(key))
        body = resp["Body"]
        try:
            yield _GuardedBody(body, self, key)
        finally:
            body.close()

    def stat(self, key: str) -> ObjectInfo | None:
        head = self._head(self._k(key), f"checking {key}")
        return None if head is None else self._info(key, head)

    def list(self, prefix: str = "") -> Iterator[ObjectInfo]:
        pages = self.client.get_paginator("list_objects_v2").paginate(Bucket=self.bucket, Prefix=self._k(prefix))
        from botocore.exceptions import BotoCoreError, ClientError

        try:
            for page in pages:
                for obj in page.get("Contents", ()):
                    yield ObjectInfo(self._rel(obj["Key"]), int(obj["Size"]), obj.get("LastModified"))
        except (ClientError, BotoCoreError) as e:
            raise self._translate(e, f"listing {prefix or '/'}") from e

    def delete(self, key: str) -> None:
        """Delete every version of ``key``; ObjectLockedError if retention keeps any of them."""
        full = self._k(key)
        versions = self._versions(full) if self.versioned else []
        if not versions:
            self._call(f"deleting {key}", self.client.delete_object, Bucket=self.bucket, Key=full)
            return
        locked: list[tuple[str, dict]] = []
        from botocore.exceptions import ClientError

        for vid in versions:
            try:
                self.client.delete_object(Bucket=self.bucket, Key=full, VersionId=vid)
            except ClientError as e:
                code, status = _error_code(e)
                if code in _NOT_FOUND:
                    continue
                if code not in _AUTH_CODES and status != 403:
                    raise self._translate(e, f"deleting {key}") from e
                head = self._head(full, f"checking the lock of {key}", VersionId=vid) or {}
                if not _is_locked(head):
                    raise self._translate(e, f"deleting {key}") from e
                locked.append((vid, head))
        if locked:
            head = locked[0][1]
            until = head.get("ObjectLockRetainUntilDate")
            mode = head.get("ObjectLockMode") or ("LEGAL_HOLD" if head.get("ObjectLockLegalHoldStatus") == "ON" else "?")
            raise ObjectLockedError(
                f"{self.where}: {key} is under Object Lock ({mode} until {until:%Y-%m-%d %H:%M:%SZ}) and was not deleted"
                if isinstance(until, datetime) else f"{self.where}: {key} is under Object Lock ({mode}) and was not deleted",
                hint="it can be deleted after its retain-until date; prune will collect it then",
            )

    # ------------------------------------------------------------------ extras

    def abort_incomplete_uploads(self, prefix: str) -> int:
        """Abort multipart uploads left under ``prefix`` by a crashed attempt (invisible, but billed)."""
        count = 0
        pages = self.client.get_paginator("list_multipart_uploads").paginate(Bucket=self.bucket, Prefix=self._k(prefix))
        from botocore.exceptions import BotoCoreError, ClientError

        try:
            for page in pages:
                for up in page.get("Uploads", ()):
                    self.client.abort_multipart_upload(Bucket=self.bucket, Key=up["Key"], UploadId=up["UploadId"])
                    count += 1
        except (ClientError, BotoCoreError) as e:
            raise self._translate(e, f"cleaning incomplete uploads under {prefix}") from e
        if count:
            log.info("%s: aborted %d incomplete multipart upload(s) under %s", self.where, count, prefix)
        return count

    @property
    def versioned(self) -> bool:
        """Whether deletes must remove versions (asked once; Object Lock buckets always are)."""
        if self._versioned is None:
            from botocore.exceptions import BotoCoreError, ClientError

            try:
                status = self.client.get_bucket_versioning(Bucket=self.bucket).get("Status")
                self._versioned = status in ("Enabled", "Suspended")
            except (ClientError, BotoCoreError):
                self._versioned = self.object_lock is not None
        return self._versioned

    # ------------------------------------------------------------------ helpers

    def _head(self, full: str, doing: str, **kw) -> dict | None:
        try:
            return self._call(doing, self.client.head_object, Bucket=self.bucket, Key=full, ChecksumMode="ENABLED", **kw)
        except NotFoundError:
            return None

    def _versions(self, full: str) -> list[str]:
        out: list[str] = []
        pages = self.client.get_paginator("list_object_versions").paginate(Bucket=self.bucket, Prefix=full)
        from botocore.exceptions import BotoCoreError, ClientError

        try:
            for page in pages:
                for v in (*page.get("Versions", ()), *page.get("DeleteMarkers", ())):
                    if v["Key"] == full:
                        out.append(v["VersionId"])
        except (ClientError, BotoCoreError) as e:
            raise self._translate(e, f"listing versions of {self._rel(full)}") from e
        return out

    def _lock_args(self, retain_until: datetime | None) -> tuple[str, datetime] | None:
        if self.object_lock is None:
            return None
        if retain_until is None:
            log.warning("%s has object_lock but the backup has no expiry: object stored without retention", self.where)
            return None
        until = retain_until.astimezone(timezone.utc) if retain_until.tzinfo else retain_until.replace(tzinfo=timezone.utc)
        if until <= datetime.now(timezone.utc):
            return None
        return self.object_lock.mode, until

    def _ensure_lock(self, full: str, key: str, head: dict, mode: str, until: datetime) -> dict:
        if _lock_ok(head, mode, until):
            return head
        from botocore.exceptions import BotoCoreError, ClientError

        retention = {"Mode": mode, "RetainUntilDate": until}
        try:
            self.client.put_object_retention(Bucket=self.bucket, Key=full, VersionId=head.get("VersionId"), Retention=retention)
        except ClientError as e:
            code, _ = _error_code(e)
            if code in ("InvalidRequest", "ObjectLockConfigurationNotFoundError"):
                raise ConnectionConfigError(
                    f"{self.where}: cannot put Object Lock retention on {key} ({code})",
                    hint=f"create bucket {self.bucket!r} with Object Lock enabled, or drop stores.{self.name}.object_lock",
                ) from e
            raise self._translate(e, f"setting Object Lock on {key}") from e
        except BotoCoreError as e:
            raise self._translate(e, f"setting Object Lock on {key}") from e
        head = self._head(full, f"checking the lock of {key}") or {}
        if not _lock_ok(head, mode, until):
            raise IntegrityError(f"{self.where}: {key} reports lock {head.get('ObjectLockMode')!r} until "
                                 f"{head.get('ObjectLockRetainUntilDate')}, expected {mode} until {until:%Y-%m-%dT%H:%M:%SZ}")
        return head

    def _check_server_checksum(self, key: str, head: dict, reader: HashingReader) -> None:
        """A single PUT's ChecksumSHA256 must be the sha256 of the bytes sent. A multipart
        object's is COMPOSITE (of the part digests; botocore sent one per part and S3 checked
        them), so it is not compared here: the read-back in replication covers it."""
        server = head.get("ChecksumSHA256")
        if not server or "-" in str(head.get("ETag", "")):
            return
        if server != reader.sha256_b64:
            raise IntegrityError(f"{self.where}: {key}: the server's SHA256 checksum {server} differs from the bytes "
                                 f"sent ({reader.sha256_b64})")

    def _info(self, key: str, head: dict) -> ObjectInfo:
        until = head.get("ObjectLockRetainUntilDate")
        whole = None if "-" in str(head.get("ETag", "")) else b64_to_hex(head.get("ChecksumSHA256"))  # multipart: composite
        return ObjectInfo(key, int(head["ContentLength"]), head.get("LastModified"), whole,
                          until.astimezone(timezone.utc) if isinstance(until, datetime) else None, head.get("ObjectLockMode"))


def _lock_ok(head: dict, mode: str, until: datetime) -> bool:
    got = head.get("ObjectLockRetainUntilDate")
    return head.get("ObjectLockMode") == mode and isinstance(got, datetime) and got >= until - timedelta(seconds=1)


def _is_locked(head: dict) -> bool:
    until = head.get("ObjectLockRetainUntilDate")
    held = head.get("ObjectLockLegalHoldStatus") == "ON"
    return held or (isinstance(until, datetime) and until > datetime.now(timezone.utc))


def client_from_conn(conn: ConnInfo):
    """A boto3 S3 client from an ``aws`` connection: the one S3 client path of CLI and operators.

    Credentials, region and ``role_arn`` (STS AssumeRole) come from
    :func:`backup_dr.core.stores.aws.session_from_conn`, read as the provider's S3Hook reads
    the connection; here the S3 side: ``endpoint_url`` / ``service_config.s3.endpoint_url``,
    ``service_config.s3.addressing_style``, ``verify`` and ``config_kwargs``.
    """
    from botocore.config import Config
    from botocore.exceptions import BotoCoreError

    from backup_dr.core.stores.aws import service_endpoint, session_from_conn

    session = session_from_conn(conn)
    extra = conn.extra or {}
    s3_cfg = (extra.get("service_config") or {}).get("s3") or {}
    base = Config(retries={"max_attempts": 5, "mode": "standard"}, connect_timeout=10, read_timeout=120, max_pool_connections=16,
                  s3={"addressing_style": s3_cfg["addressing_style"]} if s3_cfg.get("addressing_style") else None)
    try:
        if extra.get("config_kwargs"):
            base = base.merge(Config(**extra["config_kwargs"]))
        return session.client("s3", endpoint_url=service_endpoint(conn, "s3"), config=base, verify=extra.get("verify"))
    except (BotoCoreError, ValueError, TypeError) as e:
        raise ConnectionConfigError(f"connection {conn.conn_id!r} cannot build an S3 client ({type(e).__name__})",
                                    detail=redact(str(e), conn.secrets)) from None
