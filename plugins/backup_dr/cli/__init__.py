"""The break-glass command line. Imports only the core: no Airflow needed."""
