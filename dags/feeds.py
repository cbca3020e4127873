"""One intake DAG per agency, generated from the extract contracts.

Adding an agency means adding its contract YAML; its ``<agency>_feed`` DAG
appears on the next parse. A run starts when complete files arrive in the
agency's inbox (the triggerer's ``InboxFilesTrigger`` records an event on
``leadhub://inbox/<agency>``), and every quarter-hour as a fallback, so a file
is taken even if the triggerer was down when it landed. Each run takes every
complete file in the inbox through ``leadhub.pipeline.ingest``. A quarantined
file does not fail the ingest (the good files still load); ``check_quarantine``
fails instead, so the run shows red with a message naming agency, file and rule.
A delivery the volume guard held (it would remove too many current rows) turns
the run red the same way until a steward runs ``leadhub release``.

Re-processing, from "Trigger DAG" with parameters:

* ``file_id``: one ledger entry (see ``ops.file_ledger``). Its archived
  original is decrypted back into the inbox under its original name and the
  intake takes it again as a new ledger entry; the old entry stays.
* ``received_from`` / ``received_to``: every entry received in that period
  (dates, inclusive) whose bytes are not loaded now — typically files
  quarantined before a contract or expectation was corrected.

Bytes that are loaded already are recorded by the intake as a ``duplicate``:
a retry or a re-process never loads a file twice.
"""

from __future__ import annotations

from airflow.sdk import DAG, AssetOrTimeSchedule, CronTriggerTimetable, Param, dag, task
from airflow.sdk.exceptions import AirflowFailException

from leadhub.core.contracts import agencies
from dags._common import (
    START_DATE, default_args, inbox_asset, quarantine_message, run_stage, staging_alias, staging_asset,
    summarize, tags, warehouse_task,
)

FALLBACK_CRON = "*/15 * * * *"

REPROCESS_PARAMS = {
    "file_id": Param(None, type=["null", "string"],
                     description="Re-process this ledger entry (ops.file_ledger.file_id)"),
    "received_from": Param(None, type=["null", "string"], format="date",
                           description="Back-fill: first day (YYYY-MM-DD) of the period to re-process"),
    "received_to": Param(None, type=["null", "string"], format="date",
                         description="Back-fill: last day (YYYY-MM-DD), inclusive; defaults to received_from"),
}


def restore_requested_files(agency: str, params: dict) -> list[dict]:
    """Put the archived originals the run's parameters ask for back into the inbox; [] for ordinary runs."""
    from datetime import date

    from leadhub.core.keys import MasterKey
    from leadhub.maintenance import restore_ledger_entry, restore_period
    from leadhub.core.settings import Settings

    file_id, start, end = params.get("file_id"), params.get("received_from"), params.get("received_to")
    if not (file_id or start or end):
        return []
    settings = Settings.from_env()
    key = MasterKey.load(settings.key_file)
    restored = []
    if file_id:
        restored.append(restore_ledger_entry(settings, key, file_id, agency))
    if start or end:
        first = date.fromisoformat(start or end)
        last = date.fromisoformat(end or start)
        restored += restore_period(settings, key, agency, first, last)
    return restored


def feed_dag(agency: str) -> DAG:
    asset, alias = staging_asset(agency), staging_alias(agency)

    @dag(
        dag_id=f"{agency}_feed",
        description=f"Intake of {agency} extracts from data/inbox/{agency}: on arrival, and every 15 minutes",
        schedule=AssetOrTimeSchedule(timetable=CronTriggerTimetable(FALLBACK_CRON, timezone="UTC"),
                                     assets=inbox_asset(agency)),
        start_date=START_DATE,
        catchup=False,
        max_active_runs=1,
        default_args=default_args(agency),
        params=REPROCESS_PARAMS,
        tags=tags(agency),
        doc_md=__doc__,
    )
    def feed():
        @warehouse_task()
        def restore_requested(*, params=None) -> list[dict]:
            """Re-process parameters only: decrypt archived originals back into the inbox (reads the ledger)."""
            return run_stage(f"{agency} restore", restore_requested_files, agency, dict(params or {}))

        @warehouse_task(outlets=[alias])
        def ingest(*, outlet_events=None) -> list[dict]:
            """Returns per-file summaries (the XCom); records an asset event only if a file was accepted."""
            from leadhub.pipeline import ingest as ingest_stage
            from leadhub.core.settings import Settings

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

        restored = restore_requested()
        summaries = ingest()
        restored >> summaries
        check_quarantine(summaries)

    return feed()


for _agency in agencies():
    globals()[f"{_agency}_feed"] = feed_dag(_agency)
