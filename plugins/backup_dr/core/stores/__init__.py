"""Backup stores: one interface (:mod:`.base`), three backends (local, S3, GCS).

S3 and GCS live in :mod:`.s3` / :mod:`.gcs` and are imported on demand (boto3 and
google-cloud-storage are slow to import); build any store with :func:`open_store`.
"""

from backup_dr.core.stores.base import ObjectInfo, ObjectLockedError, Store  # noqa: F401
from backup_dr.core.stores.factory import open_store, open_stores, spec_from_url  # noqa: F401
from backup_dr.core.stores.local import LocalStore  # noqa: F401
