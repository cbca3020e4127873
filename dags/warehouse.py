"""Rebuild the cross-agency tables whenever any agency's staging data changes.

Scheduled on the feeds' staging assets with ``AssetAny``: a plain list would
wait until every agency had delivered. Feeds record an event only when they
accepted a file, so idle quarter-hours trigger nothing; events the scheduler
sees together start one build, and max_active_runs=1 keeps builds in series.
"""

from __future__ import annotations

from airflow.sdk import AssetAny, dag

from leadhub.core.contracts import agencies
from dags._common import START_DATE, default_args, run_stage, staging_asset, tags, warehouse_task


@dag(
    dag_id="warehouse_build",
    description="Link people across agencies and rebuild core tables and marts",
    schedule=AssetAny(*(staging_asset(a) for a in agencies())),
    start_date=START_DATE,
    catchup=False,
    max_active_runs=1,
    default_args=default_args(),
    tags=tags("warehouse"),
    doc_md=__doc__,
)
def warehouse_build():
    @warehouse_task()
    def build() -> dict[str, int]:
        """Returns row counts per table (the XCom)."""
        from leadhub.pipeline import build as build_stage
        from leadhub.core.settings import Settings

        return run_stage("warehouse build", build_stage, Settings.from_env())

    build()


warehouse_build()
