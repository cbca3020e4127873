"""After the demo, `leadhub airflow` runs the DAGs under Airflow's own scheduler, as the README promises.

The demo runs on a small seed (a copy of the one tests/test_end_to_end.py
reads, so it runs once per session) and leaves the feeds and the build
unpaused; the DAGs the test does not need are paused in the copy, as a steward
would from the UI. Then `leadhub airflow` starts exactly as a steward starts it
(scheduler, DAG processor, triggerer, API server; SQLite) on a free port.
Everything else goes through Airflow's public REST API (v2) with the bearer
token its ``/auth/token`` endpoint hands out for the generated password: the
warehouse pool exists and the pauses are as left. Then a delivery lands in the
treatment inbox and the test waits for the chain the steward relies on: the
inbox watcher's event starts ``treatment_feed``, whose accepted file emits the
staging asset, which starts ``warehouse_build``; the rows are then read back
from the warehouse. While it runs, no process of it listens anywhere but
127.0.0.1, and the executor runs no more task processes than the machine has
cores (at least two).

The whole process group is killed at the end, pass or fail.
"""

from __future__ import annotations

import json
import shutil
import socket
import sqlite3
import subprocess
import sys
import time
import urllib.error
import urllib.request
from contextlib import closing
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import psutil
import pytest

from leadhub.airflow_local import machine_sizes
from leadhub.core.settings import Settings
from leadhub.core.warehouse import connect
from tests.conftest import outside_env
from tests.servers import kill_process_tree

pytestmark = pytest.mark.slow

DEADLINE_SECONDS = 300
# The feeds' fallback schedule, and how long before it a dropped file might be taken by it: until
# the file's own run exists (a feed runs one run at a time, so a fallback run created after it waits
# and then finds the inbox empty). That took 3 to 8 s here, and up to about 15 s more while the
# inbox watcher is still coming back (see demo_then_airflow).
QUARTER_HOUR, QUARTER_HOUR_MARGIN = 15 * 60, 60
FEEDS = ("jail_feed", "police_feed", "prosecutor_feed", "treatment_feed")
PAUSED_BY_THE_STEWARD = ("jail_feed", "police_feed", "prosecutor_feed", "lead_report", "leadhub_maintenance")
# An incremental extract: two new contacts, after the demo's data (which ends in 2024).
CONTACTS_FILE = "treatment_contacts_20250131.csv"
CONTACTS = ("contact_id,client_id,contact_date,service_type\n"
            "TC-test-1,C00001,2025-01-10,housing\n"
            "TC-test-2,C00002,2025-01-12,case_management\n")


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
def demo_then_airflow(tmp_path, demo_run):
    """A copy of the session's demo (tests/conftest.py), then `leadhub airflow` on it on a free port,
    stopped whatever happens."""
    demo_root, _ = demo_run
    data_dir, key_file, port = tmp_path / "data", tmp_path / "key" / "master.key", free_port()
    shutil.copytree(demo_root / "data", data_dir, symlinks=True)
    shutil.copytree(demo_root / "key", key_file.parent)
    # Airflow wrote its home's absolute paths (logs, plugins) into airflow.cfg on its first run:
    # the copy's must point into the copy, or it would write into the shared demo.
    config = data_dir / "airflow" / "airflow.cfg"
    text = config.read_text().replace(str(demo_root / "data"), str(data_dir))
    # The DAG processor parses each file every 10 s instead of 30: its first round of parsing drops
    # the inbox watchers' triggers the demo left and the next round adds them again (as seen in
    # its log), and a file dropped in between waited for that round.
    assert "\nmin_file_process_interval = 30\n" in text
    config.write_text(text.replace("\nmin_file_process_interval = 30\n", "\nmin_file_process_interval = 10\n"))
    with closing(sqlite3.connect(data_dir / "airflow" / "airflow.db")) as db, db:
        # What `leadhub airflow` will find, with nobody touching the UI: the demo left the feeds and
        # the build unpaused.
        paused = dict(db.execute("SELECT dag_id, is_paused FROM dag"))
        chain = (*FEEDS, "warehouse_build")
        assert {d: paused.get(d) for d in chain} == dict.fromkeys(chain, 0), paused
        # The steward's choice, as from the UI: the DAGs the chain below does not need are paused,
        # so their scheduled runs do not hold the one-slot warehouse pool ahead of it.
        db.executemany("UPDATE dag SET is_paused = 1 WHERE dag_id = ?", [(d,) for d in PAUSED_BY_THE_STEWARD])
    env = outside_env()
    # As the demo tells the steward: its key is a demo key, usable with LEADHUB_DEMO=1.
    env.update({"LEADHUB_DATA_DIR": str(data_dir), "LEADHUB_KEY_FILE": str(key_file),
                "LEADHUB_DEMO": "1", "LEADHUB_INBOX_POLL_SECONDS": "1"})
    log = tmp_path / "airflow.log"
    with log.open("w") as out:
        process = subprocess.Popen([sys.executable, "-m", "leadhub.cli", "airflow", "--port", str(port)],
                                   env=env, cwd=tmp_path, stdin=subprocess.DEVNULL, stdout=out,
                                   stderr=subprocess.STDOUT, start_new_session=True)
    try:
        settings = Settings(data_dir=data_dir, key_file=key_file)
        yield Standalone(Api(f"http://127.0.0.1:{port}"), settings, data_dir / "airflow", log, process)
    finally:
        kill_process_tree(process)  # nothing is asserted after the test: no graceful stop waited for


