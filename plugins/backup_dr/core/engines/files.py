"""The files engine (:mod:`backup_dr.core.files`) and the git engine (:mod:`backup_dr.core.gitbundle`).

Both restore into a directory, so a drill restores into a temporary one: a files backup is
a tar (zstd or gzip) extracted safely, a git backup a ``git bundle`` cloned at its commit.
"""

from __future__ import annotations

import time

from backup_dr.core.engines.base import BackupRequest, Connector, SourceEngine


class FilesEngine(SourceEngine):
    type = "files"
    label = "files"
    restore_commands = ("files",)
    backup_operator = "backup_dr.operators.backup:FileArchiveOperator"
    #: a non-empty target may be moved aside and replaced (``--overwrite``)
    overwrites = True
    journal_engines = ("files",)
    journal_needs_conn = False
    dr_role = "files"

    def artifact_kind(self, source, *, metadata_only: bool = False) -> str:
        return "files"


    def backup(self, source, writer, connector: Connector, request: BackupRequest):
        from backup_dr.core.files import backup_files

        return backup_files(source, writer, now=request.now)

    def restore_into(self, store, manifest, target, workdir, *, overwrite: bool = False, journal=None):
        from backup_dr.core.files import restore_files

        return restore_files(store, manifest, target, workdir=workdir, overwrite=overwrite, journal=journal)

    def roll_back_interrupted(self, journal, entry, connector, conn_id, secrets=None):
        from backup_dr.core.files.interrupted import rollback_interrupted_files

        return rollback_interrupted_files(journal, entry)

    def drill(self, manifest, store, workdir, scratch):
        t0 = time.monotonic()
        res = self.restore_into(store, manifest, f"{workdir}/restored", f"{workdir}/fetch")
        return {"ok": True, "restore_seconds": round(time.monotonic() - t0, 3), "problems": [], "details": res.as_dict()}


class GitEngine(FilesEngine):
    type = "git"
    label = "git"
    restore_commands = ("git", "files")
    backup_operator = "backup_dr.operators.backup:GitBundleOperator"
    overwrites = False  # a bundle is cloned into an absent or empty directory
    journal_engines = ()  # a clone into an empty directory: nothing to roll back
    dr_role = None  # a restore_files step overwrites its path; a clone needs an empty one

    def artifact_kind(self, source, *, metadata_only: bool = False) -> str:
        return "bundle"


    def backup(self, source, writer, connector: Connector, request: BackupRequest):
        from backup_dr.core.gitbundle import backup_git

        info = request.deploy or {}
        return backup_git(source, writer, ref=info.get("ref", "HEAD"), image_ref=info.get("image") or None,
                          image_digest=info.get("image_digest") or None)

    def restore_into(self, store, manifest, target, workdir, *, overwrite: bool = False, journal=None):
        from backup_dr.core.gitbundle import restore_git

        return restore_git(store, manifest, target, workdir)
