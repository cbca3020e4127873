"""The DAG folder parses cleanly, as the DAG processor sees it, and keeps the team's conventions.

Airflow reads its configuration when first imported, so the folder is parsed in
a child process with a throwaway AIRFLOW_HOME; that child also shows which
modules parsing pulls in.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from leadhub.core.contracts import agencies
from leadhub.airflow_local import dags_folder

HEAVY_MODULES = ("duckdb", "great_expectations", "pandas", "pyarrow", "numpy", "scipy", "matplotlib", "paramiko",
                 "cryptography.hazmat.primitives.ciphers")

PARSE_SCRIPT = r"""
import json, sys, time
from airflow.dag_processing.dagbag import DagBag
from airflow.serialization.serialized_objects import DagSerialization

heavy = sys.argv[2].split(",")
before = set(sys.modules)
started = time.perf_counter()
bag = DagBag(dag_folder=sys.argv[1])
seconds = time.perf_counter() - started
loaded_by_parse = sorted(m for m in heavy if m in sys.modules and m not in before)

def assets(cond):
    return sorted(a.uri for a in getattr(cond, "objects", None) or [cond])

def watchers(cond):
    return {a.uri: [{"name": w.name, "trigger": w.trigger.serialize()} for w in a.watchers]
            for a in getattr(cond, "objects", None) or [cond]}

def schedule(dag):
    if isinstance(dag.schedule, str):
        return {"kind": "cron", "value": dag.schedule}
    cond = dag.schedule
    if type(cond).__name__ == "AssetOrTimeSchedule":
        return {"kind": "AssetOrTimeSchedule", "cron": cond.timetable.expression,
                "value": assets(cond.asset_condition), "watchers": watchers(cond.asset_condition)}
    return {"kind": type(cond).__name__, "value": assets(cond)}

def serializes(dag):
    try:
        DagSerialization.to_dict(dag)
        return ""
    except Exception as e:
        return f"{type(e).__name__}: {e}"

dags = {}
for dag in bag.dags.values():
    dags[dag.dag_id] = {
        "tags": sorted(dag.tags),
        "schedule": schedule(dag),
        "catchup": dag.catchup,
        "max_active_runs": dag.max_active_runs,
        "owner": dag.owner,
        "params": sorted(dag.params),
        "serialize_error": serializes(dag),
        "tasks": {t.task_id: {
            "owner": t.owner,
            "retries": t.retries,
            "retry_delay": t.retry_delay.total_seconds(),
            "retry_exponential_backoff": t.retry_exponential_backoff,
            "pool": t.pool,
            "queue": t.queue,
            "outlets": [type(o).__name__ + ":" + o.name for o in t.outlets],
            "upstream": sorted(t.upstream_task_ids),
            "on_failure_callback": bool(t.on_failure_callback),
            "retry_policy": type(t.retry_policy).__name__,
        } for t in dag.tasks},
    }

from dags._common import RETRY_POLICY
from leadhub.core.errors import KeyError_
policy = {
    "missing_key": RETRY_POLICY.evaluate(KeyError_("no key"), 1, 3).action.value,
    "disk_error": RETRY_POLICY.evaluate(OSError("disk busy"), 1, 3).action.value,
}
print(json.dumps({"import_errors": bag.import_errors, "seconds": seconds, "heavy": loaded_by_parse,
                  "dags": dags, "policy": policy}))
