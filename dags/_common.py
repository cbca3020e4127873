"""Defaults every LEAD Hub DAG shares, kept in one place so the DAG files stay wiring only.

Parse-time cost matters: the DAG processor re-imports this folder every few
minutes, so nothing here opens the warehouse or imports the pipeline stages
(duckdb, Great Expectations, pandas); the tasks import them when they run.
"""

from __future__ import annotations

import functools
import logging
import re
import sys
from datetime import datetime, timedelta, timezone
from typing import Any, Callable

from airflow.sdk import Asset, AssetAlias, AssetWatcher, ExceptionRetryPolicy, RetryAction, RetryRule, task

from leadhub.core.contracts import ContractError
from leadhub.core.deployment import WAREHOUSE_POOL, WAREHOUSE_QUEUE
from dags.inbox_trigger import InboxFilesTrigger
from leadhub.core.errors import KeyError_, LeadHubError, printable
from leadhub.core.settings import Environment, Settings

OWNER = "leadhub-steward"

# Fixed and in the past so schedules start at once; catchup stays off everywhere.
START_DATE = datetime(2025, 1, 1, tzinfo=timezone.utc)

# What an ingest summary may carry into XCom and logs: names, statuses, counts.
SUMMARY_KEYS = ("file", "extract", "status", "batch_id", "rows", "reason", "warnings", "file_id")

# Messages a steward can act on and that never quote a cell value, so they may
# reach Airflow's logs as they are. Any other exception's message might.
SAFE_ERRORS = (LeadHubError, ContractError, ImportError)

# "<file>[, row N]: rule '<rule>' failed" — the shape of RejectedFile messages.
FILE_RULE = re.compile(r"(?P<file>[^\s:,]+)(?:, row \d+)?: rule '(?P<rule>[^']+)'")

log = logging.getLogger("leadhub.dags")

# Retrying cannot create or fix a key file; fail at once so the steward sees it.
RETRY_POLICY = ExceptionRetryPolicy(rules=[
    RetryRule(exception=KeyError_, action=RetryAction.FAIL,
              reason="the pseudonymization key is missing or unsafe; retrying will not help"),
])


def staging_asset(agency: str) -> Asset:
    """The staged data of one agency; an event on it means new rows were accepted."""
    return Asset(f"leadhub://staging/{agency}")


def inbox_asset(agency: str) -> Asset:
    """Files waiting in one agency's inbox; the triggerer records an event when complete files arrive.

    The watcher polls every $LEADHUB_INBOX_POLL_SECONDS (default 30). The
    directory is resolved here, at parse time, from LEADHUB_DATA_DIR, so the
    DAG processor and the triggerer must see the same data directory (the
    compose file sets it for every Airflow service).
    """
    directory = str(Settings.from_env().inbox(agency))
    trigger = InboxFilesTrigger(directory=directory, agency=agency, poll_seconds=inbox_poll_seconds())
    return Asset(f"leadhub://inbox/{agency}", watchers=[AssetWatcher(name=f"{agency}_inbox", trigger=trigger)])


def inbox_alias(agency: str) -> AssetAlias:
    """Pull tasks emit through an alias so an inbox event is recorded only when files were delivered."""
    return AssetAlias(f"leadhub_inbox_{agency}")


def inbox_poll_seconds() -> float:
    """How often the triggerer lists each inbox for newly arrived files (``LEADHUB_INBOX_POLL_SECONDS``)."""
    return Environment.read().LEADHUB_INBOX_POLL_SECONDS


def staging_alias(agency: str) -> AssetAlias:
    """Feed tasks emit through an alias so an event is recorded only when a file was accepted."""
    return AssetAlias(f"leadhub_staging_{agency}")


def default_args(agency: str | None = None) -> dict[str, Any]:
    """Task defaults: two retries for transient faults (a locked file, a busy disk, a lost worker).

    The first retry waits $LEADHUB_RETRY_DELAY_SECONDS (default 60; Airflow adds up to as
    much again). Backoff is the 3.x multiplier (2.0 doubles each wait), not a bool.
    """
    return {
        "owner": OWNER,
        "retries": 2,
        "retry_delay": timedelta(seconds=Environment.read().LEADHUB_RETRY_DELAY_SECONDS),
        "retry_exponential_backoff": 2.0,
        "max_retry_delay": timedelta(minutes=10),
        "retry_policy": RETRY_POLICY,
        "on_failure_callback": functools.partial(log_failure, agency),
    }


