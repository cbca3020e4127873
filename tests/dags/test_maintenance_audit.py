"""The maintenance DAG's retention writes its steward audit entry before it removes anything."""

import json

from leadhub.core import audit


def test_scheduled_retention_is_on_the_audit_trail_and_a_dry_run_is_not(settings):
    from dags import maintenance

    task = maintenance.leadhub_maintenance().get_task("apply_archive_retention").python_callable
    task(params={"dry_run": True, "retention_days": 30})
    assert entries_of(settings) == []
    task(params={"dry_run": False, "retention_days": 30})
    [entry] = entries_of(settings)
    assert entry["who"] == "airflow:leadhub_maintenance" and entry["action"] == "retention" and entry["days"] == 30


def entries_of(settings) -> list[dict]:
    path = audit.audit_path(settings)
    return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []
