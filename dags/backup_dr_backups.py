"""Airflow DAGs for backups, one per class of include/policy.yaml (``backup_<class>``).

All logic lives in backup_dr.dag_factory; this file only reads the policy (the only I/O
at parse time) and registers what the factory builds. A class the validator rejects
becomes a failing ``backup_<class>`` DAG that alerts, while the other classes still load.
"""

from backup_dr.dag_factory.loader import register_backup_dags

register_backup_dags(globals())
