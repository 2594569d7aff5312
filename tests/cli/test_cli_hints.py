"""Every command a restore-related hint prints is one that works: the tests run them.

A hint is the first thing read at 3 a.m.; one naming a flag that does not exist (the old
Redis ``--replace``), a Python function, or a stock tool that cannot read the file (the old
"rollback failed" hint: ``mongorestore`` on a zstd safety archive) sends the reader the
wrong way. Complete commands are run as printed (only ``python -m backup_dr`` is replaced by
this interpreter) and must succeed; a command with placeholders (``<id>``, ``...``) must at
least name a sub-command that exists (its ``--help`` works).
"""

from __future__ import annotations

import json
import re
import shlex

import pytest

from backup_dr.devstack import sample_data

from cli_support import mongo_conn_json, snapshot_db
from tests.faults.conftest import APP, TestCommandsMongo

_CMD = re.compile(r"python -m backup_dr ((?:[^`\s|;(),]+ ?)+)")


def commands_in(text: str) -> list[str]:
    """The ``python -m backup_dr ...`` commands a message names, without the prefix."""
    return [m.group(1).strip() for m in _CMD.finditer(text)]


def run_printed(cli, command: str, **kw):
    """Run a printed command: complete ones as they are; with placeholders, their --help."""
    args = shlex.split(command)
    if any(a.startswith("<") or a in ("...", "ID", "CONN_ID") for a in args):
        words = [a for a in args if not (a.startswith("<") or a.startswith("-") or a in ("...", "ID", "CONN_ID"))]
        out = cli.run(*words[:2], "--help")
        assert out.returncode == 0, f"{command!r} names no sub-command that exists:\n{out.stderr}"
        return None
    return cli.run(*args, **kw)


def test_the_rollback_failed_hint_names_the_cli_command_and_it_works(cli, history, tmp_path, fresh_db_name):
    with TestCommandsMongo(tmp_path / "target") as server:
        client = server.client()
        sample_data.seed_mongo(client, {"announcements": 300, "businesses": 200, "contents": 40, "statistics": 30},
                               database=fresh_db_name, seed=5)
        before = snapshot_db(client, fresh_db_name)
        conn = json.loads(mongo_conn_json(server))
        conn["extra"]["appname"] = APP
        target_cli = cli.with_env(AIRFLOW_CONN_MONGO_TARGET=json.dumps(conn))
        # the third insert and every one after it loses its connection: the restore fails, and so does its rollback
        client.admin.command("configureFailPoint", "failCommand", mode={"skip": 2, "times": 100_000},
                             data={"failCommands": ["insert"], "closeConnection": True, "appName": APP})
        out = target_cli.run("restore", "mongo", history.ids["mongo"], "--to", "mongo_target", "--db", fresh_db_name, "--drop")
        assert out.returncode == 1, out.stderr
        assert "failed AND the rollback failed: the target may be half-written" in out.stderr
        assert "mongorestore" not in out.stderr and "restore_mongodb" not in out.stderr
        [command] = {c for c in commands_in(out.stderr) if c.startswith("restore rollback")}  # printed twice: error + log
        assert snapshot_db(client, fresh_db_name) != before

        client.admin.command("configureFailPoint", "failCommand", mode="off")  # the target answers again
        done = run_printed(target_cli, command)
        assert done.returncode == 0, done.stderr
        assert snapshot_db(client, fresh_db_name) == before
        assert target_cli.run("restore", "status").returncode == 0
        client.close()


def test_the_redis_replace_hint_names_a_flag_that_exists(fresh_history, cli_redis, tmp_path):
    """On a history of its own: the replace writes a safety backup, which other tests listing the
    shared history's Redis backups must not see."""
    from backup_dr.core.connections import ConnInfo
    from backup_dr.devstack.servers import RedisServer

    history = fresh_history()
    history.redis(ConnInfo("redis_cache", "redis", "127.0.0.1", cli_redis.port, None, cli_redis.password))
    cli = history.cli()
    with RedisServer(tmp_path / "target", password="hint-secret") as server:
        server.client().set("already", "here")
        target_cli = cli.with_env(AIRFLOW_CONN_REDIS_TARGET=json.dumps(
            {"conn_type": "redis", "host": "127.0.0.1", "port": server.port, "password": "hint-secret"}))
        out = target_cli.run("restore", "redis", history.ids["redis"], "--to", "redis_target")
        assert out.returncode == 1 and "is not empty" in out.stderr
        [command] = commands_in(out.stderr)
        assert command.endswith("--replace")
        done = run_printed(target_cli, command, extra_env=None)
        assert done.returncode == 0, done.stderr
        assert server.client().get("already") is None and server.client().dbsize() > 0


@pytest.mark.parametrize("args", [
    ("restore", "mongo", "{redis}", "--to", "mongo_scratch"),  # the wrong kind of backup
    ("restore", "redis", "{mongo}", "--to", "scratch"),
    ("restore", "mongo", "--to", "mongo_scratch"),  # neither an id nor --at
    ("restore", "rollback", "latest"),  # nothing to roll back
    ("restore", "files", "critical_data.nothing.files.20261126T080000Z", "--to", "/tmp/x"),  # no such backup
], ids=["mongo-of-redis", "redis-of-mongo", "no-id", "no-rollback", "unknown-id"])
def test_refusal_hints_name_commands_that_exist(cli, history, args):
    out = cli.run(*[a.format(**history.ids) for a in args])
    assert out.returncode in (1, 2), out.stderr
    named = commands_in(out.stderr)
    assert named, f"no command in: {out.stderr}"
    for command in named:
        done = run_printed(cli, command)
        assert done is None or done.returncode in (0, 1), f"{command!r}: exit {done.returncode}\n{done.stderr}"
