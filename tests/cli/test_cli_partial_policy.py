"""The break-glass CLI with a partly broken policy: everything valid works, only what needs the
broken part refuses, naming its ROOT cause (issue 15).

On the worst day someone edited the policy in a hurry. Before, any invalid part (a cron typo
in an unrelated class) made every command, ``list`` and ``restore mongo`` included, exit 2.
"""

from __future__ import annotations

import re
import shlex
from pathlib import Path

from cli_support import POLICY, snapshot_db

CRITICAL = ["announcements", "businesses", "contents"]
TEXT = POLICY.read_text(encoding="utf-8")


def _broken(tmp_path: Path, old: str, new: str) -> str:
    assert old in TEXT, old
    path = tmp_path / "policy.yaml"
    path.write_text(TEXT.replace(old, new, 1), encoding="utf-8")
    return str(path)


def test_a_typo_in_an_unrelated_class_leaves_list_and_restore_working(cli, history, mongo_client, mongo_scratch_server,
                                                                       fresh_db_name, tmp_path):
    c = cli.with_env(BACKUP_DR_POLICY=_broken(tmp_path, 'schedule: "0 3 * * 0"', 'schedule: "0 3 * *"'))
    root = "classes.configuration.schedule: '0 3 * *' is not a valid cron expression"

    out = c.run("list")
    assert out.returncode == 0 and history.ids["mongo"] in out.stdout, out.stderr
    assert root in out.stderr and "the others work" in out.stderr  # the invalid part is a warning

    data = c.json("restore", "mongo", "latest", "--class", "critical_data", "--to", "mongo_scratch", "--db", fresh_db_name,
                  "--safety-dir", str(tmp_path / "safety"))
    assert data["ok"] and data["backup_id"] == history.ids["mongo"]
    assert snapshot_db(mongo_scratch_server.client(), fresh_db_name) == snapshot_db(mongo_client, "korea_public_data", CRITICAL)

    # the newest backup of the broken class is still restorable: a restore needs the stores, not the class
    out = c.run("restore", "files", "latest", "--source", "app_config", "--to", str(tmp_path / "config"))
    assert out.returncode == 0, out.stderr
    assert f"class configuration is invalid in the policy ({root}" in out.stderr and (tmp_path / "config").is_dir()

    # what needs the class itself refuses, with the root cause: prune needs its retention, health its RPO
    out = c.run("prune", "--class", "configuration", "--dry-run")
    assert out.returncode == 2 and "class 'configuration' is invalid in the policy, and this command needs it" in out.stderr
    assert root in out.stderr and "policy check" in out.stderr, out.stderr
    hinted = re.search(r"`python -m backup_dr (policy check [^`]+)`", out.stderr).group(1)  # the hint's command works
    checked = c.run(*shlex.split(hinted))
    assert checked.returncode == 2 and root in checked.stderr, checked.stderr
    health = c.json("health", expect=1)
    assert any(r.startswith("critical: class configuration is not checked") and root in r for r in health["reasons"]), health


def test_a_broken_source_or_store_refuses_only_the_commands_that_need_it(cli, history, tmp_path):
    c = cli.with_env(BACKUP_DR_POLICY=_broken(tmp_path, "    mode: replication ", "    mode: replicaton "))
    out = c.run("restore", "redis", "latest", "--to", "scratch")
    assert out.returncode == 2 and "the policy has no valid redis source" in out.stderr, out.stderr
    assert "sources.redis_cache.mode: 'replicaton' is not one of" in out.stderr
    listing = c.json("list", "--source", "redis_cache")
    assert [b["backup_id"] for b in listing["backups"]] == [history.ids["redis"]]

    c = cli.with_env(BACKUP_DR_POLICY=_broken(tmp_path, "bucket: ${BACKUP_DR_GCS_BUCKET:-korea-public-data-backups}",
                                              "bucket: ${BACKUP_DR_GCS_BUKET}"))
    out = c.run("list", "--store", "gcs")
    assert out.returncode == 2 and "store 'gcs' is invalid in the policy" in out.stderr
    assert "stores.gcs.bucket: ${BACKUP_DR_GCS_BUKET} is not set and has no default" in out.stderr, out.stderr
    listing = c.json("list")  # every valid store is still searched
    assert listing["stores"] == ["local", "s3"] and history.ids["mongo"] in [b["backup_id"] for b in listing["backups"]]
    out = c.run("list", "--store", "gsc")
    assert out.returncode == 2 and "unknown store 'gsc' (did you mean 'gcs'?)" in out.stderr, out.stderr


def test_latest_never_silently_picks_another_class_when_one_is_broken(fresh_history, mongo_client, seeded_mongo,
                                                                      mongo_scratch_server, tmp_path):
    """critical_data broken: ``latest`` of mongodb must not quietly restore operational_data's
    statistics-only backup; the broken class's backups are still candidates, so it is ambiguous."""
    from datetime import timedelta

    from cli_support import mongo_conn_json

    h = fresh_history()
    old = h.mongo(mongo_client, cls_name="critical_data", age=timedelta(hours=3), key="critical")
    h.mongo(mongo_client, cls_name="operational_data", age=timedelta(hours=1), key="stats")
    c = h.cli(mongo_scratch=mongo_conn_json(mongo_scratch_server)).with_env(
        BACKUP_DR_POLICY=_broken(tmp_path, 'schedule: "0 */4 * * *"', 'schedule: "0 */4 * *"'))
    out = c.run("restore", "mongo", "latest", "--to", "mongo_scratch", "--db", "never_written")
    assert out.returncode == 2 and "`latest` is ambiguous" in out.stderr, out.stderr
    assert f"critical_data: {old.backup_id}" in out.stderr and "--class" in out.stderr
    assert "never_written" not in mongo_scratch_server.client().list_database_names()
