"""Google Cloud Storage store: resumable chunked uploads checked against the server's crc32c.

Why it looks the way it does:

* ``blob.chunk_size`` makes large uploads resumable in fixed chunks, so memory stays at
  one chunk whatever the object size. The bytes sent are hashed on the way
  (:class:`HashingReader`: sha256 for the manifest, crc32c to compare with what the server
  reports for the stored object); any difference is an ``IntegrityError``. The client
  library's own checksumming is off: it would hash every byte a second time.
* Reading back for verification streams one download (``download_to_file``), which
  also checks the server's hash header.
* The emulator (gcp-storage-emulator) has no pagination tokens, ``maxResults`` or
  ``ifGenerationMatch``; nothing here relies on them.
* GCS has no S3-style Object Lock per upload; ``retain_until`` is accepted and ignored
  (use a bucket retention policy). A delete refused by a retention policy or hold is
  reported as :class:`ObjectLockedError`.
* Every call retries transient errors for the client library's deadline (120 s by default):
  against an unreachable endpoint EACH call waits that long before failing. The
  connection extra ``retry_deadline`` (seconds) bounds it, e.g. so that the break-glass CLI
  falls back to another store quickly in a disaster, and a replication try fails fast and
  leaves the waiting to Airflow's retries.
"""

from __future__ import annotations

import json
import logging
from contextlib import contextmanager
from datetime import datetime
from typing import BinaryIO, Iterator

from backup_dr.core.connections import ConnInfo, redact
from backup_dr.core.errors import BackupDRError, ConnectionConfigError, IntegrityError, NotFoundError, StoreError
from backup_dr.core.stores.base import BucketStore, ObjectInfo, ObjectLockedError
from backup_dr.core.stores.local import HashingWriter
from backup_dr.core.stores.streams import HashingReader

log = logging.getLogger(__name__)

MiB = 1024 * 1024
_GCP_TYPES = ("google_cloud_platform", "gcpcloudstorage", "gcs", "")


class _NullSink:
    def write(self, data) -> int:
        return len(data)

    def flush(self) -> None:
        pass


class _GuardedReader:
    """A BlobReader whose failures surface as core errors mid-read."""

    def __init__(self, raw, store: "GCSStore", key: str):
        self._raw, self._store, self._key = raw, store, key

    def read(self, n: int = -1) -> bytes:
        try:
            return self._raw.read(n)
        except Exception as e:  # noqa: BLE001 - translated, never swallowed
            raise self._store._translate(e, f"reading {self._key}", missing="object") from e

    def readable(self) -> bool:
        return True


