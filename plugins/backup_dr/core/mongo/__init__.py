"""MongoDB backup and restore in pure Python, compatible with mongodump/mongorestore archives.

Entry points for the operators and the CLI (all take plain objects, never Airflow's):

* :func:`backup.backup_mongodb` (client, MongoSource, Job, ArtifactWriter) -> Manifest
* :func:`backup.restore_mongodb` (client, Store, Manifest, workdir=, safety_dir=, ...) -> RestoreResult
* :func:`backup.verify_restore` (scratch client, Store, Manifest, workdir=) -> VerifyResult
* :func:`safe_restore.safe_restore` / :func:`restore.restore_archive` / :func:`restore.verify_archive`
  for an archive file without a manifest (e.g. one written by stock mongodump)
* :class:`applier.OplogApplier` for replaying oplog entries (PITR builds on it)
"""
