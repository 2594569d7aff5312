"""The README's "database server lost" runbook, run exactly as the README writes it.

The fenced block after the runbook heading is taken from README.md itself: its ``export`` lines
say which variables the commands need (the test gives them values pointing at its own
servers; the README's values are placeholders), and every ``backup-dr ...`` line is run as
written by ``bash`` through the venv's ``backup-dr`` launcher, the only edit being the
placeholder id replaced by the newest critical_data id the ``list`` line printed. The stores
hold what production holds with the shipped policy: a critical_data and an operational_data
backup of the same database (the case that made ``restore mongo latest`` ambiguous).
"""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

from backup_dr.devstack import sample_data
from backup_dr.devstack.servers import MongoServer

from cli_support import blocker_dir, mongo_conn_json, snapshot_db

ROOT = Path(__file__).resolve().parents[2]
ALL = ["announcements", "businesses", "contents", "statistics"]


def runbook() -> list[str]:
    text = (ROOT / "README.md").read_text()
    after = text.split("**Runbook — database server lost, Airflow down too**", 1)[1]
    block = re.search(r"```bash\n(.*?)```", after, re.S).group(1)
    return [line for line in block.splitlines() if line.strip() and not line.startswith("#")]


def test_the_readme_runbook_is_what_the_cli_accepts():
    lines = runbook()
    exported = [re.match(r"export (\w+)=", line).group(1) for line in lines if line.startswith("export ")]
    commands = [line for line in lines if not line.startswith("export ")]
    assert exported[0] == "BACKUP_DR_POLICY" and "AIRFLOW_CONN_MONGO_NEW" in exported
    assert all(c.startswith("backup-dr ") for c in commands), commands
    assert commands[-2:] == ["backup-dr restore mongo latest --class critical_data --to mongo_new",
                             "backup-dr restore mongo latest --class operational_data --to mongo_new"]
    assert not [c for c in commands if "://" in c]  # connection ids, never URIs


def test_the_readme_runbook_recovers_the_whole_database(fresh_history, tmp_path):
    h = fresh_history()
    subprocess.run(["bash", str(ROOT / "scripts" / "install-cli.sh")], check=True, capture_output=True, timeout=60)
    with MongoServer(tmp_path / "prod") as prod, prod.client() as client:
        sample_data.seed_mongo(client, {"announcements": 600, "businesses": 400, "contents": 150, "statistics": 300})
        critical = h.mongo(client, cls_name="critical_data", key="critical")
        h.mongo(client, cls_name="operational_data", key="operational")
        before = snapshot_db(client, "korea_public_data", ALL)
    lines = runbook()
    exported = {re.match(r"export (\w+)=", line).group(1) for line in lines if line.startswith("export ")}
    with MongoServer(tmp_path / "replacement") as new:
        values = {**h.env(), "AIRFLOW_CONN_MONGO_NEW": mongo_conn_json(new)}
        env = {"PATH": f"{ROOT / '.venv' / 'bin'}:/usr/bin:/bin", "HOME": str(tmp_path),
               "PYTHONPATH": str(blocker_dir(h.root)), "BACKUP_DR_TEST_AIRFLOW_MARK": values["BACKUP_DR_TEST_AIRFLOW_MARK"],
               "STORAGE_EMULATOR_HOST": values["STORAGE_EMULATOR_HOST"], "BACKUP_DR_S3_BUCKET": values["BACKUP_DR_S3_BUCKET"],
               "BACKUP_DR_GCS_BUCKET": values["BACKUP_DR_GCS_BUCKET"], "BACKUP_DR_LOCAL_PATH": values["BACKUP_DR_LOCAL_PATH"],
               **{k: values[k] for k in exported}}
        listed = None
        for line in lines:
            if line.startswith("export "):
                continue
            if "<" in line:  # the one placeholder: the id the listing showed
                line = re.sub(r"<[^>]+>", listed, line)
            out = subprocess.run(["bash", "-c", line], capture_output=True, text=True, env=env, cwd=tmp_path, timeout=300)
            assert out.returncode == 0, f"{line}\n{out.stdout}\n{out.stderr[-3000:]}"
            if " list " in line:
                ids = re.findall(r"critical_data\.mongodb\.full\.\d{8}T\d{6}Z", out.stdout)
                assert ids and "operational_data.mongodb.full." in out.stdout, out.stdout
                listed = ids[0]
                assert listed == critical.backup_id
        with new.client() as client:
            after = snapshot_db(client, "korea_public_data", ALL)
            assert sorted(client["korea_public_data"].list_collection_names()) == ALL
    for name in ALL:
        assert after[name]["count"] == before[name]["count"], name
        assert after[name]["docs"] == before[name]["docs"], f"{name}: documents differ"
        assert after[name]["indexes"] == before[name]["indexes"], f"{name}: indexes differ"
