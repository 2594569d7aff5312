"""Backup stores: one interface (:mod:`.base`), three backends (local, S3, GCS)."""

from backup_dr.core.stores.base import ObjectInfo, ObjectLockedError, Store  # noqa: F401
from backup_dr.core.stores.local import LocalStore  # noqa: F401
