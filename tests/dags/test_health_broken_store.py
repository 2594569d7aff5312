"""ops_backup_health with a store whose client cannot even be built (issue 14 item 4).

The GCS connection holds a service-account key that is not a key: the provider hook cannot
build a client. The health check used to log that and skip the store, and so could say
HEALTHY with a third of the copies invisible. Now it is a finding: critical, naming the
store and the classes that keep copies there, in the saved report and the alert.
"""

from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone

from tests.dags.conftest import run_dag


def test_a_store_that_cannot_be_opened_is_a_critical_finding(airflow_db, local_store_root, s3_bucket, gcs_server, sinks,
                                                              monkeypatch):
    smtp, slack = sinks
    key = {"type": "service_account", "project_id": "p", "private_key_id": "1", "client_email": "b@p.iam.gserviceaccount.com",
           "private_key": "-----BEGIN PRIVATE KEY-----\nbm90IGEga2V5\n-----END PRIVATE KEY-----\n",
           "token_uri": "https://oauth2.googleapis.com/token"}
    monkeypatch.setenv("AIRFLOW_CONN_BACKUP_GCS", json.dumps(
        {"conn_type": "google_cloud_platform", "extra": {"keyfile_dict": json.dumps(key), "project": "p"}}))
    dr, states = run_dag("ops_backup_health", logical_date=datetime.now(timezone.utc) - timedelta(minutes=3))
    assert states["check_backup_health"] == "success", states
    report = json.loads((local_store_root / "backup-dr-v1" / "_reports" / "health" / "latest.json").read_text())
    assert report["status"] == "critical"
    assert report["stores"]["gcs"]["reachable"] is False and "backup_gcs" in report["stores"]["gcs"]["error"]
    gcs = [r for r in report["reasons"] if "store gcs" in r]
    assert gcs and gcs[0].startswith("critical: store gcs is unreachable from here:"), report["reasons"]
    assert "(needed by configuration, critical_data)" in gcs[0]
    assert report["classes"]["critical_data"]["sources"]["mongodb"]["stores"]["gcs"]["status"] == "critical"
    assert report["stores"]["s3"]["reachable"] is True  # the other stores are still checked
    mail = smtp.wait_for(lambda m: "backup health is CRITICAL" in m["Subject"])
    assert mail and "store gcs is unreachable" in smtp.text(mail[0])
    assert "bm90IGEga2V5" not in json.dumps(report) and "bm90IGEga2V5" not in smtp.text(mail[0])
