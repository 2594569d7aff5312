"""Secrets hygiene: every operator (through dag.test of the real DAGs) and the break-glass CLI
run with recognisable secrets (see conftest), and none of them ever appears in:

* any process's argv (/proc/*/cmdline sampled every 50 ms by a thread during all the runs:
  servers, scratch redis-servers of the drills, CLI children, git, ...),
* the task logs and exception messages (everything the runs printed and logged),
* XCom values and rendered template fields in the metadata DB,
* any object in any store: manifests, verify/drill records, health and DR reports, PITR
  markers, and the data files themselves,
* the alert emails and Slack posts, the repoint webhook's body,
* the CLI's stdout and stderr.

The runs: a backup of every class (critical_data is encrypted), a PITR slice, the restore
drill, the health monitor (critical, so it alerts), a DR dry run and a real DR run (repoint
webhook, safety backup, restore), the CLI's list / show / verify / restore (MongoDB into the
scratch server with auth, files), and two failures (Redis and MongoDB down: failure alerts
and exception texts). The UI's endpoints rejecting unauthenticated requests is covered by
tests/ui/test_api.py (every endpoint answers 401 without a token, 403 with a forged one).
"""

from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest

from tests.dags.conftest import Approver, run_dag
from tests.faults.conftest import all_xcom_text, run_cli, xcom
from tests.security.conftest import SECRETS, ArgvSampler

pytestmark = pytest.mark.slow

DAGS = {"backup_critical_data", "backup_operational_data", "backup_configuration", "backup_application_code",
        "pitr_oplog_archive", "ops_restore_drill", "ops_backup_health", "dr_database_server_failure"}


def _found(text: str | bytes) -> list[str]:
    if isinstance(text, bytes):
        return [name for name, s in SECRETS.items() if s.encode() in text]
    return [name for name, s in SECRETS.items() if s in text]


def _run(dag_id: str, when: datetime | None = None, **kw):
    if when is not None:
        kw.update(logical_date=when, run_after=when)
    return run_dag(dag_id, **kw)


def _rendered_fields_text() -> str:
    from airflow.models.renderedtifields import RenderedTaskInstanceFields as RTIF
    from airflow.utils.session import create_session

    with create_session() as session:
        return "\n".join(json.dumps(r.rendered_fields, default=str) for r in session.query(RTIF).all())


def _store_objects(stack, s3_server, gcs_server) -> dict[str, bytes]:
    out = {}
    for p in Path(stack.local).rglob("*"):
        if p.is_file():
            out[f"local:{p.relative_to(stack.local)}"] = p.read_bytes()
    s3 = s3_server.client()
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=stack.s3_bucket):
        for obj in page.get("Contents", []):
            out[f"s3:{obj['Key']}"] = s3.get_object(Bucket=stack.s3_bucket, Key=obj["Key"])["Body"].read()
    for blob in gcs_server.client().list_blobs(stack.gcs_bucket):
        out[f"gcs:{blob.name}"] = blob.download_as_bytes()
    return out


