"""The DAGs under Airflow's own scheduler: a file dropped into an inbox ends up in the warehouse.

``airflow standalone`` starts the scheduler, DAG processor, triggerer and API
server (LocalExecutor, SimpleAuthManager, SQLite) on 127.0.0.1 with a free
port and a throwaway AIRFLOW_HOME. Everything else goes through Airflow's
public REST API (v2) with the bearer token its ``/auth/token`` endpoint hands
out for the generated admin password: create the warehouse pool, unpause
the DAGs, watch the runs. Then a delivery lands in the treatment inbox and the
test waits for the chain the steward relies on: the inbox watcher's event
starts ``treatment_feed``, whose accepted file emits the staging asset, which
starts ``warehouse_build``; the rows are then read back from the warehouse.

The whole process group is killed at the end, pass or fail. Poll intervals are
shortened through Airflow's own settings so the run takes about a minute.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path

import duckdb
import pytest

from leadhub.airflow_local import dags_folder
from leadhub.keys import create_key_file
from leadhub.settings import Settings

pytestmark = pytest.mark.slow

DEADLINE_SECONDS = 150
CLIENTS = ("client_id,last_name,first_name,dob,ssn,phone,address,sex,consent_status,consent_date\n"
           "C00001,Zebediah,Quill,1980-02-03,123-45-6780,206-555-0100,1 Main St,M,active,2022-01-05\n"
           "C00002,Okonkwo,Ada,1975-11-30,,206-555-0101,Shelter A,F,revoked,2022-03-01\n")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Api:
    """Just enough of Airflow's REST API v2, authenticated as the standalone admin."""

    def __init__(self, base: str):
        self.base, self.token = base, None

    def call(self, method: str, path: str, body: dict | None = None, auth: bool = True) -> tuple[int, dict]:
        headers = {"Content-Type": "application/json"}
        if auth:
            headers["Authorization"] = f"Bearer {self.token}"
        data = json.dumps(body).encode() if body is not None else None
        request = urllib.request.Request(self.base + path, data=data, method=method, headers=headers)
        try:
            with urllib.request.urlopen(request, timeout=30) as response:
                return response.status, json.loads(response.read() or b"{}")
        except urllib.error.HTTPError as e:
            return e.code, {"detail": e.read().decode(errors="replace")[:500]}
        except OSError as e:  # not listening yet, or too busy to answer in time: the caller polls again
            return 0, {"detail": f"{type(e).__name__}: {e}"}

    def login(self, username: str, password: str) -> None:
        status, body = self.call("POST", "/auth/token", {"username": username, "password": password}, auth=False)
        assert status == 201, body
        self.token = body["access_token"]

    def runs(self, dag_id: str) -> list[dict]:
        status, body = self.call("GET", f"/api/v2/dags/{dag_id}/dagRuns?order_by=logical_date&limit=50")
        return body.get("dag_runs", []) if status == 200 else []

    def xcom(self, dag_id: str, run_id: str, task_id: str):
        status, body = self.call("GET", f"/api/v2/dags/{dag_id}/dagRuns/{run_id}/taskInstances/{task_id}"
                                        "/xcomEntries/return_value?deserialize=true")
        assert status == 200, body
        return body["value"]

    def upstream_assets(self, dag_id: str, run_id: str) -> list[str]:
        """URIs of the asset events that started a run."""
        status, body = self.call("GET", f"/api/v2/dags/{dag_id}/dagRuns/{run_id}/upstreamAssetEvents")
        assert status == 200, body
        return sorted(e["uri"] for e in body["asset_events"])


@dataclass
class Standalone:
    api: Api
    settings: Settings
    home: Path
    log: Path
    process: subprocess.Popen

    def wait_for(self, what: str, check, deadline: float, every: float = 1.0):
        """Poll ``check`` until it returns something truthy; fail with the log's tail on timeout or exit."""
        while time.monotonic() < deadline and self.process.poll() is None:
            result = check()
            if result:
                return result
            time.sleep(every)
        why = "timed out" if self.process.poll() is None else f"airflow standalone exited {self.process.poll()}"
        tail = "\n".join(self.log.read_text(errors="replace").splitlines()[-60:])
        pytest.fail(f"{why} waiting for {what}; last lines of {self.log}:\n{tail}")


