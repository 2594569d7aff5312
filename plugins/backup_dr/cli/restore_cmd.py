"""``restore mongo|redis|files|git|postgres``: the parsers; the work is in restore_mongo / restore_other / restore_postgres.

Every restore reads a copy whose bytes match the manifest (falling back to the next store
when one copy is bad, and saying so), and never leaves a target half-written unnoticed:
MongoDB takes a safety backup and rolls back, Redis keeps a safety copy and rolls back,
files are swapped in atomically; SIGTERM / SIGINT / SIGHUP roll back before exiting, and a
restore killed outright is found by ``restore status`` (its journal record) and undone by
``restore rollback`` or finished by ``restore resume``.
"""

from __future__ import annotations

import argparse

_RAW = argparse.RawDescriptionHelpFormatter

_MONGO_EPILOG = """\
examples:
  python -m backup_dr restore mongo latest --class critical_data --to mongo_new_primary
  python -m backup_dr restore mongo latest --class operational_data --to mongo_new_primary
  python -m backup_dr restore mongo critical_data.mongodb.full.20261126T080000Z --to mongo_korea_public_data --drop
  python -m backup_dr restore mongo latest --class critical_data --to mongo_scratch --db restored_copy --collections announcements,businesses
  python -m backup_dr restore mongo --at 2026-11-26T08:15:00+09:00 --to mongo_korea_public_data --drop

--to names a connection (AIRFLOW_CONN_<ID> or $BACKUP_DR_CONNECTIONS_FILE), never a URI with a password.
A target that already has the restored collections is refused unless --drop; with --drop their current
content is saved first (safety backup, kept) and put back if anything fails.
"""

_REDIS_EPILOG = """\
examples:
  python -m backup_dr restore redis latest --to scratch                  # serve it locally until Ctrl-C
  python -m backup_dr restore redis latest --to scratch --detach         # leave it running, print PID and dir
  python -m backup_dr restore redis latest --to redis_new                # load over the network into an empty server
  python -m backup_dr restore redis latest --to redis_new --replace      # the whole server becomes the backup
  python -m backup_dr restore redis operational_data.redis_cache.rdb.20261126T020000Z --to redis_cache --data-dir
  python -m backup_dr restore redis latest --to redis_new --data-dir /var/lib/redis --restart-command 'systemctl restart redis'

--replace: every database of the target is flushed (also databases the backup lacks), a safety copy of its data
is kept first (a 'safety' backup in --safety-dir), and afterwards the restore compares the whole target with the
backup (DEBUG DIGEST + expiry times, or key by key) and reports how.
"""

_FILES_EPILOG = """\
examples:
  python -m backup_dr restore files latest --source app_config --to /app/config.restored
  python -m backup_dr restore files configuration.app_config.files.20261122T030000Z --to /app/config --overwrite
  python -m backup_dr restore files application_code.app_repository.bundle.20261125T101500Z --to /srv/repo
"""


_POSTGRES_EPILOG = """\
examples:
  python -m backup_dr restore postgres latest --source airflow_db --to airflow_metadata_db_new
  python -m backup_dr restore postgres configuration.airflow_db.full.20261122T030000Z --to airflow_metadata_db --replace

A target that already has the backed-up tables is refused unless --replace; an empty database needs none.
Stock tools work too: pg_restore --single-transaction --dbname airflow <dump> (see the README's runbook).
"""


def _common_restore_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--from-store", metavar="NAME", help="read only this store's copy (default: the first store "
                   "holding a good copy, in policy order; a bad copy falls back to the next store)")
    p.add_argument("--class", dest="backup_class", metavar="C", help="with 'latest': the class to take it from "
                   "(needed when several classes back up the source)")
    p.add_argument("--source", metavar="S", help="with 'latest': the policy source (needed when there are several)")
    p.add_argument("--workdir", metavar="DIR", help="where remote copies are downloaded and verified (needs room for them)")