def test_no_secret_in_argv_logs_xcom_stores_alerts_or_errors(secret_stack, s3_server, gcs_server, output, tmp_path):
    stack = secret_stack
    now = datetime.now(timezone.utc).replace(microsecond=0)
    cli_outputs: dict[str, str] = {}
    with ArgvSampler(SECRETS) as sampler:
        # a backup of every class
        ids = {}
        for i, (dag_id, conf) in enumerate([
            ("backup_critical_data", None), ("backup_operational_data", None), ("backup_configuration", None),
            ("backup_application_code", {"ref": "v1.0.0", "image": "registry.example/api:1.0.0", "image_digest": "sha256:" + "ab" * 32}),
        ]):
            dr, states = _run(dag_id, now - timedelta(hours=2, minutes=-i), run_conf=conf)
            assert str(dr.state) == "success", (dag_id, states)
            ids[dag_id] = dr
        critical_id = xcom(ids["backup_critical_data"], "backup_mongodb")["backup_id"]
        assert xcom(ids["backup_critical_data"], "backup_mongodb")["encryption_key_id"]  # the class really is encrypted

        # a PITR slice after a write
        with stack.admin(stack.prod, SECRETS["mongo"]) as c:
            c["korea_public_data"].contents.insert_one({"_id": "hygiene", "slug": "hygiene"})
        dr, states = _run("pitr_oplog_archive", now - timedelta(hours=1, minutes=50))
        assert str(dr.state) == "success" and xcom(dr, "archive_oplog_mongodb")["status"] == "archived", states

        # the drill, then health (critical 5 h later: alerts through SMTP with AUTH and Slack)
        dr, states = _run("ops_restore_drill", now - timedelta(hours=1, minutes=40))
        assert str(dr.state) == "success", states
        dr, states = _run("ops_backup_health", now - timedelta(hours=1, minutes=30),
                          run_conf={"as_of": (now + timedelta(hours=5)).isoformat()})
        assert str(dr.state) == "success" and xcom(dr, "check_backup_health")["status"] == "critical", states
        assert stack.smtp.wait_for(lambda m: "backup health is CRITICAL" in m["Subject"])

        # DR: a dry run, then a real recovery onto the DR target (repoint webhook with its token)
        with Approver({"provision_mongodb": ("Approve", {})}):
            dr, states = _run("dr_database_server_failure")
        assert str(dr.state) == "success", states
        with Approver({"provision_mongodb": ("Approve", {})}):
            dr, states = _run("dr_database_server_failure", run_conf={"dry_run": False})
        assert str(dr.state) == "success", states
        assert stack.webhook.wait_for(lambda r: r["path"] == "/admin/repoint")

        # the break-glass CLI, with the same connections from the environment
        restore_dir = tmp_path / "config-restored"
        for name, args in {
            "list": ("list",), "show": ("show", critical_id), "verify": ("verify", critical_id),
            "restore mongo": ("restore", "mongo", critical_id, "--to", "mongo_scratch", "--db", "hygiene_restore",
                              "--safety-dir", str(tmp_path / "safety")),
            "restore files": ("restore", "files", "latest", "--source", "app_config", "--to", str(restore_dir)),
            "verify (json)": ("verify", critical_id, "--json"),
        }.items():
            out = run_cli(*args)
            assert out.returncode == 0, (name, out.stdout[-2000:], out.stderr[-2000:])
            cli_outputs[name] = out.stdout + out.stderr
        with stack.admin(stack.scratch, SECRETS["mongo_scratch"]) as c:
            assert c["hygiene_restore"].announcements.count_documents({}) == 600

        # failures: Redis down, then MongoDB down (exception texts, failure alerts)
        stack.redis.stop()
        dr, states = _run("backup_operational_data", now - timedelta(hours=1))
        assert states["backup_redis_cache"] == "failed", states
        stack.prod.stop()
        dr, states = _run("backup_configuration", now - timedelta(minutes=50))
        assert states["backup_mongodb_schema"] == "failed", states
        assert stack.smtp.wait_for(lambda m: "backup_redis_cache" in m["Subject"])
        assert stack.smtp.wait_for(lambda m: "backup_mongodb_schema" in m["Subject"])

    # ---------------------------------------------------------------- where secrets must not be
    assert sampler.samples > 100, sampler.samples
    assert any("redis-server" in c for c in sampler.commands), "the sampler must have seen the servers' command lines"
    assert any("-m backup_dr" in c for c in sampler.commands), "the sampler must have seen the CLI's command lines"
    assert sampler.hits == [], sampler.hits

    log = output.text()
    assert "Task failed with exception" in log and "redis connection 'redis_cache'" in log  # the failures were captured
    assert _found(log) == [], "a secret is in the task logs / exception messages"
    assert _found(all_xcom_text(DAGS)) == [], "a secret is in an XCom value"
    assert _found(_rendered_fields_text()) == [], "a secret is in a rendered template field"

    objects = _store_objects(stack, s3_server, gcs_server)
    assert any(k.endswith("manifest.json") for k in objects) and any("/verify-" in k for k in objects)
    leaks = {k: _found(v) for k, v in objects.items() if _found(v)}
    assert leaks == {}, f"secrets in stored objects: {leaks}"

    mails = "\n".join(stack.smtp.text(m) for m in stack.smtp.messages)
    assert len(stack.smtp.messages) >= 3 and _found(mails) == [], "a secret is in an alert email"
    posts = json.dumps([r["body"] for r in stack.slack.requests], ensure_ascii=False)
    assert stack.slack.requests and _found(posts) == [], "a secret is in a Slack post"
    repoint = json.dumps([r["body"] for r in stack.webhook.requests if r["path"] == "/admin/repoint"])
    assert _found(repoint) == [], "a secret is in the repoint webhook's body"
    # (the Slack token IS the webhook URL's path and the repoint token IS its Authorization header: their destinations)
    assert all(r["path"].endswith(SECRETS["slack"]) for r in stack.slack.requests)

    for name, text in cli_outputs.items():
        assert _found(text) == [], f"a secret is in the output of the CLI's {name}"
