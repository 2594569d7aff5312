"""An encrypted class's oplog slices are ciphertext too, and point-in-time restores still work."""

from __future__ import annotations

import base64
import dataclasses
import json
import os
import time
from datetime import datetime, timezone

from backup_dr.core.connections import conn_from_env
from backup_dr.core.crypto.keys import set_connection_resolver
from backup_dr.core.pitr import restore_to_time
from backup_dr.core.policy_model import Encryption
from backup_dr.core.stores.local import LocalStore
from tests.integration.pitr.pitr_support import RAW, Clock, full_backup, policy_for, take_slice


def test_slices_of_an_encrypted_class_are_ciphertext_and_restore(pitr_client, dbname, tmp_path, monkeypatch):
    key = os.urandom(32)
    monkeypatch.setenv("AIRFLOW_CONN_PITR_KEY", json.dumps({"conn_type": "generic", "password": base64.b64encode(key).decode()}))
    previous = set_connection_resolver(conn_from_env)
    try:
        policy = policy_for(dbname)
        cls = dataclasses.replace(policy.classes["critical_data"], encryption=Encryption("pitr_key"))
        policy = dataclasses.replace(policy, classes={**policy.classes, "critical_data": cls})
        store = LocalStore(tmp_path / "store")
        clock = Clock()
        db = pitr_client[dbname]
        db.announcements.insert_many([{"_id": i, "title": f"공고 {i}", "secret_marker": "PLAINTEXT-MARKER"} for i in range(50)])
        db.create_collection("businesses")
        db.create_collection("contents")
        full_backup(pitr_client, policy, store, clock.next())
        db.announcements.update_many({}, {"$set": {"status": "마감", "note": "PLAINTEXT-MARKER-2"}})
        time.sleep(1.1)
        at = datetime.now(timezone.utc).replace(microsecond=0)
        expected = {d["_id"]: d.raw for d in db.get_collection("announcements", codec_options=RAW).find()}
        time.sleep(1.1)
        db.announcements.delete_many({})
        result = take_slice(pitr_client, policy, store, clock.next())
        sl = result.manifest
        assert sl is not None and sl.files[0].encryption, "the slice must be encrypted"
        raw = store.path(sl.id.key(sl.files[0].name)).read_bytes()
        assert b"PLAINTEXT-MARKER" not in raw and b"announcements" not in raw
        restore_to_time(pitr_client, {"local": store}, policy, "mongodb", at, workdir=tmp_path / "work",
                        safety_dir=tmp_path / "safety", target_db=f"{dbname}_r")
        got = {d["_id"]: d.raw for d in pitr_client[f"{dbname}_r"].get_collection("announcements", codec_options=RAW).find()}
        assert got == expected
    finally:
        set_connection_resolver(previous)
