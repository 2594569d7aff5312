"""The demo: the real DAGs on embedded local services, in about a minute.

    bash scripts/demo.sh            # or: PYTHONPATH=plugins .venv/bin/python -m backup_dr.devstack.demo

1. starts the stand-ins on 127.0.0.1 (SecantusDB for MongoDB + a scratch instance, redis-server,
   a private PostgreSQL cluster standing in for Airflow's metadata DB (the `airflow_db` source),
   moto for S3, the GCS emulator, an SMTP sink and a webhook sink), each on a free port;
2. seeds realistic Korean public-data documents and cache keys;
3. runs ``backup_critical_data`` (dump, replicate to S3 + GCS with byte-for-byte verification,
   manifest last, prune) and the other class DAGs, then ``ops_restore_drill`` (restores the
   newest backups into scratch targets and times them) and ``ops_backup_health``, with
   Airflow's ``dag.test()`` on a throwaway SQLite metadata DB;
4. prints where every backup went, its size, and the verified restore time against the RTO.

It writes ``<workdir>/cli.env`` (default ``.demo/cli.env``, mode 0600): the variables the
break-glass CLI needs for the demo's backups, so the closing hint is a command that works
when pasted into any shell (``. .demo/cli.env && .venv/bin/backup-dr list ...``). After the
demo it names only the local store (the S3/GCS stand-ins stop with the demo); with
``--keep`` the services stay up until Ctrl-C and the file also holds their connections,
then goes back to the local-only form on exit.

The product's own configuration must not make Airflow print warnings a newcomer would take
for problems: no demo connection has a field shorter than the secrets masker's minimum (it
warns about any, even one it would not mask), and the constraints pin a pathspec that does
not call the pattern class Airflow builds for ``plugins/.airflowignore`` deprecated.
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import shutil
import sys
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

ROOT = Path(__file__).resolve().parents[3]


def _env(work: Path) -> None:
    os.environ.update({
        "AIRFLOW_HOME": str(work / "airflow-home"),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "AIRFLOW__CORE__DAGS_FOLDER": str(ROOT / "dags"),
        "AIRFLOW__CORE__PLUGINS_FOLDER": str(ROOT / "plugins"),
        "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"sqlite:///{work / 'airflow-home' / 'airflow.db'}",
        "AIRFLOW__LOGGING__LOGGING_LEVEL": "WARNING",
        "BACKUP_DR_POLICY": str(ROOT / "include" / "policy.yaml"),
        "BACKUP_DR_LOCAL_PATH": str(work / "backups"),
        "BACKUP_DR_APP_DIR": str(work / "app"),
        "BACKUP_DR_S3_BUCKET": "korea-public-data-backups",
        "BACKUP_DR_GCS_BUCKET": "korea-public-data-backups",
        "BACKUP_DR_RETRY_DELAY": "2s",
        "BACKUP_DR_MAX_RETRY_DELAY": "4s",
    })
    (work / "airflow-home").mkdir(parents=True, exist_ok=True)


def _conn(conn_id: str, **fields) -> None:
    os.environ[f"AIRFLOW_CONN_{conn_id.upper()}"] = json.dumps(fields)


def _say(msg: str) -> None:
    sys.stdout.write(msg + "\n")
    sys.stdout.flush()


def start_services(work: Path):
    from backup_dr.devstack import sample_data
    from backup_dr.devstack.app_files import make_app_dir
    from backup_dr.devstack.servers import GcsEmulator, HttpSink, MongoServer, MotoServer, RedisServer, SmtpSink

    services = {}
    services["mongo"] = MongoServer(work / "mongo").start()
    services["scratch"] = MongoServer(work / "mongo-scratch").start()
    services["redis"] = RedisServer(work / "redis", password="demo-redis-secret").start()
    services["s3"] = MotoServer(work / "moto").start()
    services["gcs"] = GcsEmulator(work / "gcs").start()
    services["smtp"] = SmtpSink().start()
    services["hooks"] = HttpSink().start()
    m, s, r = services["mongo"], services["scratch"], services["redis"]
    _conn("mongo_korea_public_data", conn_type="mongo", host="127.0.0.1", port=m.port, extra={"directConnection": True})
    _conn("mongo_scratch", conn_type="mongo", host="127.0.0.1", port=s.port, extra={"directConnection": True})
    _conn("redis_cache", conn_type="redis", host="127.0.0.1", port=r.port, password=r.password)
    _conn("backup_s3", conn_type="aws", login="testing", password="testing",
          extra={"endpoint_url": services["s3"].endpoint_url, "region_name": "us-east-1"})
    os.environ["STORAGE_EMULATOR_HOST"] = services["gcs"].endpoint_url
    _conn("backup_gcs", conn_type="google_cloud_platform", extra={"is_anonymous": True, "project": "korea-public-data"})
    _conn("smtp_backup_alerts", conn_type="smtp", host="127.0.0.1", port=services["smtp"].port,
          extra={"disable_tls": True, "disable_ssl": True, "from_email": "backup-dr@korea-public-data.example"})
    _conn("slack_backup_alerts", conn_type="slackwebhook", host=f"{services['hooks'].url}/services", password="T0/B0/demo")
    _conn("dr_repoint_webhook", conn_type="http", host=f"{services['hooks'].url}/admin/repoint")
    os.environ["BACKUP_DR_APP_HEALTH_URL"] = f"{services['hooks'].url}/health"
    _start_postgres(services)
    services["s3"].client().create_bucket(Bucket="korea-public-data-backups")
    services["gcs"].client().create_bucket("korea-public-data-backups")
    counts = sample_data.seed_mongo(m.client())
    keys = sample_data.seed_redis(r.client(), 5000)
    make_app_dir(work / "app")
    _say(f"  seeded MongoDB korea_public_data: {', '.join(f'{k} {v}' for k, v in counts.items())}; Redis: {keys} keys")
    return services


def _start_postgres(services: dict) -> None:
    """The policy's ``airflow_db`` (Airflow's metadata DB; the demo's own Airflow runs on SQLite):
    a private PostgreSQL cluster holding a small Airflow-like database, plus the drill scratch."""
    from backup_dr.devstack.postgres import PrivateCluster

    if not PrivateCluster.available():
        _say("  PostgreSQL (initdb) not installed: backup_configuration's airflow_db task will fail (scripts/setup.sh installs it)")
        return
    # its own directory in /tmp: the cluster runs as the postgres user, which must reach it
    pg = services["postgres"] = PrivateCluster(user="airflow", password="demo-pg-secret").start()
    import psycopg2

    for database, sql in (("postgres", "CREATE DATABASE airflow"),
                          ("airflow", "CREATE TABLE dag_run (id serial PRIMARY KEY, dag_id text, state text); INSERT INTO "
                                      "dag_run (dag_id, state) SELECT 'backup_critical_data', 'success' FROM generate_series(1, 100)")):
        db = psycopg2.connect(host="127.0.0.1", port=pg.port, user=pg.user, password=pg.password, dbname=database)
        db.autocommit = True
        try:
            db.cursor().execute(sql)
        finally:
            db.close()
    for conn_id, database in (("airflow_metadata_db", "airflow"), ("pg_scratch", "postgres")):
        _conn(conn_id, conn_type="postgres", host="127.0.0.1", port=pg.port, login=pg.user, password=pg.password, schema=database)


def run_dag(dag_id: str, **kw):
    from airflow.dag_processing.dagbag import DagBag

    bag = DagBag(dag_folder=str(ROOT / "dags"))
    if bag.import_errors:
        raise SystemExit(f"DAG import errors: {bag.import_errors}")
    dag = bag.get_dag(dag_id)
    dag.deadline = None  # Airflow 3.3.2's dag.test() crashes on deadlines (they work under the scheduler)
    t0 = time.monotonic()
    dr = dag.test(**kw)
    states = {ti.task_id: str(ti.state) for ti in dr.get_task_instances()}
    _say(f"  {dag_id}: {dr.state} in {time.monotonic() - t0:.1f}s  ({', '.join(f'{k}={v}' for k, v in sorted(states.items()))})")
    return dr


#: What the CLI needs to find the demo's backups (the policy's ${VARS}); the rest is per service.
_CLI_ENV = ("BACKUP_DR_POLICY", "BACKUP_DR_LOCAL_PATH", "BACKUP_DR_APP_DIR", "BACKUP_DR_S3_BUCKET", "BACKUP_DR_GCS_BUCKET")


def cli_command() -> str:
    """The CLI as it can be pasted anywhere: the venv's ``backup-dr`` (scripts/install-cli.sh),
    else this interpreter (it has the packages) with the package on PYTHONPATH."""
    launcher = ROOT / ".venv" / "bin" / "backup-dr"
    if launcher.is_file():
        return shlex.quote(str(launcher))
    return f"PYTHONPATH={shlex.quote(str(ROOT / 'plugins'))} {shlex.quote(sys.executable)} -m backup_dr"


def cli_hint(env_file: Path, args: str) -> str:
    return f". {shlex.quote(str(env_file.absolute()))} && {cli_command()} {args}"


def write_cli_env(path: Path, *, with_services: bool) -> None:
    """``path``: ``export`` lines for the CLI (0600: with services it holds their connections)."""
    names = [k for k in _CLI_ENV if k in os.environ]
    if with_services:
        names += sorted(k for k in os.environ if k.startswith("AIRFLOW_CONN_") or k in ("STORAGE_EMULATOR_HOST", "BACKUP_DR_APP_HEALTH_URL"))
    note = ("the demo's services are running (--keep): every store and connection is here" if with_services else
            "the demo's services have stopped: only the local store is left (the CLI says S3/GCS are not used)")
    lines = ["# backup-dr demo: the environment of the break-glass CLI for the demo's backups.",
             f"# {note}.", f"# Use it from any shell:  {cli_hint(path, 'list --class critical_data')}"]
    lines += [f"export {k}={shlex.quote(os.environ[k])}" for k in names]
    tmp = path.with_name(path.name + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write("\n".join(lines) + "\n")
    os.replace(tmp, path)


def summary(env_file: Path) -> int:
    from backup_dr.core.catalog import Catalog
    from backup_dr.core.durations import format_duration
    from backup_dr.core.health import load_latest_report
    from backup_dr.core.policy import default_policy_path, load_policy
    from backup_dr.core.stores.factory import open_stores

    policy = load_policy(default_policy_path())
    stores = open_stores(policy.stores.values())
    catalog = Catalog(stores)
    cls = policy.classes["critical_data"]
    _say("\nBackups of critical_data (newest first):")
    ok = True
    for entry in catalog.list("critical_data")[:3]:
        m = entry.manifest()
        _say(f"  {entry.backup_id}  {m.total_size / 1e6:.2f} MB  documents {sum(m.counts.values())}")
        for name in entry.complete_in:
            _say(f"     - {name:5} {stores[name].describe()}/{entry.bid.prefix}")
        for name in cls.stores:
            rec = entry.drill(name)  # the drill record itself (verification() is only what it showed of the bytes)
            if rec and rec.get("restore_seconds") is None:
                ok = False
                _say(f"     drill from {name}: FAILED ({'; '.join(rec.get('problems') or ['no restore time recorded'])})")
            elif rec:
                met = rec["restore_seconds"] <= cls.objective.rto.total_seconds()
                ok &= bool(rec["ok"]) and met
                _say(f"     drill from {name}: {'OK' if rec['ok'] else 'FAILED'}, restored in {rec['restore_seconds']:.2f}s "
                     f"vs RTO {format_duration(cls.objective.rto)} -> {'MET' if met else 'MISSED'}")
    report = load_latest_report(stores["local"]) or {}
    crit = report.get("classes", {}).get("critical_data", {})
    _say(f"\nHealth of critical_data (RPO {format_duration(cls.objective.rpo)}): {crit.get('status', '?').upper()}")
    for reason in report.get("reasons", []):
        if reason.split(": ", 1)[-1].startswith("critical_data/"):
            _say(f"  - {reason}")
    others = [n for n, c in report.get("classes", {}).items() if n != "critical_data" and c.get("status") != "healthy"]
    if others:
        _say(f"  (overall {report.get('status', '?')}: {', '.join(others)} were not backed up in this run)")
    _say(f"\nRestore without Airflow, e.g.:  {cli_hint(env_file, 'list --class critical_data')}")
    return 0 if ok else 1


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m backup_dr.devstack.demo", description=__doc__.split("\n\n")[0])
    parser.add_argument("--workdir", default=str(ROOT / ".demo"), help="where the demo keeps its data (default .demo/)")
    parser.add_argument("--keep", action="store_true", help="leave the services running and print how to use the CLI")
    parser.add_argument("--only-critical", action="store_true", help="back up critical_data only (the other classes are skipped)")
    args = parser.parse_args(argv)
    work = Path(args.workdir)
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    _env(work)
    _say("backup-dr demo: starting local stand-ins (MongoDB wire protocol, Redis, PostgreSQL, S3, GCS, SMTP, webhooks)")
    services = start_services(work)
    env_file = work / "cli.env"
    try:
        from airflow.utils import db

        db.upgradedb()
        now = datetime.now(timezone.utc).replace(microsecond=0)
        _say("running the DAGs with dag.test():")
        classes = ["critical_data"] + ([] if args.only_critical else ["operational_data", "configuration", "application_code"])
        for name in classes:
            conf = {"ref": "HEAD", "image": "registry.example/korea-public-data-api:demo"} if name == "application_code" else None
            run_dag(f"backup_{name}", logical_date=now - timedelta(minutes=5), run_conf=conf)
        run_dag("ops_restore_drill", logical_date=now - timedelta(minutes=2))
        run_dag("ops_backup_health", logical_date=now - timedelta(minutes=1))
        write_cli_env(env_file, with_services=False)
        rc = summary(env_file)
        mails = services["smtp"].messages
        _say(f"alerts captured by the SMTP sink: {len(mails)}" + "".join(f"\n  - {m['Subject']}" for m in mails[:5]))
        if args.keep:
            write_cli_env(env_file, with_services=True)
            _say(f"\nservices kept running; {env_file} now holds their connections too. In another shell:")
            _say(f"  {cli_hint(env_file, 'list')}\nPress Ctrl-C to stop.")
            try:
                while True:
                    time.sleep(3600)
            except KeyboardInterrupt:
                pass
        return rc
    finally:
        for svc in services.values():
            (svc.cleanup if hasattr(svc, "cleanup") else svc.stop)()
        if args.keep and env_file.exists():
            write_cli_env(env_file, with_services=False)  # the services are gone: local store only


if __name__ == "__main__":
    raise SystemExit(main())
