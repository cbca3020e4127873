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

import pytest

from connectors.contracts import agencies
from leadhub.airflow_local import dags_folder

HEAVY_MODULES = ("duckdb", "great_expectations", "pandas", "pyarrow", "numpy", "scipy", "matplotlib")

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

def schedule(dag):
    if isinstance(dag.schedule, str):
        return {"kind": "cron", "value": dag.schedule}
    cond = dag.schedule
    return {"kind": type(cond).__name__, "value": sorted(a.uri for a in getattr(cond, "objects", ()))}

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
        "serialize_error": serializes(dag),
        "tasks": {t.task_id: {
            "owner": t.owner,
            "retries": t.retries,
            "retry_delay": t.retry_delay.total_seconds(),
            "retry_exponential_backoff": t.retry_exponential_backoff,
            "pool": t.pool,
            "outlets": [type(o).__name__ + ":" + o.name for o in t.outlets],
            "on_failure_callback": bool(t.on_failure_callback),
            "retry_policy": type(t.retry_policy).__name__,
        } for t in dag.tasks},
    }

from dags._common import RETRY_POLICY
from leadhub.errors import KeyError_
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


def test_one_feed_per_contract_agency_plus_build_and_report(parsed):
    assert set(agencies()) == {"police", "prosecutor", "jail", "treatment"}
    assert set(parsed["dags"]) == {"police_feed", "prosecutor_feed", "jail_feed", "treatment_feed",
                                   "warehouse_build", "lead_report"}


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


def test_every_task_that_opens_the_warehouse_takes_the_one_slot_pool(parsed):
    dags = parsed["dags"]
    opening = [(f, "ingest") for f in feed_ids()] + [("warehouse_build", "build"), ("lead_report", "report")]
    for dag_id, task_id in opening:
        assert dags[dag_id]["tasks"][task_id]["pool"] == "leadhub_warehouse", f"{dag_id}.{task_id}"
    for dag_id in feed_ids():
        assert dags[dag_id]["tasks"]["check_quarantine"]["pool"] == "default_pool"


def test_feeds_run_every_quarter_hour_one_at_a_time_and_emit_through_their_alias(parsed):
    for agency in agencies():
        info = parsed["dags"][f"{agency}_feed"]
        assert info["schedule"] == {"kind": "cron", "value": "*/15 * * * *"}
        assert info["catchup"] is False and info["max_active_runs"] == 1
        assert set(info["tasks"]) == {"ingest", "check_quarantine"}
        assert info["tasks"]["ingest"]["outlets"] == [f"AssetAlias:leadhub_staging_{agency}"]


def test_build_runs_on_any_agency_staging_asset(parsed):
    info = parsed["dags"]["warehouse_build"]
    assert info["schedule"] == {"kind": "AssetAny",
                                "value": sorted(f"leadhub://staging/{a}" for a in agencies())}
    assert info["max_active_runs"] == 1 and info["catchup"] is False


def test_report_is_monthly(parsed):
    info = parsed["dags"]["lead_report"]
    assert info["schedule"] == {"kind": "cron", "value": "@monthly"}
    assert info["catchup"] is False


def test_missing_key_fails_at_once_and_other_errors_retry(parsed):
    assert parsed["policy"] == {"missing_key": "fail", "disk_error": "default"}


def test_parsing_is_light(parsed):
    """The DAG processor re-parses often: no stage libraries at parse time, and well under the timeout."""
    assert parsed["heavy"] == []
    assert parsed["seconds"] < 10
