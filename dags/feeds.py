"""One intake DAG per agency, generated from the extract contracts.

Adding an agency means adding its contract YAML; its ``<agency>_feed`` DAG
appears on the next parse. Each run takes every complete file in the agency's
inbox through ``leadhub.pipeline.ingest``. A quarantined file does not fail the
ingest (the good files still load); ``check_quarantine`` fails instead, so the
run shows red with a message naming agency, file and rule.
"""

from __future__ import annotations

from airflow.sdk import DAG, dag, task
from airflow.sdk.exceptions import AirflowFailException

from connectors.contracts import agencies
from dags._common import (
    START_DATE, WAREHOUSE_POOL, default_args, quarantine_message, run_stage,
    staging_alias, staging_asset, summarize, tags,
)


def feed_dag(agency: str) -> DAG:
    asset, alias = staging_asset(agency), staging_alias(agency)

    @dag(
        dag_id=f"{agency}_feed",
        description=f"Intake of {agency} extracts from data/inbox/{agency}",
        schedule="*/15 * * * *",
        start_date=START_DATE,
        catchup=False,
        max_active_runs=1,
        default_args=default_args(agency),
        tags=tags(agency),
        doc_md=__doc__,
    )
    def feed():
        @task(pool=WAREHOUSE_POOL, outlets=[alias])
        def ingest(*, outlet_events=None) -> list[dict]:
            """Returns per-file summaries (the XCom); records an asset event only if a file was accepted."""
            from leadhub.pipeline import ingest as ingest_stage
            from leadhub.settings import Settings

            summaries = summarize(run_stage(f"{agency} ingest", ingest_stage, Settings.from_env(), agency))
            accepted = [s for s in summaries if s["status"] == "accepted"]
            if accepted:
                outlet_events[alias].add(asset, extra={"files_accepted": len(accepted)})
            return summaries

        @task
        def check_quarantine(summaries: list[dict]) -> None:
            """Fails (without retries: redelivery is the fix) when any file was quarantined."""
            message = quarantine_message(agency, summaries)
            if message:
                raise AirflowFailException(message)

        check_quarantine(ingest())

    return feed()


for _agency in agencies():
    globals()[f"{_agency}_feed"] = feed_dag(_agency)
