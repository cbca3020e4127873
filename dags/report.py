"""The cross-agency report: monthly, and whenever a steward triggers it by hand.

``report`` only reads the warehouse but still takes the warehouse pool: DuckDB
refuses a read-only open while another process writes, so sharing the one slot
with ingest and build makes it wait instead of failing.
"""

from __future__ import annotations

from airflow.sdk import dag

from dags._common import START_DATE, default_args, run_stage, tags, warehouse_task


@dag(
    dag_id="lead_report",
    description="Write the cross-agency report (HTML and one CSV per table)",
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

    report()


lead_report()