@pytest.fixture
def standalone(tmp_path):
    """Airflow standalone on a free port, in its own process group, stopped whatever happens."""
    home, port = tmp_path / "airflow", free_port()
    home.mkdir()
    data_dir, key_file = tmp_path / "data", tmp_path / "keys" / "master.key"
    create_key_file(key_file)
    env = {k: v for k, v in os.environ.items()
           if not (k.startswith(("AIRFLOW__", "LEADHUB_")) or k in ("AIRFLOW_HOME", "AIRFLOW_CONFIG"))}
    env.update({
        "AIRFLOW_HOME": str(home),
        "AIRFLOW__CORE__DAGS_FOLDER": str(dags_folder()),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "AIRFLOW__CORE__DAGS_ARE_PAUSED_AT_CREATION": "True",
        "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"sqlite:///{home / 'airflow.db'}",
        "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS": "steward:admin",
        "AIRFLOW__API__HOST": "127.0.0.1",
        "AIRFLOW__API__PORT": str(port),
        "AIRFLOW__API__WORKERS": "1",
        "AIRFLOW__CORE__EXECUTION_API_SERVER_URL": f"http://127.0.0.1:{port}/execution/",
        "AIRFLOW__API_AUTH__JWT_SECRET": os.urandom(16).hex(),
        # Short intervals where the test waits on them (heartbeats, scheduling); the DAG files are
        # re-parsed every 10 s, often enough to register the inbox watcher soon after unpausing
        # without keeping both cores busy re-parsing.
        "AIRFLOW__DAG_PROCESSOR__REFRESH_INTERVAL": "60",
        "AIRFLOW__DAG_PROCESSOR__MIN_FILE_PROCESS_INTERVAL": "10",
        "AIRFLOW__DAG_PROCESSOR__PARSING_PROCESSES": "1",
        "AIRFLOW__SCHEDULER__SCHEDULER_HEARTBEAT_SEC": "1",
        "AIRFLOW__SCHEDULER__JOB_HEARTBEAT_SEC": "1",
        "AIRFLOW__TRIGGERER__JOB_HEARTBEAT_SEC": "1",
        "AIRFLOW__CORE__PARALLELISM": "4",
        "LEADHUB_DATA_DIR": str(data_dir),
        "LEADHUB_KEY_FILE": str(key_file),
        "LEADHUB_INBOX_POLL_SECONDS": "1",
        # standalone starts its components as `airflow ...` from PATH: this interpreter's.
        "PATH": os.pathsep.join([str(Path(sys.executable).parent), os.environ.get("PATH", "")]),
    })
    log = tmp_path / "standalone.log"
    with log.open("w") as out:
        process = subprocess.Popen([sys.executable, "-m", "airflow", "standalone"], env=env, cwd=tmp_path,
                                   stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT,
                                   start_new_session=True)
    try:
        settings = Settings(data_dir=data_dir, key_file=key_file)
        yield Standalone(Api(f"http://127.0.0.1:{port}"), settings, home, log, process)
    finally:
        stop_group(process)


def stop_group(process: subprocess.Popen) -> None:
    """SIGTERM the whole process group, then SIGKILL whatever outlived the grace period."""
    try:
        os.killpg(process.pid, signal.SIGTERM)
    except ProcessLookupError:
        return
    try:
        process.wait(timeout=15)
    except subprocess.TimeoutExpired:
        pass
    try:
        os.killpg(process.pid, signal.SIGKILL)  # components that outlive standalone itself
    except ProcessLookupError:
        pass
    process.wait()


