"""A backup history for the catalog page, made the way the DAGs make it, and Airflow's API app.

``catalog_history`` (session): real backups written through ``ArtifactWriter`` into a
local store and replicated (verified, manifest last) to the moto S3 and the GCS emulator,
verification and drill records written with ``record_verification``, and a health report
from ``check_health`` saved with ``save_report``. Backup times are set relative to the
moment it is built, far enough from every colour threshold that a slow test run does not
change a colour. The scenario, per class/source (RPO in brackets):

* critical_data/mongodb [4h]: 6 full backups, newest 1h old, newest two in all 3 stores;
  drill 42.5s of a 30m RTO (green); PITR window in the report (green).
* operational_data/mongodb [24h]: newest 20h old (amber); drill 6000s of 2h RTO (amber).
* operational_data/redis_cache [24h]: newest 30h old (red), local only; last drill FAILED,
  its problem text quotes a URI with a password (must be scrubbed).
* operational_data/app_logs: no backup at all (red).
* operational_data/app_uploads [24h]: 2h old, but its verification FAILED (red badge).
* configuration/app_config and mongodb_schema [7d]: 1 day old (green).
* application_code/app_repository: on deploy, one bundle 3 days old (green, no age limit).
"""

from __future__ import annotations

import socket
import threading
import time
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest

from backup_dr.core.artifacts.layout import BackupId
from backup_dr.core.artifacts.manifest import Manifest, iso
from backup_dr.core.artifacts.writer import ArtifactWriter
from backup_dr.core.health import check_health, save_report
from backup_dr.core.policy import load_policy
from backup_dr.core.policy_model import Policy
from backup_dr.core.replicate import replicate
from backup_dr.core.stores.factory import open_store
from backup_dr.core.stores.local import LocalStore
from backup_dr.core.verify import record_verification

ROOT = Path(__file__).resolve().parents[2]
LEAKED_SECRET = "hunter2-redis-pass"  # appears in a drill record's problem text; must never reach the page


@dataclass
class History:
    policy: Policy
    built_at: datetime
    env: dict[str, str]
    stores: dict
    manifests: dict[str, list[Manifest]]  # "class/source" -> newest first

    def newest(self, key: str) -> Manifest:
        return self.manifests[key][0]


