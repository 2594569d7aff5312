"""The docker-compose deployment, for real on this machine: CeleryExecutor with two workers.

Docker does not run here, so the compose file's Airflow services run as separate processes with
the compose file's own environment (mapped by tests/system/compose_env.py): api-server,
scheduler, dag-processor and triggerer on PostgreSQL (a database of their own), the machine's
RabbitMQ (a vhost of its own) as Celery broker and PostgreSQL as result backend, and one Celery
worker per compose worker service — ``airflow-worker`` (queue ``default``) and
``airflow-worker-near-db`` (``default,near_db``) — each in its own UTS namespace with the
service's name as hostname, sharing one local store directory (the compose ``backups`` volume).
The policy's pools are imported first, as compose's airflow-init does.

The test policy is the shipped one plus: ``classes.configuration.queue: near_db`` and
``sources.app_repository.queue: near_db`` (pinned work), and a 20 s RTO for
``dr_database_server_failure`` (so its deadline is missed while it waits for a human).

Shown through the REST API and the stores, in order (one deployment for the module):

1. what ran is what docker-compose.yaml sets (process environments and worker queues);
2. every class DAG succeeds with its tasks spread over both workers, a dump written by one
   worker replicated by the other from the shared store, every copy verified;
3. a worker SIGKILLed (its whole process group: the host is lost) in the middle of a MongoDB
   dump: the task is failed by the heartbeat timeout and retried on the surviving worker, the
   dead attempt's lock does not block it, exactly one complete backup results;
4. with one worker slot and the MongoDB pool busy, ``backup_operational_data`` triggered before
   ``backup_critical_data``: the critical dump runs first, the two dumps never overlap;
5. a deadline alert (AsyncCallback in the triggerer) and an approval (deferred HITL) on Celery;
6. MongoDB down: the critical job of ``backup_operational_data`` fails after its retries and
   stops what the seed's orchestrator stops (Redis, files: never started), with the alert.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import uuid
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import pytest
from bson import Binary

from backup_dr.core.catalog import Catalog
from backup_dr.core.connections import parse_conn
from backup_dr.core.policy import load_policy
from backup_dr.core.stores.factory import open_stores
from backup_dr.core.verify import verify_copy
from backup_dr.devstack import sample_data
from backup_dr.devstack.app_files import make_app_dir
from backup_dr.devstack.servers import MongoServer, RedisServer, free_port
from tests.faults.conftest import GrowingTmpFile, backup_dirs, tmp_leftovers
from tests.system import compose_env
from tests.system.airflow_deploy import BIN, AirflowProcess, Api, import_pools, psql, rabbitmqctl, wait_until

pytestmark = pytest.mark.slow
ROOT = Path(__file__).resolve().parents[2]
NEAR_DB = "airflow-worker-near-db"
PLAIN = "airflow-worker"


@dataclass
class Stack:
    api: Api
    procs: dict[str, AirflowProcess]
    workers: dict[str, AirflowProcess]
    compose_env: dict[str, str]
    mongo: MongoServer
    policy: object
    stores: dict
    local_store: Path
    vhost: str
    smtp: object
    slack: object

    def live_workers(self) -> dict[str, AirflowProcess]:
        return {n: w for n, w in self.workers.items() if w.alive()}


def _test_policy(tmp: Path) -> Path:
    text = (ROOT / "include" / "policy.yaml").read_text(encoding="utf-8")
    edits = [
        ("    rpo: 4h\n    rto: 30m\n    backup_class: critical_data\n    target_conn_id: mongo_dr_target",
         "    rpo: 4h\n    rto: 20s\n    backup_class: critical_data\n    target_conn_id: mongo_dr_target"),
        ("  configuration:\n    description:", "  configuration:\n    queue: near_db\n    description:"),
        ("  app_repository:\n    type: git\n", "  app_repository:\n    type: git\n    queue: near_db\n"),
    ]
    for old, new in edits:
        assert text.count(old) == 1, old
        text = text.replace(old, new)
    path = tmp / "policy.yaml"
    path.write_text(text, encoding="utf-8")
    return path


def _seed(mongo: MongoServer) -> None:
    """The sample database plus ~40 MB of incompressible blobs in ``contents`` (a critical-class
    collection), so a dump takes seconds and can be caught in the middle."""
    client = mongo.client()
    sample_data.seed_mongo(client)
    for batch in range(8):
        client[sample_data.DATABASE].contents.insert_many(
            [{"slug": f"blob-{batch}-{i}", "blob": Binary(os.urandom(100_000))} for i in range(50)])
    client.close()


def _env_conn(conn_id: str) -> dict:
    return json.loads(os.environ[f"AIRFLOW_CONN_{conn_id.upper()}"])


@pytest.fixture(scope="module")
def stack(tmp_path_factory, s3_server, gcs_server, mongo_scratch_server, smtp_sink, slack_sink, webhook_sink):
    tmp = tmp_path_factory.mktemp("celery")
    uid = uuid.uuid4().hex[:8]
    db = vhost = f"backup_dr_celery_{uid}"
    home, shared = tmp / "airflow-home", tmp / "shared-backups"
    home.mkdir()
    shared.mkdir()
    procs: dict[str, AirflowProcess] = {}
    mongo = MongoServer(tmp / "mongo").start()
    redis = RedisServer(tmp / "redis", password="celery-redis-secret").start()
    try:
        s3_bucket, gcs_bucket = f"celery-{uid}", f"celery-{uid}"
        s3_server.client().create_bucket(Bucket=s3_bucket)
        gcs_server.client().create_bucket(gcs_bucket)
        mongo_extra = {"directConnection": True, "serverSelectionTimeoutMS": 3000, "connectTimeoutMS": 3000}
        local = compose_env.Local(
            home=home, api_port=free_port(), pg_database=db, amqp_vhost=vhost, policy=_test_policy(tmp),
            local_store=shared, s3_bucket=s3_bucket, gcs_bucket=gcs_bucket, gcs_endpoint=os.environ["STORAGE_EMULATOR_HOST"],
            app_dir=make_app_dir(tmp / "app"), app_health_url=os.environ["BACKUP_DR_APP_HEALTH_URL"],
            connections={
                "mongo_korea_public_data": {"conn_type": "mongo", "host": "127.0.0.1", "port": mongo.port, "extra": mongo_extra},
                "mongo_scratch": _env_conn("mongo_scratch"),
                "mongo_dr_target": _env_conn("mongo_scratch"),  # the DR run is a dry run into the scratch server
                "redis_cache": {"conn_type": "redis", "host": "127.0.0.1", "port": redis.port, "password": redis.password},
                "redis_dr_target": {"conn_type": "redis", "host": "127.0.0.1", "port": free_port()},  # not exercised
                "backup_s3": _env_conn("backup_s3"), "backup_gcs": _env_conn("backup_gcs"),
                "smtp_backup_alerts": _env_conn("smtp_backup_alerts"), "slack_backup_alerts": _env_conn("slack_backup_alerts"),
                "dr_repoint_webhook": _env_conn("dr_repoint_webhook"),
                # Airflow's own metadata DB (PostgreSQL here, as in compose) is the configuration class's airflow_db
                "airflow_metadata_db": {"conn_type": "postgres", "host": "127.0.0.1", "port": 5432, "login": "postgres", "schema": db},
                "pg_scratch": {"conn_type": "postgres", "host": "127.0.0.1", "port": 5432, "login": "postgres", "schema": "postgres"},
            },
        )
        compose = compose_env.load_compose()
        c_env = compose_env.compose_airflow_env(compose)
        test_only = {
            "AIRFLOW_HOME": str(home),
            "AIRFLOW__CORE__DAGS_FOLDER": str(ROOT / "dags"),
            "AIRFLOW__CORE__PLUGINS_FOLDER": str(ROOT / "plugins"),
            "AIRFLOW__CORE__HOSTNAME_CALLABLE": "socket.gethostname",
            "AIRFLOW__API__HOST": "127.0.0.1",
            "AIRFLOW__API__PORT": str(local.api_port),
            "AIRFLOW__SCHEDULER__SCHEDULER_HEALTH_CHECK_SERVER_HOST": "127.0.0.1",
            "AIRFLOW__SCHEDULER__SCHEDULER_HEALTH_CHECK_SERVER_PORT": str(free_port()),
            "AIRFLOW__CORE__PARALLELISM": "4",
            "AIRFLOW__SCHEDULER__TASK_INSTANCE_HEARTBEAT_TIMEOUT": "30",
            "AIRFLOW__SCHEDULER__TASK_INSTANCE_HEARTBEAT_TIMEOUT_DETECTION_INTERVAL": "2",
            "AIRFLOW__DAG_PROCESSOR__REFRESH_INTERVAL": "5",
            "AIRFLOW__SCHEDULER__MIN_FILE_PROCESS_INTERVAL": "5",
            "BACKUP_DR_RETRY_DELAY": "1s",
            "BACKUP_DR_MAX_RETRY_DELAY": "2s",
            "PYTHONPATH": str(ROOT / "plugins"),
            "PYTHONDONTWRITEBYTECODE": "1",  # no dags/__pycache__ in the checkout (the DagBag I/O test would see it)
            "PATH": f"{BIN}:/usr/sbin:/usr/bin:/sbin:/bin",
        }
        base = {k: os.environ[k] for k in ("HOME", "USER", "LANG", "LC_ALL", "TMPDIR") if k in os.environ}
        env = {**base, **compose_env.local_env(c_env, local), **test_only}

        psql(f"CREATE DATABASE {db}")
        rabbitmqctl("add_vhost", vhost)
        rabbitmqctl("set_permissions", "-p", vhost, "guest", ".*", ".*", ".*")
        migrate = subprocess.Popen([str(BIN / "airflow"), "db", "migrate"], env=env, stdout=subprocess.PIPE,
                                   stderr=subprocess.STDOUT, cwd=tmp)
        _seed(mongo)  # while the metadata DB migrates
        sample_data.seed_redis(redis.client())
        out, _ = migrate.communicate(timeout=900)
        assert migrate.returncode == 0, out[-3000:]
        import_pools(env, tmp)

        airflow = str(BIN / "airflow")
        for name, argv in (("api-server", [airflow, "api-server"]), ("scheduler", [airflow, "scheduler"]),
                           ("dag-processor", [airflow, "dag-processor"]), ("triggerer", [airflow, "triggerer", "--skip-serve-logs"])):
            procs[name] = AirflowProcess(name, argv, env, tmp, tmp)
        api = Api(local.api_url, Path(env["AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE"]))

        def healthy():
            for p in procs.values():
                if not p.alive():  # not retried by wait_until
                    raise RuntimeError(f"{p.name} exited:\n{p.tail()}")
            h = api.call("GET", "/api/v2/monitor/health")
            return all(h.get(k, {}).get("status") == "healthy" for k in ("metadatabase", "scheduler", "triggerer", "dag_processor"))

        wait_until(healthy, "api-server, scheduler, triggerer and dag-processor healthy", 300, interval=2)
        # one worker per compose worker service, its hostname the service name (as a container's would be)
        for service, queues in compose_env.compose_workers(compose).items():
            argv = ["unshare", "--uts", "--", "sh", "-c", 'hostname "$0" && exec "$@"', service,
                    airflow, "celery", "worker", "--queues", ",".join(queues), "--concurrency", "1", "--skip-serve-logs"]
            procs[service] = AirflowProcess(service, argv, env, tmp, tmp)
        api.login()
        api.wait_dags({"backup_critical_data", "backup_operational_data", "backup_configuration", "backup_application_code",
                       "dr_database_server_failure"}, timeout=300)
        with pytest.MonkeyPatch.context() as mp:  # the policy's ${VARS} as the deployment sees them
            for key in ("BACKUP_DR_LOCAL_PATH", "BACKUP_DR_S3_BUCKET", "BACKUP_DR_GCS_BUCKET", "BACKUP_DR_APP_DIR"):
                mp.setenv(key, env[key])
            policy = load_policy(local.policy)
        stores = open_stores(policy.stores.values(), lambda cid: parse_conn(cid, json.dumps(local.connections[cid])))
        workers = {n: procs[n] for n in compose_env.compose_workers(compose)}
        def workers_ready():
            for w in workers.values():
                if not w.alive():
                    raise RuntimeError(f"{w.name} exited:\n{w.tail()}")
            return all(" ready." in w.tail(20000) for w in workers.values())

        wait_until(workers_ready, "both Celery workers connected to the broker", 180, interval=2)
        yield Stack(api, procs, workers, c_env, mongo, policy, stores, shared, vhost, smtp_sink, slack_sink)
    finally:
        for p in reversed(list(procs.values())):
            p.stop()
        for what in (lambda: psql(f"DROP DATABASE IF EXISTS {db} WITH (FORCE)"), lambda: rabbitmqctl("delete_vhost", vhost)):
            try:
                what()
            except Exception as e:  # noqa: BLE001 - cleanup of a database/vhost that was never created
                print(f"cleanup: {e}", file=sys.stderr)
        redis.cleanup()
        mongo.cleanup()


def _hosts(tis: list[dict]) -> dict[str, str]:
    return {t["task_id"] + (f"[{t['map_index']}]" if t["map_index"] >= 0 else ""): t["hostname"] for t in tis}


def _assert_success(api: Api, dag_id: str, run_id: str, timeout: float = 420) -> list[dict]:
    run = api.wait_run(dag_id, run_id, timeout=timeout)
    tis = api.task_instances(dag_id, run_id)
    assert run["state"] == "success", [(t["task_id"], t["map_index"], t["state"]) for t in tis]
    assert all(t["state"] == "success" for t in tis), tis
    return tis


def _assert_verified_everywhere(stack: Stack, backup_class: str) -> list:
    """Every backup of the class is complete in each of its stores and every copy re-hashes."""
    names = stack.policy.classes[backup_class].stores
    entries = Catalog({n: stack.stores[n] for n in names}).list(backup_class, include_incomplete=True)
    assert entries, backup_class
    for entry in entries:
        assert sorted(entry.complete_in) == sorted(names), (entry.backup_id, entry.copies)
        manifest = entry.manifest()
        for name in names:
            assert verify_copy(stack.stores[name], manifest)["ok"], (entry.backup_id, name)
    return entries


def test_the_deployment_is_the_compose_files(stack):
    """Every process got the compose file's environment (mapped) and nothing unlisted; the workers
    consume the compose services' queues on the run's own broker vhost; the pools exist.

    (The environment is the one each process was started with: Airflow's setproctitle overwrites
    /proc/<pid>/environ, so it cannot be read back from the running process.)"""
    compose = compose_env.load_compose()
    for proc in stack.procs.values():
        assert compose_env.agreement(stack.compose_env, proc.env) == [], proc.name
        assert proc.env["AIRFLOW__CORE__EXECUTOR"] == "CeleryExecutor"
    for service, queues in compose_env.compose_workers(compose).items():
        argv = stack.workers[service].argv
        assert argv[argv.index("--queues") + 1].split(",") == queues, argv
    assert len({p.env["BACKUP_DR_LOCAL_PATH"] for p in stack.procs.values()}) == 1  # the shared `backups` volume
    # the workers really consume those queues on this run's RabbitMQ vhost
    consumers = {line.split("\t")[0] for line in rabbitmqctl("list_queues", "-p", stack.vhost, "name", "consumers", "--quiet",
                                                               "--no-table-headers").splitlines() if line.strip()}
    assert {"default", "near_db"} <= consumers, consumers
    assert stack.api.call("GET", "/api/v2/pools/backup_dr_mongodb")["slots"] == 1


def _first_run(api: Api, dag_id: str, wait: float = 60) -> str:
    """The run the scheduler creates when a cron DAG is unpaused (its latest slot: catchup is off),
    or a manual one if it made none."""
    try:
        return wait_until(lambda: next((r["dag_run_id"] for r in api.call("GET", f"/api/v2/dags/{dag_id}/dagRuns")["dag_runs"]), None),
                          f"{dag_id}'s first run", wait)
    except AssertionError:
        return api.trigger(dag_id)


def test_every_class_runs_spread_over_both_workers_and_every_copy_verifies(stack):
    api = stack.api
    # critical_data alone first: its two replication tasks are queued together with both workers idle
    api.call("PATCH", "/api/v2/dags/backup_critical_data", {"is_paused": False})
    crit = _first_run(api, "backup_critical_data")
    crit_tis = _assert_success(api, "backup_critical_data", crit)
    for dag_id in ("backup_operational_data", "backup_configuration", "backup_application_code"):
        api.call("PATCH", f"/api/v2/dags/{dag_id}", {"is_paused": False})
    runs = {d: _first_run(api, d) for d in ("backup_operational_data", "backup_configuration")}
    asset_id = api.call("GET", "/api/v2/assets?uri_pattern=korea-public-data-api")["assets"][0]["id"]
    api.call("POST", "/api/v2/assets/events", {"asset_id": asset_id, "extra": {
        "ref": "v1.0.0", "image": "registry.example/korea-public-data-api:1.0.0", "image_digest": "sha256:" + "ab" * 32}})
    runs["backup_application_code"] = wait_until(
        lambda: next((r["dag_run_id"] for r in api.call("GET", "/api/v2/dags/backup_application_code/dagRuns")["dag_runs"]
                      if r["run_type"] == "asset_triggered"), None), "the Asset event started backup_application_code", 120)
    hosts = {"backup_critical_data": _hosts(crit_tis)}
    for dag_id, run_id in runs.items():
        hosts[dag_id] = _hosts(_assert_success(api, dag_id, run_id))

    used = {h for per_dag in hosts.values() for h in per_dag.values()}
    assert used == {PLAIN, NEAR_DB}, hosts
    # pinned work ran only where its queue is consumed
    assert set(hosts["backup_configuration"].values()) == {NEAR_DB}, hosts["backup_configuration"]
    assert hosts["backup_application_code"]["backup_app_repository"] == NEAR_DB
    # a dump written by one worker was replicated by the other, through the shared store
    c = hosts["backup_critical_data"]
    assert {c["replicate_mongodb[0]"], c["replicate_mongodb[1]"]} - {c["backup_mongodb"]}, c
    for cls in ("critical_data", "operational_data", "configuration", "application_code"):
        _assert_verified_everywhere(stack, cls)
    assert tmp_leftovers(stack.local_store) == []


def test_worker_lost_mid_dump_the_task_is_retried_on_the_survivor(stack):
    api, dag_id = stack.api, "backup_critical_data"
    assert len(stack.live_workers()) == 2
    before = {e.backup_id for e in Catalog(stack.stores).list("critical_data", include_incomplete=True)}
    run_id = api.trigger(dag_id)
    running = wait_until(lambda: next((t for t in api.task_instances(dag_id, run_id)
                                       if t["task_id"] == "backup_mongodb" and t["state"] == "running" and t["hostname"]), None),
                         "backup_mongodb running on a worker", 180, interval=0.3)
    victim = running["hostname"]
    survivor = ({PLAIN, NEAR_DB} - {victim}).pop()
    growing = GrowingTmpFile(stack.local_store / "backup-dr-v1" / "critical_data", 2_000_000)
    wait_until(growing, "the archive being written", 120, interval=0.02)
    stack.workers[victim].kill_group()  # the host is lost: worker, its task supervisor and the task process
    killed_at = time.time()
    assert {e.backup_id for e in Catalog(stack.stores).list("critical_data")} <= before, "the dump had already finished"

    tis = _assert_success(api, dag_id, run_id, timeout=420)
    tries = api.tries(dag_id, run_id, "backup_mongodb")
    assert tries[0]["hostname"] == victim and tries[0]["state"] == "failed", tries
    assert tries[-1]["hostname"] == survivor and tries[-1]["state"] == "success", tries
    # the retry was not blocked by the dead attempt's lock: the first retry succeeded
    assert [t["try_number"] for t in tries] == [1, 2], tries
    assert all(h == survivor for t, h in _hosts(tis).items()), _hosts(tis)
    print(f"worker {victim} killed at +0s; retry on {survivor} finished "
          f"{time.time() - killed_at:.0f}s later (the heartbeat timeout is 30 s)")

    # exactly one complete backup for this run (its id derives from the run's run_after), intact everywhere
    entries = _assert_verified_everywhere(stack, "critical_data")
    run_after = datetime.fromisoformat(api.call("GET", api.run_path(dag_id, run_id))["run_after"].replace("Z", "+00:00"))
    mine = [e for e in entries if e.bid.stamp == run_after.replace(microsecond=0)]
    assert len(mine) == 1 and mine[0].backup_id not in before, ([e.backup_id for e in entries], run_after)
    assert all(backup_dirs(stack.local_store).values()) and tmp_leftovers(stack.local_store) == []


def test_critical_class_first_with_one_worker_slot_and_one_pool_slot(stack):
    api = stack.api
    live = stack.live_workers()
    while len(live) > 1:  # one worker slot (after the previous test, the survivor alone)
        name = sorted(live)[0]
        live.pop(name).stop()
    for dag_id in ("backup_operational_data", "backup_critical_data"):  # unpausing starts the latest slot: let it finish
        api.call("PATCH", f"/api/v2/dags/{dag_id}", {"is_paused": False})
        try:
            wait_until(lambda: api.call("GET", f"/api/v2/dags/{dag_id}/dagRuns")["dag_runs"], f"a run of {dag_id}", 30)
        except AssertionError:
            pass  # the scheduler made none (no slot due): nothing to wait for
        wait_until(lambda: not api.call("GET", f"/api/v2/dags/{dag_id}/dagRuns?state=running&state=queued")["dag_runs"],
                   f"no active run of {dag_id}", 420, interval=2)
    pool = "/api/v2/pools/backup_dr_mongodb?update_mask=slots"
    body = {"name": "backup_dr_mongodb", "include_deferred": False}
    api.call("PATCH", pool, {**body, "slots": 0})  # the database is busy with another dump
    assert api.call("GET", "/api/v2/pools/backup_dr_mongodb")["slots"] == 0
    try:
        ops = api.trigger("backup_operational_data")  # triggered FIRST
        crit = api.trigger("backup_critical_data")

        def both_waiting():
            states = {d: next(t["state"] for t in api.task_instances(d, r) if t["task_id"] == "backup_mongodb")
                      for d, r in (("backup_operational_data", ops), ("backup_critical_data", crit))}
            assert set(states.values()) == {"scheduled"}, states
            return states

        wait_until(both_waiting, "both MongoDB dumps waiting for the pool", 180)
    finally:
        api.call("PATCH", pool, {**body, "slots": 1})
    crit_tis = {t["task_id"]: t for t in _assert_success(api, "backup_critical_data", crit)}
    ops_tis = {t["task_id"]: t for t in _assert_success(api, "backup_operational_data", ops)}
    c, o = crit_tis["backup_mongodb"], ops_tis["backup_mongodb"]
    assert c["priority_weight"] > o["priority_weight"], (c["priority_weight"], o["priority_weight"])
    assert c["start_date"] < o["start_date"], "the critical class's dump must run first"
    assert c["end_date"] <= o["start_date"], "two dumps of the same MongoDB ran at once"
    # inside the operational class, everything else waited for its critical MongoDB job
    for task_id in ("backup_redis_cache", "backup_app_logs", "backup_app_uploads"):
        assert ops_tis[task_id]["start_date"] >= o["end_date"], task_id


def test_deadline_alert_and_approval_with_the_triggerer_on_celery(stack):
    api, smtp, slack = stack.api, stack.smtp, stack.slack
    smtp.messages.clear(), slack.requests.clear()
    assert stack.live_workers(), "no worker left"
    if not Catalog(stack.stores).list("critical_data"):  # run on its own: pick_backup needs a backup to pick
        api.call("PATCH", "/api/v2/dags/backup_critical_data", {"is_paused": False})
        _assert_success(api, "backup_critical_data", _first_run(api, "backup_critical_data"))
    dr_run = api.trigger("dr_database_server_failure", {"dry_run": True})
    mail = smtp.wait_for(lambda m: "DEADLINE MISSED" in m["Subject"] and "dr_database_server_failure" in smtp.text(m), timeout=240)
    assert mail and "RTO of 20s exceeded" in mail[0]["Subject"], [m["Subject"] for m in smtp.messages]
    assert slack.wait_for(lambda r: "DEADLINE MISSED" in str(r["body"]), timeout=60)
    def approval_state():
        states = {t["task_id"]: t["state"] for t in api.task_instances("dr_database_server_failure", dr_run)}
        assert states.get("provision_mongodb") in ("deferred", "awaiting_input"), states  # HITL's deferred state
        return True

    wait_until(approval_state, "the approval waiting in the triggerer", 120)
    api.call("PATCH", api.run_path("dr_database_server_failure", dr_run) + "/taskInstances/provision_mongodb/-1/hitlDetails",
             {"chosen_options": ["Approve"], "params_input": {}})
    _assert_success(api, "dr_database_server_failure", dr_run)


def test_critical_job_failure_stops_the_rest_of_the_class(stack):
    api, smtp = stack.api, stack.smtp
    smtp.messages.clear()
    before = {e.backup_id for e in Catalog(stack.stores).list("operational_data", include_incomplete=True)}
    stack.mongo.kill()  # the production database is down
    run_id = api.trigger("backup_operational_data")
    run = api.wait_run("backup_operational_data", run_id, timeout=420)
    tis = {t["task_id"] + (f"[{t['map_index']}]" if t["map_index"] >= 0 else ""): t
           for t in api.task_instances("backup_operational_data", run_id)}
    assert run["state"] == "failed"
    assert tis["backup_mongodb"]["state"] == "failed" and tis["backup_mongodb"]["try_number"] == 3  # retries as in production
    # the seed: "if the MongoDB backup fails, stop" — Redis and the application files never start
    for task_id in ("backup_redis_cache", "backup_app_logs", "backup_app_uploads", "prune"):
        assert tis[task_id]["state"] == "upstream_failed" and not tis[task_id]["hostname"], tis[task_id]  # never ran
    mails = smtp.wait_for(lambda m: "backup_mongodb" in m["Subject"], timeout=120)
    assert mails and "backup class operational_data" in smtp.text(mails[0])
    assert {e.backup_id for e in Catalog(stack.stores).list("operational_data", include_incomplete=True)} == before
    assert tmp_leftovers(stack.local_store) == []
