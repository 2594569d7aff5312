"""Disaster-recovery scenarios as plain functions, so a scenario runs with Airflow gone.

A scenario is the policy's ordered steps (:mod:`.scenario`); each machine step is one function
``step(run, step) -> dict`` over a :class:`~backup_dr.core.dr.run.DrRun` (the policy, the
scenario, the run's parameters, and how to reach stores and connections). The Airflow
operators build a ``DrRun`` from Airflow Connections and XCom and call one step each; the
break-glass CLI (``python -m backup_dr dr run``) builds one from the environment and calls them
all in order, asking a person (or ``--confirm``) at the human steps.
"""
