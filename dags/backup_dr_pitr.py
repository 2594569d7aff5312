"""Airflow DAG for point-in-time recovery: ``pitr_oplog_archive`` (oplog slices per policy ``pitr`` entry)."""

from backup_dr.dag_factory.loader import register_pitr_dags

register_pitr_dags(globals())