def listening_addresses(root: psutil.Process) -> set[tuple[str, int]]:
    """(address, port) of every listening TCP socket of ``root`` and all its descendants."""
    found = set()
    for process in [root, *root.children(recursive=True)]:
        try:
            found |= {(c.laddr.ip, c.laddr.port) for c in process.net_connections(kind="inet")
                      if c.status == psutil.CONN_LISTEN}
        except (psutil.NoSuchProcess, psutil.AccessDenied):
            pass
    return found


def executor_workers(root: psutil.Process) -> int:
    """LocalExecutor worker processes (Airflow titles them 'airflow worker -- LocalExecutor: ...')."""
    count = 0
    for process in root.children(recursive=True):
        try:
            count += "LocalExecutor" in " ".join(process.cmdline())
        except (psutil.NoSuchProcess, psutil.AccessDenied):
            pass
    return count


def test_after_the_demo_leadhub_airflow_takes_a_dropped_file_through_feed_and_build(demo_then_airflow):
    airflow = demo_then_airflow
    api, settings, home, log, wait_for = airflow.api, airflow.settings, airflow.home, airflow.log, airflow.wait_for
    deadline = time.monotonic() + DEADLINE_SECONDS

    wait_for("the API server", lambda: api.call("GET", "/api/v2/version", auth=False)[0] == 200, deadline)
    passwords = home / "simple_auth_manager_passwords.json.generated"
    wait_for("the generated password", passwords.exists, deadline)
    api.login("steward", json.loads(passwords.read_text())["steward"])

    # What `leadhub airflow` promises, with nobody touching the UI: the pool, and the DAGs unpaused
    # (all but those the steward paused before the start).
    status, pool = api.call("GET", "/api/v2/pools/leadhub_warehouse")
    assert status == 200 and pool["slots"] == 1, pool
    for dag_id in ("treatment_feed", "warehouse_build"):
        status, body = api.call("GET", f"/api/v2/dags/{dag_id}")
        assert status == 200 and body["is_paused"] is False, (dag_id, body)
    for dag_id in PAUSED_BY_THE_STEWARD:  # and a steward's pause outlives the restart
        status, body = api.call("GET", f"/api/v2/dags/{dag_id}")
        assert status == 200 and body["is_paused"] is True, (dag_id, body)

    # Unpaused feeds start a fallback run for the latest quarter-hour (first for the one the demo's
    # metadata names as next, when the demo ran in an earlier quarter-hour); let them find the inbox
    # empty, so the run that takes the file below can only have been started by the file's arrival.
    # (The demo's own run, through dag.test(), is 'manual'.)
    # A drop just before the next quarter-hour could be taken by that fallback run instead, so
    # such a drop waits until that run has come and gone.
    def fallback_runs_done(at: float) -> bool:
        """No run is queued or running, and the fallback run of the quarter-hour ``at`` falls in
        (epoch seconds) has come and gone."""
        quarter = at // QUARTER_HOUR * QUARTER_HOUR
        runs = api.runs("treatment_feed")
        return all(r["state"] in ("success", "failed") for r in runs) and any(
            r["run_type"] == "scheduled" and datetime.fromisoformat(r["logical_date"]).timestamp() >= quarter
            for r in runs)

    wait_for("treatment_feed's fallback run to finish", lambda: fallback_runs_done(time.time()), deadline)
    if QUARTER_HOUR - time.time() % QUARTER_HOUR < QUARTER_HOUR_MARGIN:
        wait_for("the next quarter-hour's fallback run", lambda: fallback_runs_done(time.time() + QUARTER_HOUR_MARGIN),
                 deadline + QUARTER_HOUR_MARGIN)
    assert {r["run_type"] for r in api.runs("treatment_feed")} == {"manual", "scheduled"}

    # The clerk's way: write under a temporary name, then rename.
    inbox = settings.inbox("treatment")
    part = inbox / f"{CONTACTS_FILE}.part"
    part.write_text(CONTACTS)
    part.rename(inbox / CONTACTS_FILE)

    def feed_run_that_took_the_file():
        for run in api.runs("treatment_feed"):
            if run["run_type"] == "manual":
                continue  # the demo's
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
    assert (summary["file"], summary["status"], summary["rows"]) == (CONTACTS_FILE, "accepted", 2)

    # Every listener of every component (and of the tasks they started) is on the loopback address,
    # the API server's among them; the executor runs one task process per core (at least two).
    root = psutil.Process(airflow.process.pid)
    addresses = listening_addresses(root)
    assert ("127.0.0.1", int(api.base.rsplit(":", 1)[1])) in addresses, addresses
    assert {ip for ip, _ in addresses} <= {"127.0.0.1", "::1"}, addresses
    assert 0 < executor_workers(root) <= int(machine_sizes()["AIRFLOW__CORE__PARALLELISM"])

    # The demo ran the build itself and left nothing queued for it, so the only asset-triggered
    # build is the one the file started (its events also list the demo's, consumed with it).
    def build_after_the_file():
        runs = [r for r in api.runs("warehouse_build") if r["run_type"] == "asset_triggered"]
        assert len(runs) <= 1, runs
        return runs[0] if runs and runs[0]["state"] in ("success", "failed") else None

    build_run = wait_for("warehouse_build to follow the file", build_after_the_file, deadline)
    assert build_run["state"] == "success", f"warehouse_build ended {build_run['state']}; see {log}"
    assert "leadhub://staging/treatment" in api.upstream_assets("warehouse_build", build_run["dag_run_id"])
    counts = api.xcom("warehouse_build", build_run["dag_run_id"], "build")
    assert counts["link.persons"] > 0 and all(isinstance(n, int) for k, n in counts.items() if k.startswith("core."))

    assert not (inbox / CONTACTS_FILE).exists(), "the intake removes a delivery only after loading it"
    # Another scheduled run (the next quarter-hour's feeds) may hold the warehouse now: read it
    # as the hub's readers do, waiting for the writer to let go.
    with connect(settings.warehouse_path, read_only=True) as con:
        assert con.execute("SELECT status, row_count FROM ops.file_ledger WHERE file_name = ?",
                           [CONTACTS_FILE]).fetchall() == [("accepted", 2)]
        assert con.execute("SELECT count(*) FROM staging.treatment_contacts s JOIN ops.file_ledger l "
                           "ON l.batch_id = s._batch_id WHERE l.file_name = ?", [CONTACTS_FILE]).fetchone() == (2,)