class GCSStore(BucketStore):
    """A bucket (and optional key prefix) on Google Cloud Storage or the emulator."""

    type = "gcs"

    def __init__(self, client, bucket: str, *, prefix: str = "", name: str = "gcs", conn_id: str | None = None,
                 chunk_size: int = 8 * MiB, secrets: list[str] | None = None, retry_deadline: float | None = None):
        if chunk_size % (256 * 1024):
            raise ValueError("GCS chunk_size must be a multiple of 256 KiB")
        self.client = client
        self.bucket_name = bucket
        self.bucket = client.bucket(bucket)
        self.prefix = prefix.strip("/")
        self.name = name
        self.conn_id = conn_id
        self.chunk_size = chunk_size
        self._secrets = list(secrets or [])
        self._retry = _retry_policy(retry_deadline)

    def describe(self) -> str:
        return f"gs://{self.bucket_name}/{self.prefix}" if self.prefix else f"gs://{self.bucket_name}"

    @property
    def where(self) -> str:
        return f"GCS store {self.name!r} ({self.describe()})"

    def _translate(self, e: Exception, doing: str, *, missing: str = "bucket") -> BackupDRError:
        """A core error for a google-cloud exception. ``missing``: what a 404 means here."""
        from google.api_core import exceptions as gexc
        from google.auth import exceptions as aexc

        conn = f"connection {self.conn_id!r}" if self.conn_id else "the GCS credentials"
        text = redact(str(e), self._secrets)
        if isinstance(e, BackupDRError):
            return e
        if isinstance(e, gexc.NotFound):
            if missing == "object":
                return NotFoundError(f"{self.where}: {doing}: no such object")
            return ConnectionConfigError(f"{self.where}: bucket {self.bucket_name!r} does not exist (while {doing})",
                                         hint=f"create the bucket or fix stores.{self.name}.bucket in the policy")
        if isinstance(e, (gexc.Unauthorized, gexc.Forbidden, aexc.RefreshError, aexc.DefaultCredentialsError)):
            if isinstance(e, gexc.Forbidden) and ("retention" in text.lower() or "hold" in text.lower()):
                return ObjectLockedError(f"{self.where}: {doing}: the object is under a retention policy or hold", detail=text)
            return ConnectionConfigError(f"{self.where}: access denied for {conn} while {doing} ({type(e).__name__})",
                                         detail=text, hint=f"check the service account of {conn} and its roles on bucket {self.bucket_name!r}")
        if type(e).__name__ == "DataCorruption":
            return IntegrityError(f"{self.where}: {doing}: the transfer's checksum did not match ({text})")
        if isinstance(e, (gexc.ServerError, gexc.TooManyRequests, gexc.RetryError, aexc.TransportError, ConnectionError, TimeoutError)):
            return StoreError(f"{self.where}: service or network error while {doing} ({type(e).__name__})", detail=text)
        import requests

        if isinstance(e, requests.exceptions.RequestException):
            return StoreError(f"{self.where}: network error while {doing} ({type(e).__name__})", detail=text,
                              hint="the endpoint may be down; the task will retry")
        if isinstance(e, gexc.GoogleAPICallError):
            return BackupDRError(f"{self.where}: request rejected while {doing} ({type(e).__name__})", detail=text)
        raise e

    # ------------------------------------------------------------------ primitives

    def put(self, key: str, stream: BinaryIO, *, size: int | None = None, sha256: str | None = None,
            retain_until: datetime | None = None) -> ObjectInfo:
        """Resumable upload, then compare the size and crc32c the server reports with the bytes sent."""
        blob = self.bucket.blob(self._k(key), chunk_size=self.chunk_size)
        reader = HashingReader(stream, crc32c=True)
        try:
            blob.upload_from_file(reader, size=size, checksum=None, retry=self._retry)  # compared below, once, by us
        except Exception as e:  # noqa: BLE001 - translated (vendor exception zoo); unknown ones re-raised
            if isinstance(e, OSError) and "one-pass" in str(e):
                raise StoreError(f"{self.where}: uploading {key} failed mid-way and cannot resume from this stream",
                                 hint="the task retry uploads the object again") from e
            raise self._translate(e, f"uploading {key}") from e
        self._check_sent(key, reader, size, sha256)
        problems = []
        if blob.size is not None and int(blob.size) != reader.size:
            problems.append(f"size {blob.size} vs {reader.size} sent")
        if blob.crc32c and blob.crc32c != reader.crc32c_b64:
            problems.append(f"crc32c {blob.crc32c} vs {reader.crc32c_b64}")
        if problems:
            raise IntegrityError(f"{self.where}: {key}: the server reports different bytes than were sent", detail="; ".join(problems))
        if retain_until is not None:
            log.debug("%s: retain_until ignored (GCS uses bucket retention policies)", self.where)
        return ObjectInfo(key, reader.size, blob.updated, reader.sha256)

    @contextmanager
    def open(self, key: str) -> Iterator[BinaryIO]:
        blob = self._get_blob(key, f"reading {key}")
        if blob is None:
            raise NotFoundError(f"{self.where}: {key} not found")
        try:
            raw = blob.open("rb", chunk_size=self.chunk_size, retry=self._retry)
        except Exception as e:  # noqa: BLE001
            raise self._translate(e, f"reading {key}", missing="object") from e
        with raw:
            yield _GuardedReader(raw, self, key)

    def hash_object(self, key: str) -> tuple[int, str]:
        """One streaming download (checked against the server's hash header) hashed with sha256."""
        blob = self.bucket.blob(self._k(key))
        sink = HashingWriter(_NullSink())
        try:
            blob.download_to_file(sink, checksum="auto", retry=self._retry)
        except Exception as e:  # noqa: BLE001
            raise self._translate(e, f"reading {key}", missing="object") from e
        return sink.size, sink.sha256

    def stat(self, key: str) -> ObjectInfo | None:
        blob = self._get_blob(key, f"checking {key}")
        if blob is None:
            return None
        return ObjectInfo(key, int(blob.size or 0), blob.updated, None, getattr(blob, "retention_expiration_time", None))

    def list(self, prefix: str = "") -> Iterator[ObjectInfo]:
        try:
            blobs = sorted(self.client.list_blobs(self.bucket_name, prefix=self._k(prefix), retry=self._retry), key=lambda b: b.name)
        except Exception as e:  # noqa: BLE001
            raise self._translate(e, f"listing {prefix or '/'}") from e
        for b in blobs:
            yield ObjectInfo(self._rel(b.name), int(b.size or 0), b.updated)

    def delete(self, key: str) -> None:
        from google.api_core import exceptions as gexc

        try:
            self.bucket.blob(self._k(key)).delete(retry=self._retry)
        except gexc.NotFound:
            return
        except Exception as e:  # noqa: BLE001
            raise self._translate(e, f"deleting {key}", missing="object") from e

    def _get_blob(self, key: str, doing: str):
        try:
            return self.bucket.get_blob(self._k(key), retry=self._retry)
        except Exception as e:  # noqa: BLE001
            raise self._translate(e, doing, missing="object") from e


