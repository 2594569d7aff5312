"""Build Airflow DAGs from the validated policy (config -> typed model -> tasks -> DAG)."""
