"""One scheduled DAG per declared pull source (``connectors/sources/*.yaml``).

Some agencies cannot drop files; the hub pulls from their database view or
SFTP server instead. A pull only writes files into the agency inbox, as a clerk
would, and records an event on the inbox asset when it delivered something, so
the agency's feed DAG takes the files through the one intake at once.

The declarations are read by the same models as ``leadhub pull`` uses
(``connectors.sources``), which need no database driver or paramiko: a
misspelt key, a missing field or an unknown agency is reported as an import
error of this DAG file in the UI, naming the file and the key. A mistake that
needs the extract's contract or the connector fails its DAG's first run with
the reason.
A source with ``enabled: false`` still gets its DAG, paused from creation.
``schedule`` in the declaration sets the DAG's schedule (default hourly).

Back-fill ("Trigger DAG" with parameters): ``backfill_from`` moves the
source's remembered position back (SQL: the high-water mark, to re-pull rows
whose mark is that value or later; SFTP: forget files modified since then)
before pulling. Unchanged rows and files come back byte-identical and are
recorded by the intake as duplicates.
"""

from __future__ import annotations

from airflow.sdk import DAG, Param, dag, task

from dags._common import START_DATE, default_args, inbox_alias, inbox_asset, run_stage, tags


def declarations() -> dict[str, dict]:
    """Source name -> the declaration's scheduling fields; {} when no pull connector is installed."""
    try:
        from connectors.sources import load_sources
    except ImportError:
        return {}
    return {name: {"kind": src.kind, "agency": src.agency, "enabled": src.enabled,
                   "schedule": src.declaration.schedule, "description": src.declaration.description}
            for name, src in load_sources().items()}


def pull_once(name: str, backfill_from: str | None) -> dict:
    """Optionally move the source's position back, then pull it once; returns the pull's summary."""
    from connectors.sources import PullError, load_sources
    from connectors.sources.run import pull_source
    from leadhub.maintenance import reset_pull_source
    from leadhub.core.settings import Settings

    settings = Settings.from_env()
    reset = reset_pull_source(settings, name, backfill_from) if backfill_from else None
    sources = load_sources()
    if name not in sources:
        raise PullError(f"no pull source named {name}")
    result = pull_source(settings, sources[name]).as_dict()
    if result.get("error"):
        raise PullError(result["error"])
    return {**result, "reset": reset}


def pull_dag(name: str, decl: dict) -> DAG:
    agency = decl["agency"]
    alias = inbox_alias(agency)

    @dag(
        dag_id=f"pull_{name}",
        description=f"Pull {decl['kind']} source {name} into the {agency} inbox. {decl['description']}".strip(),
        schedule=decl["schedule"],
        start_date=START_DATE,
        catchup=False,
        max_active_runs=1,
        is_paused_upon_creation=None if decl["enabled"] else True,
        default_args=default_args(agency),
        params={"backfill_from": Param(None, type=["null", "string"],
                                       description="Re-pull from this point: an ISO date or time "
                                                   "(or a whole number for an integer SQL mark)")},
        tags=[*tags(agency), "pull"],
        doc_md=__doc__,
    )
    def pull_source_dag():
        @task(outlets=[alias])
        def pull(*, params=None, outlet_events=None) -> dict:
            """Writes only into the inbox (no warehouse pool); an inbox event starts the feed at once."""
            result = run_stage(f"pull {name}", pull_once, name, (params or {}).get("backfill_from"))
            if result.get("files"):
                outlet_events[alias].add(inbox_asset(agency), extra={"files": len(result["files"])})
            return result

        pull()

    return pull_source_dag()


for _name, _decl in declarations().items():
    globals()[f"pull_{_name}"] = pull_dag(_name, _decl)