def _backup(local: LocalStore, policy: Policy, cls: str, source: str, kind: str, stamp: datetime, size: int) -> Manifest:
    src = policy.sources[source]
    writer = ArtifactWriter(local, BackupId.new(cls, source, kind, stamp), source_type=src.type,
                            retention=policy.classes[cls].retention)
    writer.begin()
    with writer.open_file("data.bin", format="test") as out:
        out.write((f"{cls}/{source}@{stamp:%Y%m%dT%H%M%S}|".encode() * (size // 20 + 1))[:size])
    with writer.open_file("meta.json", format="json") as out:
        out.write(b'{"test": true}\n')
    return writer.commit(consistent_point={"end": iso(stamp)}, counts={"docs": size // 100})


@pytest.fixture(scope="session")
def catalog_history(tmp_path_factory, s3_server, gcs_server) -> History:
    root = tmp_path_factory.mktemp("ui-catalog")
    s3_bucket, gcs_bucket = "ui-catalog-s3", "ui-catalog-gcs"
    s3_server.client().create_bucket(Bucket=s3_bucket)
    gcs_server.client().create_bucket(gcs_bucket)
    env = {"BACKUP_DR_LOCAL_PATH": str(root / "backups"), "BACKUP_DR_S3_BUCKET": s3_bucket,
           "BACKUP_DR_GCS_BUCKET": gcs_bucket, "BACKUP_DR_APP_DIR": str(root / "app")}
    with pytest.MonkeyPatch.context() as mp:
        for k, v in env.items():
            mp.setenv(k, v)
        policy = load_policy(ROOT / "include" / "policy.yaml")
    stores = {name: open_store(spec) for name, spec in policy.stores.items()}
    local = stores["local"]
    now = datetime.now(timezone.utc).replace(microsecond=0)
    h = timedelta(hours=1)
    manifests: dict[str, list[Manifest]] = {}

    def series(cls, source, kind, ages, *, copies_to=(), copies=1, base_size=4000):
        made = [_backup(local, policy, cls, source, kind, now - age, base_size + 700 * i) for i, age in enumerate(ages)]
        for m in made[:copies]:
            for name in copies_to:
                replicate(local, m, stores[name])
        manifests[f"{cls}/{source}"] = made  # newest first (ages ascending)
        return made

    crit = series("critical_data", "mongodb", "full", [h, 5 * h, 9 * h, 13 * h, 17 * h, 21 * h],
                  copies_to=("s3", "gcs"), copies=2, base_size=20_000)
    record_verification(local, crit[0], {"kind": "verify", "ok": True})
    record_verification(stores["s3"], crit[0], {"kind": "drill", "ok": True, "restore_seconds": 42.5,
                                                "rto_seconds": 1800, "problems": []})
    record_verification(local, crit[0], {"kind": "verify", "ok": True})  # a later plain verify must not hide the drill

    ops_mongo = series("operational_data", "mongodb", "full", [20 * h, 44 * h], copies_to=("s3",))
    record_verification(stores["s3"], ops_mongo[0], {"kind": "drill", "ok": True, "restore_seconds": 6000,
                                                     "rto_seconds": 7200, "problems": []})
    redis = series("operational_data", "redis_cache", "rdb", [30 * h, 54 * h])
    record_verification(local, redis[0], {
        "kind": "drill", "ok": False, "restore_seconds": None, "rto_seconds": 7200,
        "problems": [f"scratch restore failed: cannot connect to redis://default:{LEAKED_SECRET}@10.0.0.7:6379/0"]})
    uploads = series("operational_data", "app_uploads", "files", [2 * h], copies_to=("s3",))
    record_verification(local, uploads[0], {"kind": "verify", "ok": False, "problems": ["data.bin: sha256 mismatch"]})

    series("configuration", "app_config", "files", [24 * h, 8 * 24 * h], copies_to=("s3", "gcs"))
    series("configuration", "mongodb", "schema", [25 * h], copies_to=("s3", "gcs"))
    series("configuration", "airflow_db", "full", [26 * h], copies_to=("s3", "gcs"))  # Airflow's metadata DB (PostgreSQL)
    series("application_code", "app_repository", "bundle", [72 * h], copies_to=("s3",))

    report = check_health(policy, stores, now=now)
    report.classes["critical_data"]["sources"]["mongodb"]["pitr"] = {  # as the PITR module will add it
        "from": iso(now - 21 * h), "to": iso(now - timedelta(minutes=5)), "status": "ok"}
    save_report(local, report)
    return History(policy=policy, built_at=now, env=env, stores=stores, manifests=manifests)


@pytest.fixture(scope="module")
def catalog_env(catalog_history):
    """The policy's environment pointing at the history's stores, for code that reads the policy."""
    with pytest.MonkeyPatch.context() as mp:
        for k, v in catalog_history.env.items():
            mp.setenv(k, v)
        yield catalog_history


# ----------------------------------------------------------------------------- airflow


@pytest.fixture(scope="session")
def airflow_api(airflow_db):
    """Airflow's own API server app (``create_app``), which mounts every plugin's FastAPI app."""
    from airflow.api_fastapi.app import create_app

    return create_app(apps="core")


@pytest.fixture(scope="session")
def mint_token(airflow_api):
    """JWTs signed by the API server's auth manager (SimpleAuthManager), as its login would issue."""
    from airflow.api_fastapi.app import get_auth_manager
    from airflow.api_fastapi.auth.managers.simple.user import SimpleAuthManagerUser

    def mint(username: str = "viewer", role: str = "viewer") -> str:
        return get_auth_manager().generate_jwt(SimpleAuthManagerUser(username=username, role=role))

    return mint


def mounted_catalog_app(airflow_api):
    """The catalog FastAPI app that Airflow's API app mounted at /backup-dr (built on first use).

    Looked up on the API app, not through ``import backup_dr_plugin``: Airflow's core and task
    SDK plugin managers each load the plugin file, so that module name may hold another copy.
    """
    from starlette.routing import Mount

    mounts = [r for r in airflow_api.routes if isinstance(r, Mount) and r.path == "/backup-dr"]
    assert len(mounts) == 1, [getattr(r, "path", r) for r in airflow_api.routes]
    return mounts[0].app.app


@pytest.fixture
def catalog_app_cache(airflow_api):
    """The mounted catalog app's cache, emptied so each test reads the stores it set up."""
    cache = mounted_catalog_app(airflow_api).state.catalog_cache
    cache.clear()
    yield cache
    cache.clear()


@pytest.fixture
def client(airflow_api, catalog_env, catalog_app_cache):
    from fastapi.testclient import TestClient

    with TestClient(airflow_api) as c:
        yield c


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextmanager
def serve(app):
    """``app`` served by uvicorn on 127.0.0.1 in a thread of this process (so tokens minted
    here verify there); yields its base URL; stopped on exit."""
    import uvicorn

    port = free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", lifespan="on"))
    thread = threading.Thread(target=server.run, name="ui-test-uvicorn", daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        if time.monotonic() > deadline or not thread.is_alive():
            raise RuntimeError("uvicorn did not start")
        time.sleep(0.05)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=15)


@pytest.fixture(scope="module")
def live_server(airflow_api, catalog_env):
    """Airflow's API app (with the plugin mounted) served by uvicorn on 127.0.0.1."""
    with serve(airflow_api) as url:
        yield url