"""


@pytest.fixture(scope="module")
def parsed(tmp_path_factory) -> dict:
    home = tmp_path_factory.mktemp("airflow_home")
    env = {k: v for k, v in os.environ.items() if not k.startswith("AIRFLOW")}
    env.update(AIRFLOW_HOME=str(home), AIRFLOW__CORE__LOAD_EXAMPLES="False",
               AIRFLOW__CORE__DAGS_FOLDER=str(dags_folder()),
               AIRFLOW__DATABASE__SQL_ALCHEMY_CONN=f"sqlite:///{home / 'airflow.db'}")
    done = subprocess.run([sys.executable, "-c", PARSE_SCRIPT, str(dags_folder()), ",".join(HEAVY_MODULES)],
                          env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


def feed_ids() -> list[str]:
    return [f"{a}_feed" for a in agencies()]


def test_folder_imports_without_errors(parsed):
    assert parsed["import_errors"] == {}


def pull_ids() -> list[str]:
    """One pull DAG per declaration file; none while no pull connector is installed."""
    try:
        from connectors.sources import SOURCES_DIR
    except ImportError:
        return []
    return [f"pull_{p.stem}" for p in sorted(Path(SOURCES_DIR).glob("*.yaml"))]


def test_the_exact_set_of_dags(parsed):
    assert set(agencies()) == {"police", "prosecutor", "jail", "treatment"}
    assert set(parsed["dags"]) == {"police_feed", "prosecutor_feed", "jail_feed", "treatment_feed",
                                   "warehouse_build", "lead_report", "leadhub_maintenance", *pull_ids()}


def test_every_dag_serializes_as_the_dag_processor_stores_it(parsed):
    assert {d: info["serialize_error"] for d, info in parsed["dags"].items() if info["serialize_error"]} == {}


def test_every_task_has_owner_retries_backoff_and_failure_logging(parsed):
    for dag_id, info in parsed["dags"].items():
        for task_id, t in info["tasks"].items():
            where = f"{dag_id}.{task_id}"
            assert t["owner"] == "leadhub-steward", where
            assert t["retries"] >= 2, where
            assert t["retry_delay"] == 60, where
            assert t["retry_exponential_backoff"] > 1, where  # a float multiplier in Airflow 3
            assert t["on_failure_callback"], where
            assert t["retry_policy"] == "ExceptionRetryPolicy", where


def test_tags_name_the_hub_and_the_scope(parsed):
    for agency in agencies():
        assert parsed["dags"][f"{agency}_feed"]["tags"] == sorted(["leadhub", agency])
    assert parsed["dags"]["warehouse_build"]["tags"] == ["leadhub", "warehouse"]
    assert parsed["dags"]["lead_report"]["tags"] == ["leadhub", "report"]
    assert parsed["dags"]["leadhub_maintenance"]["tags"] == ["leadhub", "maintenance"]
    for dag_id in pull_ids():
        assert "pull" in parsed["dags"][dag_id]["tags"] and "leadhub" in parsed["dags"][dag_id]["tags"]
    for dag_id, info in parsed["dags"].items():
        assert info["owner"] == "leadhub-steward", dag_id


# Every task that opens the warehouse (reads the ledger, loads, builds, reports, publishes).
WAREHOUSE_TASKS = {
    **{(f, t): True for f in feed_ids() for t in ("restore_requested", "ingest")},
    ("warehouse_build", "build"): True,
    ("lead_report", "report"): True,
    ("lead_report", "justice_counts"): True,
    ("leadhub_maintenance", "check_staleness"): True,
    ("leadhub_maintenance", "publish_snapshot"): True,
    ("leadhub_maintenance", "apply_archive_retention"): True,
}


def test_every_task_that_opens_the_warehouse_takes_the_one_slot_pool(parsed):
    dags = parsed["dags"]
    for dag_id, info in dags.items():
        for task_id, t in info["tasks"].items():
            expected = "leadhub_warehouse" if (dag_id, task_id) in WAREHOUSE_TASKS else "default_pool"
            assert t["pool"] == expected, f"{dag_id}.{task_id}"
    assert all(task_id in dags[dag_id]["tasks"] for dag_id, task_id in WAREHOUSE_TASKS)


def test_every_task_that_opens_the_warehouse_is_routed_to_the_warehouse_host(parsed):
    """Taking the warehouse pool is how a task declares that it opens the warehouse
    (dags._common.warehouse_task sets both); each such task, and no other, goes to the
    queue only the workers on the warehouse's host serve. Everything else takes the
    default queue, whatever host serves it."""
    from leadhub.core.deployment import DEFAULT_QUEUE, WAREHOUSE_POOL, WAREHOUSE_QUEUE

    tasks = {(d, t): info for d, dag in parsed["dags"].items() for t, info in dag["tasks"].items()}
    opens_warehouse = {k for k, t in tasks.items() if t["pool"] == WAREHOUSE_POOL}
    on_warehouse_queue = {k for k, t in tasks.items() if t["queue"] == WAREHOUSE_QUEUE}
    assert opens_warehouse == on_warehouse_queue
    assert opens_warehouse >= {("warehouse_build", "build"), ("police_feed", "ingest")}  # the check can fail
    assert {t["queue"] for k, t in tasks.items() if k not in opens_warehouse} == {DEFAULT_QUEUE}


def test_feeds_start_on_file_arrival_with_a_quarter_hour_fallback(parsed):
    for agency in agencies():
        info = parsed["dags"][f"{agency}_feed"]
        inbox = f"leadhub://inbox/{agency}"
        assert info["schedule"]["kind"] == "AssetOrTimeSchedule"
        assert info["schedule"]["cron"] == "*/15 * * * *"
        assert info["schedule"]["value"] == [inbox]
        [watcher] = info["schedule"]["watchers"][inbox]
        classpath, kwargs = watcher["trigger"]
        # The hub's own trigger, which never deletes: not Airflow's File(Delete)Trigger.
        assert classpath == "dags.inbox_trigger.InboxFilesTrigger"
        assert kwargs["agency"] == agency and kwargs["directory"].endswith(f"/inbox/{agency}")
        assert info["catchup"] is False and info["max_active_runs"] == 1
        assert set(info["tasks"]) == {"restore_requested", "ingest", "check_quarantine"}
        assert info["tasks"]["ingest"]["upstream"] == ["restore_requested"]
        assert info["tasks"]["check_quarantine"]["upstream"] == ["ingest"]
        assert info["tasks"]["ingest"]["outlets"] == [f"AssetAlias:leadhub_staging_{agency}"]
        assert info["params"] == ["file_id", "received_from", "received_to"]


def test_maintenance_is_daily_with_retention_parameters(parsed):
    info = parsed["dags"]["leadhub_maintenance"]
    assert info["schedule"] == {"kind": "cron", "value": "@daily"}
    assert set(info["tasks"]) == {"check_staleness", "publish_snapshot", "apply_archive_retention"}
    assert info["params"] == ["dry_run", "retention_days"]


def test_pulls_are_scheduled_and_deliver_into_their_agency_inbox(parsed):
    for dag_id in pull_ids():
        info = parsed["dags"][dag_id]
        assert info["schedule"]["kind"] == "cron"
        [task] = info["tasks"].values()
        agency = next(t for t in info["tags"] if t in agencies())
        assert task["outlets"] == [f"AssetAlias:leadhub_inbox_{agency}"]
        assert info["params"] == ["backfill_from"]


def test_build_runs_on_any_agency_staging_asset(parsed):
    info = parsed["dags"]["warehouse_build"]
    assert info["schedule"] == {"kind": "AssetAny",
                                "value": sorted(f"leadhub://staging/{a}" for a in agencies())}
    assert info["max_active_runs"] == 1 and info["catchup"] is False


def test_report_is_monthly(parsed):
    info = parsed["dags"]["lead_report"]
    assert info["schedule"] == {"kind": "cron", "value": "@monthly"}
    assert info["catchup"] is False
    # The report and the Justice Counts files: independent, so one failing leaves the other.
    assert set(info["tasks"]) == {"report", "justice_counts"}
    assert info["tasks"]["justice_counts"]["upstream"] == []


def test_missing_key_fails_at_once_and_other_errors_retry(parsed):
    assert parsed["policy"] == {"missing_key": "fail", "disk_error": "default"}


def test_parsing_is_light(parsed):
    """The DAG processor re-parses often: no stage or connector libraries are imported at parse time."""
    assert parsed["heavy"] == []