def test_file_dropped_in_an_inbox_runs_the_feed_then_the_build_under_the_scheduler(standalone):
    api, settings, home, log, wait_for = (standalone.api, standalone.settings, standalone.home, standalone.log,
                                          standalone.wait_for)
    deadline = time.monotonic() + DEADLINE_SECONDS

    wait_for("the API server", lambda: api.call("GET", "/api/v2/version", auth=False)[0] == 200, deadline)
    passwords = home / "simple_auth_manager_passwords.json.generated"
    wait_for("the generated admin password", passwords.exists, deadline)
    api.login("steward", json.loads(passwords.read_text())["steward"])

    status, body = api.call("POST", "/api/v2/pools", {"name": "leadhub_warehouse", "slots": 1,
                                                      "include_deferred": False})
    assert status in (200, 201), body
    for dag_id in ("treatment_feed", "warehouse_build"):
        wait_for(f"{dag_id} to be parsed", lambda d=dag_id: api.call("GET", f"/api/v2/dags/{d}")[0] == 200,
                 deadline)
        status, body = api.call("PATCH", f"/api/v2/dags/{dag_id}", {"is_paused": False})
        assert status == 200 and body["is_paused"] is False, body

    # Unpausing starts one fallback run for the latest quarter-hour; let it find the inbox empty,
    # so the run that takes the file below can only have been started by the file's arrival.
    wait_for("the fallback run started by unpausing to finish",
             lambda: (runs := api.runs("treatment_feed")) and all(r["state"] in ("success", "failed") for r in runs),
             deadline)
    assert {r["run_type"] for r in api.runs("treatment_feed")} == {"scheduled"}

    # The clerk's way: write under a temporary name, then rename.
    inbox = settings.inbox("treatment")
    inbox.mkdir(parents=True, exist_ok=True)
    part = inbox / "treatment_clients_20240101.csv.part"
    part.write_text(CLIENTS)
    part.rename(inbox / "treatment_clients_20240101.csv")

    def feed_run_that_took_the_file():
        for run in api.runs("treatment_feed"):
            if run["state"] == "failed":
                pytest.fail(f"treatment_feed run {run['dag_run_id']} failed; see {log}")
            if run["state"] == "success" and any(
                    s["status"] == "accepted" for s in api.xcom("treatment_feed", run["dag_run_id"], "ingest")):
                return run
        return None

    feed_run = wait_for("a treatment_feed run that accepted the file", feed_run_that_took_the_file, deadline)
    assert feed_run["run_type"] == "asset_triggered", feed_run  # started by the arrival, not the clock
    assert api.upstream_assets("treatment_feed", feed_run["dag_run_id"]) == ["leadhub://inbox/treatment"]
    [summary] = api.xcom("treatment_feed", feed_run["dag_run_id"], "ingest")
    assert (summary["file"], summary["status"], summary["rows"]) == ("treatment_clients_20240101.csv",
                                                                     "accepted", 2)

    def finished_build():
        runs = [r for r in api.runs("warehouse_build") if r["state"] in ("success", "failed")]
        return runs[-1] if runs else None

    build_run = wait_for("warehouse_build to follow", finished_build, deadline)
    assert build_run["state"] == "success", f"warehouse_build ended {build_run['state']}; see {log}"
    assert build_run["run_type"] == "asset_triggered", build_run
    assert api.upstream_assets("warehouse_build", build_run["dag_run_id"]) == ["leadhub://staging/treatment"]
    counts = api.xcom("warehouse_build", build_run["dag_run_id"], "build")
    assert all(isinstance(n, int) for n in counts.values())

    assert not list(inbox.iterdir()), "the intake removes a delivery only after loading it"
    with duckdb.connect(str(settings.warehouse_path), read_only=True) as con:
        assert con.execute("SELECT count(*) FROM staging.treatment_clients").fetchone() == (2,)
        assert con.execute("SELECT status FROM ops.file_ledger WHERE file_name = ?",
                           ["treatment_clients_20240101.csv"]).fetchall() == [("accepted",)]
