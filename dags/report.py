"""The cross-agency report and the Justice Counts bulk-upload files: monthly, and whenever a
steward triggers it by hand.

Both tasks only read the warehouse but still take the warehouse pool: DuckDB
refuses a read-only open while another process writes, so sharing the one slot
with ingest and build makes it wait instead of failing.
"""

from __future__ import annotations

from airflow.sdk import dag

from dags._common import START_DATE, default_args, run_stage, tags, warehouse_task


@dag(
    dag_id="lead_report",
    description="Write the cross-agency report (HTML and one CSV per table) and the Justice Counts files",
    schedule="@monthly",
    start_date=START_DATE,
    catchup=False,
    max_active_runs=1,
    default_args=default_args(),
    tags=tags("report"),
    doc_md=__doc__,
)
def lead_report():
    @warehouse_task()
    def report() -> dict[str, str]:
        """Returns the written files' paths (the XCom)."""
        from leadhub.pipeline import report as report_stage
        from leadhub.core.settings import Settings

        return run_stage("report", report_stage, Settings.from_env())

    @warehouse_task()
    def justice_counts() -> dict:
        """The Justice Counts bulk-upload files in steward/justice_counts/, per sector, for a
        steward to send; returns their paths and the sectors or metrics left out (the XCom)."""
        from leadhub.pipeline import justice_counts as justice_counts_stage
        from leadhub.core.settings import Settings

        return run_stage("justice_counts", justice_counts_stage, Settings.from_env())

    report()
    justice_counts()


lead_report()
