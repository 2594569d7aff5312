"""Pure-Python core: policy, artifacts, stores, engines. No Airflow import anywhere below."""
