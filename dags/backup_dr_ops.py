"""Airflow DAGs for operations: ``ops_backup_health`` (RPO / health monitor) and ``ops_restore_drill``."""

from backup_dr.dag_factory.loader import register_ops_dags

register_ops_dags(globals())
