"""Daily housekeeping: feed staleness, snapshot publication and archive retention.

Three independent tasks, so a stale feed (which fails ``check_staleness`` with
a line per agency and extract) does not hold up publication or retention.
All three open the warehouse, so all take the one-slot warehouse pool.

Retention (``leadhub.maintenance.archive_retention``) expires whole batches past
their agency's retention period (its agreement's, else
$LEADHUB_ARCHIVE_RETENTION_DAYS): their rows go from staging and history, core,
marts and the snapshot are rebuilt from what remains, then their archived
originals are deleted.

Parameters ("Trigger DAG" with parameters): ``retention_days`` shortens the
retention period for this run (never lengthens an agreement's); ``dry_run`` lists
what retention would remove (batches, row counts per table, files) without
removing it.
"""

from __future__ import annotations

import functools

from airflow.sdk import Param, dag
from airflow.sdk.exceptions import AirflowFailException

from dags._common import START_DATE, default_args, log, run_stage, tags, warehouse_task


def _staleness() -> list[dict]:
    from leadhub.maintenance import stale_feeds, staleness_message
    from leadhub.core.settings import Settings

    stale = run_stage("staleness check", stale_feeds, Settings.from_env())
    message = staleness_message(stale)
    if message:
        raise AirflowFailException(message)
    return stale


@dag(
    dag_id="leadhub_maintenance",
    description="Staleness check per feed, snapshot publication, archive retention",
    schedule="@daily",
    start_date=START_DATE,
    catchup=False,
    max_active_runs=1,
    default_args=default_args(),
    params={
        "retention_days": Param(None, type=["null", "integer"], minimum=1,
                                description="Keep data at most this many days (default: each agency's "
                                            "agreement, else $LEADHUB_ARCHIVE_RETENTION_DAYS, else 7 years)"),
        "dry_run": Param(False, type="boolean", description="List what retention would remove; remove nothing"),
    },
    tags=tags("maintenance"),
    doc_md=__doc__,
)
def leadhub_maintenance():
    @warehouse_task()
    def check_staleness() -> list[dict]:
        """Fails, naming agency and extract, when a feed has had nothing accepted within its window."""
        return _staleness()

    @warehouse_task()
    def publish_snapshot() -> object:
        """Publishes the analysts' snapshot again, repairing one a failed publication left stale."""
        from leadhub.maintenance import publish_snapshot as publish
        from leadhub.core.settings import Settings

        return run_stage("snapshot publication", publish, Settings.from_env())

    @warehouse_task()
    def apply_archive_retention(*, params=None) -> dict:
        """Expires batches past retention (rows, rebuild, originals); returns what went and why."""
        from leadhub.maintenance import archive_retention, retention_summary
        from leadhub.core.settings import Settings

        params = params or {}
        scheduled = functools.partial(archive_retention, who="airflow:leadhub_maintenance",
                                      reason="scheduled retention")  # on the steward audit trail, as from the CLI
        result = run_stage("retention", scheduled, Settings.from_env(), params.get("retention_days"),
                           None, bool(params.get("dry_run")))
        log.info(retention_summary(result))  # batch ids, file names, dates and counts; no row values
        return result

    check_staleness()
    publish_snapshot()
    apply_archive_retention()


leadhub_maintenance()
