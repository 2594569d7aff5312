"""Thin Airflow operators over :mod:`backup_dr.core` (resolve connections, call core, small XCom)."""