def _retry_policy(deadline: float | str | None):
    """The library's default retry, bounded to ``deadline`` seconds when one is given."""
    from google.cloud.storage.retry import DEFAULT_RETRY

    if deadline in (None, ""):
        return DEFAULT_RETRY
    seconds = float(deadline)
    return DEFAULT_RETRY.with_timeout(seconds) if hasattr(DEFAULT_RETRY, "with_timeout") else DEFAULT_RETRY.with_deadline(seconds)


def _truthy(value) -> bool:
    return value is True or (isinstance(value, str) and value.strip().lower() in ("true", "1", "yes"))


def client_from_conn(conn: ConnInfo):
    """A ``google.cloud.storage.Client`` from a ``google_cloud_platform`` connection, as GCSHook reads it:
    the one GCS client path of the CLI and the operators (:class:`backup_dr.hooks.BackupStoreHook`).

    Extra (with or without the legacy ``extra__google_cloud_platform__`` prefix):
    ``is_anonymous`` + ``project`` (the emulator), ``keyfile_dict`` (JSON), ``key_path``,
    else Application Default Credentials. ``STORAGE_EMULATOR_HOST`` is honoured by the client.
    """
    from google.cloud import storage

    if conn.conn_type not in _GCP_TYPES:
        raise ConnectionConfigError(f"connection {conn.conn_id!r} has type {conn.conn_type!r}; a GCS store needs a 'google_cloud_platform' connection")
    extra = conn.extra or {}

    def get(name):
        return extra.get(name) if extra.get(name) not in (None, "") else extra.get(f"extra__google_cloud_platform__{name}")

    unsupported = [k for k in ("credential_config_file", "key_secret_name", "impersonation_chain") if get(k)]
    if unsupported:  # GCSHook reads these; ignoring them would silently use other credentials
        raise ConnectionConfigError(f"connection {conn.conn_id!r} uses {', '.join(unsupported)}, which backup_dr's GCS client "
                                    "(shared by the CLI and the operators) does not read",
                                    hint="give the connection keyfile_dict or key_path of the service account to use")
    project = get("project") or get("project_id")
    scopes = ["https://www.googleapis.com/auth/devstorage.read_write"]
    where = f"connection {conn.conn_id!r}"
    if _truthy(get("is_anonymous")):
        from google.auth.credentials import AnonymousCredentials

        creds = AnonymousCredentials()
        project = project or "anonymous"
    elif get("keyfile_dict"):
        from google.oauth2 import service_account

        raw = get("keyfile_dict")
        try:
            info = json.loads(raw) if isinstance(raw, str) else dict(raw)
            creds = service_account.Credentials.from_service_account_info(info, scopes=scopes)
        except Exception as e:  # noqa: BLE001 - the text may quote the key: report the type only
            raise ConnectionConfigError(
                f"{where}: keyfile_dict is not a usable service-account key ({type(e).__name__})",
                hint="paste the whole JSON key file of the service account into the connection's keyfile_dict",
            ) from None
        project = project or info.get("project_id")
    elif get("key_path"):
        from google.oauth2 import service_account

        try:
            creds = service_account.Credentials.from_service_account_file(get("key_path"), scopes=scopes)
        except (OSError, ValueError) as e:
            raise ConnectionConfigError(f"{where}: key_path {get('key_path')!r} is not a readable service-account key file "
                                        f"({type(e).__name__})") from None
    else:
        import google.auth
        from google.auth.exceptions import DefaultCredentialsError

        try:
            creds, default_project = google.auth.default(scopes=scopes)
        except DefaultCredentialsError as e:
            raise ConnectionConfigError(f"{where}: no credentials (no keyfile_dict, key_path or is_anonymous, and no "
                                        "Application Default Credentials)", hint="set keyfile_dict or key_path on the connection") from e
        project = project or default_project
    options = {"api_endpoint": get("api_endpoint")} if get("api_endpoint") else None
    return storage.Client(project=project, credentials=creds, client_options=options)
