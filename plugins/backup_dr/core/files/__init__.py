"""File archives: a directory as one streamed, compressed tar; restored safely and atomically.

Public API (what the operators and the CLI call)::

    from backup_dr.core.files import backup_files, restore_files

    manifest = backup_files(source, writer)                       # source: FilesSource
    result = restore_files(store, manifest, "/app/config", workdir=tmp, overwrite=True)
"""

from __future__ import annotations

from backup_dr.core.files.archive import archive_file_name, backup_files
from backup_dr.core.files.restore import FilesRestoreResult, restore_files
from backup_dr.core.files.safe_extract import UnsafeArchiveError
from backup_dr.core.files.selection import SourceUnreadableError

__all__ = [
    "FilesRestoreResult",
    "SourceUnreadableError",
    "UnsafeArchiveError",
    "archive_file_name",
    "backup_files",
    "restore_files",
]
