"""The restore's validation sees what it claims to check: the count and the indexes each collection
must have after the restore, from the server's own ``validate`` (no second scan to count)."""

from __future__ import annotations

import pytest

from backup_dr.core.errors import VerificationError
from backup_dr.core.mongo.safe_restore import validate_restore

from mongo_support import uniq
from test_safe_restore import restore, write_archive


def test_validation_catches_a_missing_document_and_a_missing_index(mongo_client, tmp_path, drop_after):
    path = tmp_path / "shop.archive.gz"
    write_archive(path, {"orders": [{"_id": i, "k": i} for i in range(120)], "empty": []},
                  indexes={"orders": [{"v": 2, "key": {"k": 1}, "name": "k_1", "unique": True}]})
    target = uniq("validated")
    drop_after.append(target)
    result = restore(mongo_client, path, tmp_path, target)
    report = result.validation
    assert report["ok"] and report["collections"]["orders"] == {"valid": True, "count": 120, "expected": 120,
                                                                 "indexes": ["_id_", "k_1"]}
    assert report["collections"]["empty"]["count"] == 0
    mongo_client[target].orders.delete_one({"_id": 7})
    mongo_client[target].orders.drop_index("k_1")
    with pytest.raises(VerificationError, match=r"orders has 119 documents, expected 120; orders lacks index\(es\) k_1"):
        validate_restore(mongo_client, result)
