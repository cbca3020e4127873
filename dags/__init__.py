"""LEAD Hub's scheduled workflows: thin wiring of ``leadhub.pipeline`` stages.

A regular package so the shared defaults import as ``dags._common`` both here
and in the deployed image, and so ``leadhub.airflow_local`` can find this folder.
"""
