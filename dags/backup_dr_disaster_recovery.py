"""Airflow DAGs for disaster recovery: one manually triggered DAG per scenario (``dr_<scenario>``)."""

from backup_dr.dag_factory.loader import register_dr_dags

register_dr_dags(globals())
