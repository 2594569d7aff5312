"""backup_critical_data end to end with dag.test() against the real stack."""

from __future__ import annotations

from datetime import datetime, timezone

from tests.dags.conftest import run_dag


def test_critical_data_backs_up_to_three_verified_stores(stack, mongo_client):
    from backup_dr.core.catalog import Catalog
    from backup_dr.core.policy import default_policy_path, load_policy
    from backup_dr.core.stores.factory import open_stores
    from backup_dr.core.verify import verify_copy

    when = datetime(2026, 11, 26, 4, 0, tzinfo=timezone.utc)
    dr, states = run_dag("backup_critical_data", logical_date=when)
    assert str(dr.state) == "success", states
    assert set(states.values()) == {"success"}, states
    # the mapped replicate tasks are labelled by store in the UI (map_index_template), not [0], [1]
    labels = {ti.map_index: ti.rendered_map_index for ti in dr.get_task_instances() if ti.task_id == "replicate_mongodb"}
    assert labels == {0: "s3", 1: "gcs"}, labels
    policy = load_policy(default_policy_path())
    stores = open_stores(policy.stores[n] for n in ("local", "s3", "gcs"))
    entry = Catalog(stores).newest("critical_data", "mongodb")
    assert entry is not None and sorted(entry.complete_in) == ["gcs", "local", "s3"]
    manifest = entry.manifest()
    db = mongo_client["korea_public_data"]
    assert manifest.counts == {c: db[c].count_documents({}) for c in ("announcements", "businesses", "contents")}
    for name, store in stores.items():
        result = verify_copy(store, manifest)
        assert result["ok"], (name, result["problems"])