def warehouse_task(**kwargs: Any) -> Callable:
    """``@task`` for a task that opens the warehouse: its queue and its pool say so.

    DuckDB lets one process write, and a read-only open fails while a writer holds
    the file. Every task that opens the warehouse (ingest and build write, report
    reads) takes the one slot of the warehouse pool (created by docker-compose's
    airflow-init and by leadhub.airflow_local), so they never overlap, and goes to
    the warehouse queue, which only workers on the host holding the warehouse file
    serve (leadhub.core.deployment). Executors without queues (LocalExecutor,
    ``dag.test()``) ignore the queue.
    """
    return task(pool=WAREHOUSE_POOL, queue=WAREHOUSE_QUEUE, **kwargs)


def tags(scope: str) -> list[str]:
    return ["leadhub", scope]


def run_stage(what: str, stage: Callable[..., Any], *args: Any) -> Any:
    """Call a pipeline stage and keep source values out of Airflow's logs.

    Stage errors of the hub's own types are written to be value-free and pass
    through. Anything else (a database or parser error) may quote a cell, so
    only its type reaches Airflow; the steward reruns the stage with the
    leadhub CLI on the hub host to read the full message.
    """
    try:
        return stage(*args)
    except SAFE_ERRORS:
        raise
    except Exception as e:
        raise LeadHubError(
            f"{what} failed with {type(e).__name__}; its message is withheld from Airflow "
            "because it may quote source data — rerun the stage with the leadhub CLI to read it"
        ) from None
    finally:
        stop_helper_processes()


def stop_helper_processes() -> None:
    """Stop the processes a stage keeps for later calls (intake's validation process).

    An Airflow task ends with ``os._exit``, which skips the interpreter shutdown
    that would stop them: they would outlive the task, holding its log sockets
    (the worker waits a minute for them before it takes the next task) and memory.
    Only a stage that ran in this process can have started one, so nothing is
    imported for the others.
    """
    validate = sys.modules.get("expectations.validate")
    if validate is not None:
        validate.stop_validation_worker()


def summarize(summaries: list[dict]) -> list[dict]:
    """Keep only the summary fields known to be identifier-free."""
    return [{k: s.get(k) for k in SUMMARY_KEYS} for s in summaries]


def quarantine_message(agency: str, summaries: list[dict]) -> str | None:
    """One steward-readable message naming every quarantined or held file and its rule, or None.

    Names are escaped (``printable``): a file name cannot add a line to the task's message.
    """
    found: dict[str, list[str]] = {"quarantined": [], "held": []}
    for s in summaries:
        if s.get("status") not in found:
            continue
        file = printable(s.get("file") or "(unnamed file)")
        reason = printable(s.get("reason") or "no reason recorded")
        found[s["status"]].append(reason if reason.startswith(file) else f"{file}: {reason}")
    lines = []
    if found["quarantined"]:
        lines.append(f"{agency}: {len(found['quarantined'])} file(s) quarantined; fix and redeliver, "
                     "the other files were loaded")
        lines += [f"  {line}" for line in found["quarantined"]]
    if found["held"]:
        lines.append(f"{agency}: {len(found['held'])} file(s) held: each would remove too many current rows; "
                     "a steward checks with the agency and runs 'leadhub release FILE_ID --reason ...'")
        lines += [f"  {line}" for line in found["held"]]
    return "\n".join(lines) or None


def log_failure(agency: str | None, context: dict) -> None:
    """Log one line per failed file and rule so a steward can grep the task log."""
    ti = context.get("ti")
    where = f"{getattr(ti, 'dag_id', '?')}.{getattr(ti, 'task_id', '?')}"
    message = str(context.get("exception") or "no exception recorded")
    details = [f"agency={agency or 'all'} file={file} rule={rule}" for file, rule in FILE_RULE.findall(message)]
    for detail in details or [f"agency={agency or 'all'} reason={message.splitlines()[0]}"]:
        log.error("LEAD Hub task %s failed: %s", where, detail, extra={"leadhub_reason": detail})