def register(sub, common) -> None:
    restore = sub.add_parser("restore", parents=[common], help="restore a backup (mongo, redis, files, git, postgres)",
                             description="Restore a backup from the stores, verified against its manifest first.")
    kinds = restore.add_subparsers(dest="restore_kind", metavar="KIND")
    restore.set_defaults(func=lambda args: restore.print_help() or 2)

    from backup_dr.cli import restore_journal_cmd, restore_mongo, restore_other, restore_postgres

    m = kinds.add_parser("mongo", parents=[common], formatter_class=_RAW, epilog=_MONGO_EPILOG,
                         help="MongoDB: safe restore (safety backup, validate, roll back)",
                         description="Restore a full MongoDB backup (or, with --at, a point in time) into the server of a "
                                     "connection: verified copy, safety backup of the target, restore, validate (validate "
                                     "command, counts, indexes), roll back on any failure.")
    m.add_argument("backup", nargs="?", metavar="BACKUP", help="backup id, or 'latest' (the newest complete full backup)")
    m.add_argument("--to", required=True, metavar="CONN_ID", help="target connection id (conn_type mongo)")
    m.add_argument("--at", metavar="TIME", help="point in time instead of a backup id: ISO 8601 with a zone "
                   "(2026-11-26T08:00:00Z) or an oplog position Timestamp(t,i)")
    m.add_argument("--db", metavar="NAME", help="target database (default: the backed-up database's name)")
    m.add_argument("--collections", metavar="A,B", help="only these collections")
    m.add_argument("--drop", action="store_true", help="replace collections that exist in the target (after a safety backup)")
    m.add_argument("--safety-dir", metavar="DIR", help="where the safety backup of the target is kept (default: the "
                   "policy's local store, else ./backup-dr-safety)")
    _common_restore_args(m)
    m.set_defaults(func=restore_mongo.run)

    r = kinds.add_parser("redis", parents=[common], formatter_class=_RAW, epilog=_REDIS_EPILOG,
                         help="Redis: into a local scratch server, any server over the network, or a server's data dir",
                         description="Load a Redis backup (RDB or AOF) into a fresh local redis-server (--to scratch), into "
                                     "the server behind any connection over the network (--to CONN_ID [--replace]), or "
                                     "replace that server's files (--to CONN_ID --data-dir: safety copy, restart, counts "
                                     "checked, rollback).")
    r.add_argument("backup", metavar="BACKUP", help="backup id, or 'latest'")
    r.add_argument("--to", required=True, metavar="scratch|CONN_ID", help="'scratch', or the connection id of ANY redis server "
                   "(without --data-dir: loaded over the network)")
    r.add_argument("--replace", action="store_true", help="network load into a non-empty server: replace ALL of its data "
                   "(safety copy first; the result is compared with the backup)")
    r.add_argument("--data-dir", nargs="?", const="", metavar="DIR", help="restore through the server's data directory "
                   "(DIR default: the policy source's data_dir)")
    r.add_argument("--restart-command", metavar="CMD", help="with --data-dir: how to restart that server (an argv, split "
                   "like a shell would, run without one; default: the policy source's restart_command)")
    r.add_argument("--safety-dir", metavar="DIR", help="network load: where the safety copy of the target goes (default: "
                   "the policy's local store)")
    r.add_argument("--detach", action="store_true", help="with --to scratch: leave the server running and exit")
    _common_restore_args(r)
    r.set_defaults(func=restore_other.run_redis)

    f = kinds.add_parser("files", parents=[common], formatter_class=_RAW, epilog=_FILES_EPILOG,
                         help="files (and git bundles) into a directory",
                         description="Restore a files backup into a directory: verified archive, safe extraction into a "
                                     "staging directory, atomic swap. A git bundle backup is cloned at its commit.")
    f.add_argument("backup", metavar="BACKUP", help="backup id, or 'latest' (with --source when there are several)")
    f.add_argument("--to", required=True, metavar="DIR", help="target directory (absent or empty, or --overwrite)")
    f.add_argument("--overwrite", action="store_true", help="a non-empty target is moved aside (kept) and replaced")
    _common_restore_args(f)
    f.set_defaults(func=restore_other.run_files)

    g = kinds.add_parser("git", parents=[common], formatter_class=_RAW,
                         epilog="example:\n  python -m backup_dr restore git latest --to /srv/repo.restored",
                         help="clone a git bundle backup into a directory",
                         description="Clone the backed-up commit of a git bundle backup into an absent or empty directory.")
    g.add_argument("backup", metavar="BACKUP", help="backup id, or 'latest'")
    g.add_argument("--to", required=True, metavar="DIR", help="target directory (absent or empty)")
    _common_restore_args(g)
    g.set_defaults(func=lambda args: restore_other.run_files(args, git_only=True))

    p = kinds.add_parser("postgres", parents=[common], formatter_class=_RAW, epilog=_POSTGRES_EPILOG,
                         help="PostgreSQL: safe restore onto a database (safety dump, compare every table, roll back)",
                         description="Restore a PostgreSQL backup (pg_dump custom format) onto a database: verified copy, "
                                     "safety dump of the target, single-transaction pg_restore, every table compared with "
                                     "the manifest (rows + content hash), roll back from the safety dump on any failure.")
    p.add_argument("backup", metavar="BACKUP", help="backup id, or 'latest'")
    p.add_argument("--to", required=True, metavar="CONN_ID", help="target connection id (conn_type postgres; its schema "
                   "field names the database)")
    p.add_argument("--db", metavar="NAME", help="target database (default: the connection's, else the backed-up name)")
    p.add_argument("--replace", action="store_true", help="replace the tables the target already has (safety dump first)")
    p.add_argument("--safety-dir", metavar="DIR", help="where the safety dump of the target is kept (default: the "
                   "policy's local store)")
    _common_restore_args(p)
    p.set_defaults(func=restore_postgres.run)

    restore_journal_cmd.register(kinds, common, _RAW)
