"""Airflow's metadata DB migrates and connections resolve from AIRFLOW_CONN_* variables."""

from __future__ import annotations


def test_airflow_db_and_env_connections(airflow_db, mongo_server, s3_server):
    from airflow.sdk import BaseHook

    conn = BaseHook.get_connection("mongo_korea_public_data")
    assert conn.conn_type == "mongo" and conn.port == mongo_server.port
    s3 = BaseHook.get_connection("backup_s3")
    assert s3.extra_dejson["endpoint_url"] == s3_server.endpoint_url
    assert (airflow_db / "airflow.db").exists()
