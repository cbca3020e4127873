"""The maintenance DAG's retention writes its steward audit entry before it removes anything."""

import pytest


def test_scheduled_retention_is_on_the_audit_trail_and_a_dry_run_is_not(audit_entries):
    from dags import maintenance

    task = maintenance.leadhub_maintenance().get_task("apply_archive_retention").python_callable
    task(params={"dry_run": True, "retention_days": 30})
    assert audit_entries() == []
    task(params={"dry_run": False, "retention_days": 30})
    [entry] = audit_entries()
    assert entry["who"] == "airflow:leadhub_maintenance" and entry["action"] == "retention" and entry["days"] == 30
    assert entry["reason"] == "scheduled retention"
    # The same entry as the CLI's: the counts of what goes (an empty data directory: nothing).
    assert (entry["batches"], entry["rows"], entry["files"]) == (0, 0, 0)


def test_retention_does_not_run_without_who_and_why(settings, audit_entries):
    from leadhub.core.errors import LeadHubError
    from leadhub.maintenance import archive_retention

    with pytest.raises(LeadHubError, match="steward audit log"):
        archive_retention(settings, 30, who="steward-a", reason="  ")
    assert audit_entries() == []
