"""Airflow's CeleryExecutor, run for real: a default worker and a worker on the warehouse's host.

PostgreSQL holds Airflow's metadata and Redis is the broker (Debian packages,
on 127.0.0.1, tests/servers.py). The scheduler, DAG processor, triggerer and
API server run as in docker-compose.yml, with the same executor settings and
queues (``leadhub.core.deployment``), and two Celery workers, each standing for
a host of its own (``celery_hooks/worker_host.py`` gives each the host name
Airflow records for the tasks it runs): one serves the default queue, the other
the warehouse queue. Everything is asked of Airflow through its REST API (v2).

Deliveries dropped into the police and treatment inboxes go through their feeds
and ``warehouse_build``; every task that opens the warehouse ran on the
warehouse host, the others on the default host. Then the warehouse worker is
killed while an ingest is inside its load transaction (``celery_hooks/
sitecustomize.py`` pauses it there, once): Airflow notices the task's lost
heartbeat, retries it on the restarted worker, and the warehouse holds the
delivery exactly once.

Every process is stopped at the end, pass or fail; on failure the last lines of
each one's log are printed.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

import psutil
import pytest

from leadhub.airflow_local import dags_folder, machine_sizes
from leadhub.core.deployment import (
    CELERY_SETTINGS, DEFAULT_QUEUE, WAREHOUSE_POOL, WAREHOUSE_POOL_DESCRIPTION, WAREHOUSE_POOL_SLOTS,
    WAREHOUSE_QUEUE, WAREHOUSE_WORKER_CONCURRENCY, WAREHOUSE_WORKER_SETTINGS, WORKER_QUEUES,
)
from leadhub.core.keys import create_key_file
from leadhub.core.settings import Settings
from leadhub.core.warehouse import connect
from tests.dags.test_scheduler import Api
from tests.conftest import outside_env
from tests.servers import free_port, kill_process_tree

pytestmark = pytest.mark.slow

HOOKS = Path(__file__).resolve().parent / "celery_hooks"
DEADLINE_SECONDS = 420
STOP_GRACE_SECONDS = 20
# How long a running task may go without a heartbeat before the scheduler fails the attempt
# (Airflow's default, 5 minutes, suits production; a killed worker is noticed sooner here), and
# how often a live task heartbeats (Airflow's default, 5 s): five beats fit in one timeout.
HEARTBEAT_TIMEOUT_SECONDS = 10
HEARTBEAT_SECONDS = 2

REF_HEADER = ("referral_id,person_id,last_name,first_name,dob,ssn,sex,race,ethnicity,referral_date,"
              "referral_type,offense_category,precinct,officer_id\n")
POLICE_FIRST = ("police_referrals_20240301.csv",
                REF_HEADER + "R1,P1,Quill,Zebediah,1980-02-03,123-45-6780,M,WHITE,NON_HISPANIC,2024-03-01,"
                             "social_contact,drug,NORTH,O1\n"
                             "R2,P2,Okonkwo,Ada,1975-11-30,,F,BLACK,NON_HISPANIC,2024-03-01,"
                             "community,property,SOUTH,O2\n")
TREATMENT = ("treatment_clients_20240301.csv",
             "client_id,last_name,first_name,dob,ssn,phone,address,sex,consent_status,consent_date\n"
             "C00001,Quill,Zebediah,1980-02-03,123-45-6780,206-555-0100,1 Main St,M,active,2022-01-05\n"
             "C00002,Okonkwo,Ada,1975-11-30,,206-555-0101,Shelter A,F,active,2022-03-01\n")
# The delivery whose load is interrupted: two new referrals, another day.
POLICE_SECOND = ("police_referrals_20240302.csv",
                 REF_HEADER + "R3,P3,Marsh,Ivo,1990-06-07,,M,WHITE,UNKNOWN,2024-03-02,"
                              "arrest_diversion,drug,EAST,O1\n"
                              "R4,P1,Quill,Zebediah,1980-02-03,123-45-6780,M,WHITE,NON_HISPANIC,2024-03-02,"
                              "social_contact,drug,NORTH,O3\n")
COMPONENTS = {
    "api-server": ["api-server"],
    "scheduler": ["scheduler", "--skip-serve-logs"],
    "dag-processor": ["dag-processor"],
    "triggerer": ["triggerer", "--skip-serve-logs"],
}


def host_of(queue: str) -> str:
    """The host name a worker serving ``queue`` records on its task instances."""
    return f"{queue}-host"


def worker_args(queue: str) -> list[str]:
    """``airflow`` arguments of the worker serving ``queue``, as docker-compose.yml runs it
    (tests/dags/test_docker_compose.py compares the two); two task processes on the default queue."""
    concurrency = WAREHOUSE_WORKER_CONCURRENCY if queue == WAREHOUSE_QUEUE else 2
    return ["celery", "worker", "--queues", queue, "--concurrency", str(concurrency)]


def celery_provider_or_skip() -> None:
    try:
        version("apache-airflow-providers-celery")
    except PackageNotFoundError:
        pytest.skip("apache-airflow-providers-celery is not installed: pip install -c constraints.txt -e '.[test]'")


@dataclass
class Cluster:
    """Airflow's components and workers as child processes, each logging to its own file."""

    env: dict[str, str]
    logs: Path
    processes: dict[str, subprocess.Popen] = field(default_factory=dict)

    def start(self, name: str, args: list[str], extra_env: dict[str, str] | None = None) -> None:
        with (self.logs / f"{name}.log").open("ab") as out:
            self.processes[name] = subprocess.Popen(
                [sys.executable, "-m", "airflow", *args], env={**self.env, **(extra_env or {})},
                stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)

    def start_worker(self, queue: str, extra_env: dict[str, str] | None = None) -> None:
        host = host_of(queue)
        self.start(f"worker-{queue}",
                   [*worker_args(queue), "--celery-hostname", f"{queue}@{host}", "--skip-serve-logs",
                    "--without-mingle", "--without-gossip"],
                   {**(WAREHOUSE_WORKER_SETTINGS if queue == WAREHOUSE_QUEUE else {}),
                    "PYTHONPATH": str(HOOKS), "LEADHUB_TEST_HOSTNAME": host,
                    "AIRFLOW__CORE__HOSTNAME_CALLABLE": "worker_host.hostname", **(extra_env or {})})

    def kill(self, name: str) -> None:
        """SIGKILL a process and everything it started, as when its host goes down."""
        kill_process_tree(self.processes[name])
        del self.processes[name]

    def strays(self) -> list[psutil.Process]:
        """Processes of this cluster's Airflow home that no running component is parent to:
        left behind by a task whose process has ended."""
        ours = set()
        for process in self.processes.values():
            try:
                ours |= {process.pid, *(c.pid for c in psutil.Process(process.pid).children(recursive=True))}
            except psutil.NoSuchProcess:
                pass
        found = []
        for p in psutil.process_iter():
            try:
                if p.pid not in ours and p.environ().get("AIRFLOW_HOME") == self.env["AIRFLOW_HOME"]:
                    found.append(p)
            except (psutil.NoSuchProcess, psutil.AccessDenied, psutil.ZombieProcess):
                pass
        return found

    def stop(self) -> None:
        """SIGTERM every process at once, then SIGKILL whatever (or whatever it started) outlived the
        grace period, and whatever a task left behind."""
        family = []
        for process in self.processes.values():
            try:
                family += [psutil.Process(process.pid), *psutil.Process(process.pid).children(recursive=True)]
                os.killpg(process.pid, signal.SIGTERM)
            except (psutil.NoSuchProcess, ProcessLookupError):
                pass
        _, alive = psutil.wait_procs(family, timeout=STOP_GRACE_SECONDS)
        for p in alive + self.strays():
            try:
                p.kill()
            except psutil.NoSuchProcess:
                pass
        for process in self.processes.values():
            process.wait()

    def tails(self, lines: int = 40) -> str:
        out = []
        for log in sorted(self.logs.glob("*.log")):
            tail = log.read_text(errors="replace").splitlines()[-lines:]
            out.append(f"--- last lines of {log.name} ---\n" + "\n".join(tail))
        return "\n".join(out)

    def wait_for(self, what: str, check, deadline: float, every: float = 1.0):
        """Poll ``check`` until it returns something truthy; fail with every log's tail on timeout."""
        while time.monotonic() < deadline:
            dead = [n for n, p in self.processes.items() if p.poll() is not None]
            if dead:
                pytest.fail(f"{', '.join(dead)} exited while waiting for {what}\n{self.tails()}")
            result = check()
            if result:
                return result
            time.sleep(every)
        pytest.fail(f"timed out waiting for {what}\n{self.tails()}")


@dataclass
class Hub:
    cluster: Cluster
    api: Api
    settings: Settings
    pause_dir: Path
    deadline: float


def metadata_database(pg_server, name: str) -> str:
    from sqlalchemy import create_engine, text

    engine = create_engine(pg_server.url("postgres"), isolation_level="AUTOCOMMIT")
    with engine.connect() as con:
        con.execute(text(f"DROP DATABASE IF EXISTS {name}"))
        con.execute(text(f"CREATE DATABASE {name}"))
    engine.dispose()
    return pg_server.url(name)


def cluster_env(tmp_path: Path, sql_conn: str, broker: str, port: int, settings: Settings) -> dict[str, str]:
    """What every component gets: the shared Celery settings, then this machine's addresses."""
    env = outside_env("PYTHONPATH")
    env.update(machine_sizes())
    env.update(CELERY_SETTINGS)
    env.update({
        "AIRFLOW_HOME": str(tmp_path / "airflow"),
        "AIRFLOW__CORE__DAGS_FOLDER": str(dags_folder()),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "AIRFLOW__CORE__DAGS_ARE_PAUSED_AT_CREATION": "True",
        "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": sql_conn,
        "AIRFLOW__CELERY__BROKER_URL": broker,
        "AIRFLOW__CELERY__RESULT_BACKEND": "db+" + sql_conn.replace("postgresql+psycopg2://", "postgresql://"),
        "AIRFLOW__CORE__AUTH_MANAGER":
            "airflow.api_fastapi.auth.managers.simple.simple_auth_manager.SimpleAuthManager",
        "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS": "steward:admin",
        "AIRFLOW__API__HOST": "127.0.0.1",
        "AIRFLOW__API__PORT": str(port),
        "AIRFLOW__CORE__EXECUTION_API_SERVER_URL": f"http://127.0.0.1:{port}/execution/",
        "AIRFLOW__API_AUTH__JWT_SECRET": os.urandom(32).hex(),
        "AIRFLOW__API__SECRET_KEY": os.urandom(32).hex(),
        "AIRFLOW__SCHEDULER__ENABLE_HEALTH_CHECK": "False",
        "AIRFLOW__SCHEDULER__TASK_INSTANCE_HEARTBEAT_TIMEOUT": str(HEARTBEAT_TIMEOUT_SECONDS),
        "AIRFLOW__SCHEDULER__TASK_INSTANCE_HEARTBEAT_TIMEOUT_DETECTION_INTERVAL": "2",
        "AIRFLOW__WORKERS__MIN_HEARTBEAT_INTERVAL": str(HEARTBEAT_SECONDS),
        "LEADHUB_DATA_DIR": str(settings.data_dir),
        "LEADHUB_KEY_FILE": str(settings.key_file),
        "LEADHUB_INBOX_POLL_SECONDS": "1",
        # Airflow waits between this and twice this before a retry (production: a minute).
        "LEADHUB_RETRY_DELAY_SECONDS": "2",
        "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}",
    })
    return env


@pytest.fixture
def hub(tmp_path, pg_server, redis_server):
    celery_provider_or_skip()
    deadline = time.monotonic() + DEADLINE_SECONDS
    settings = Settings(data_dir=tmp_path / "data", key_file=tmp_path / "keys" / "master.key")
    create_key_file(settings.key_file)
    settings.ensure_dirs()
    pause_dir = tmp_path / "pause"
    pause_dir.mkdir()
    logs = tmp_path / "logs"
    logs.mkdir()
    port = free_port()
    env = cluster_env(tmp_path, metadata_database(pg_server, "airflow_celery"), redis_server.url(), port, settings)
    migrated = subprocess.run([sys.executable, "-m", "airflow", "db", "migrate"], env=env,
                              stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=300)
    assert migrated.returncode == 0, migrated.stdout[-2000:] + migrated.stderr[-3000:]

    cluster = Cluster(env, logs)
    try:
        for name, args in COMPONENTS.items():
            cluster.start(name, args)
        for queue in WORKER_QUEUES.values():
            cluster.start_worker(queue, {"LEADHUB_TEST_PAUSE_DIR": str(pause_dir)} if queue == WAREHOUSE_QUEUE else {})
        yield Hub(cluster, Api(f"http://127.0.0.1:{port}"), settings, pause_dir, deadline)
    finally:
        cluster.stop()
        print(cluster.tails(80))  # captured: pytest shows it when the test failed


def set_paused(api: Api, dag_id: str, paused: bool) -> None:
    status, body = api.call("PATCH", f"/api/v2/dags/{dag_id}", {"is_paused": paused})
    assert status == 200 and body["is_paused"] is paused, body


def healthy(api: Api) -> bool:
    status, body = api.call("GET", "/api/v2/monitor/health", auth=False)
    parts = ("metadatabase", "scheduler", "triggerer", "dag_processor")
    return status == 200 and all((body.get(p) or {}).get("status") == "healthy" for p in parts)


def deliver(settings: Settings, agency: str, name: str, text: str) -> None:
    """As a clerk delivers: under a temporary name, then renamed into place."""
    inbox = settings.inbox(agency)
    inbox.mkdir(parents=True, exist_ok=True)
    part = inbox / f"{name}.part"
    part.write_text(text)
    part.rename(inbox / name)


def accepted_run(api: Api, dag_id: str, file: str) -> dict | None:
    """The successful run of a feed whose ingest accepted ``file``, if there is one yet."""
    for run in api.runs(dag_id):
        if run["state"] == "failed":
            pytest.fail(f"{dag_id} run {run['dag_run_id']} failed")
        if run["state"] == "success" and any(
                s["file"] == file and s["status"] == "accepted"
                for s in api.xcom(dag_id, run["dag_run_id"], "ingest")):
            return run
    return None


def builds_settled(api: Api, assets: set[str]) -> list[dict] | None:
    """Every warehouse_build run, once none is queued or running and together they took ``assets``."""
    found = api.runs("warehouse_build")
    if not found or any(r["state"] not in ("success", "failed") for r in found):
        return None
    taken = {a for r in found for a in api.upstream_assets("warehouse_build", r["dag_run_id"])}
    return found if taken >= assets else None


def task_instances(api: Api, dag_id: str, run_id: str) -> dict[str, dict]:
    status, body = api.call("GET", f"/api/v2/dags/{dag_id}/dagRuns/{run_id}/taskInstances")
    assert status == 200, body
    return {ti["task_id"]: ti for ti in body["task_instances"]}


def tries(api: Api, dag_id: str, run_id: str, task_id: str) -> list[dict]:
    status, body = api.call("GET", f"/api/v2/dags/{dag_id}/dagRuns/{run_id}/taskInstances/{task_id}/tries")
    assert status == 200, body
    return sorted(body["task_instances"], key=lambda t: t["try_number"])


def test_celery_workers_split_by_queue_and_a_killed_warehouse_worker_loads_nothing_twice(hub):
    cluster, api, settings, deadline = hub.cluster, hub.api, hub.settings, hub.deadline

    cluster.wait_for("the API server, scheduler, triggerer and DAG processor to report healthy",
                     lambda: healthy(api), deadline)
    passwords = Path(cluster.env["AIRFLOW_HOME"]) / "simple_auth_manager_passwords.json.generated"
    cluster.wait_for("the generated password", passwords.exists, deadline)
    api.login("steward", json.loads(passwords.read_text())["steward"])

    # The pool docker-compose's airflow-init creates, then the DAGs this test needs, once parsed.
    status, body = api.call("POST", "/api/v2/pools", {"name": WAREHOUSE_POOL, "slots": WAREHOUSE_POOL_SLOTS,
                                                      "description": WAREHOUSE_POOL_DESCRIPTION})
    assert status == 201, body
    deliver(settings, "police", *POLICE_FIRST)
    deliver(settings, "treatment", *TREATMENT)
    for dag_id in ("police_feed", "treatment_feed", "warehouse_build"):
        cluster.wait_for(f"{dag_id} to be parsed", lambda: api.call("GET", f"/api/v2/dags/{dag_id}")[0] == 200,
                         deadline)
    for dag_id in ("police_feed", "treatment_feed", "warehouse_build"):
        set_paused(api, dag_id, False)

    # Both deliveries go through their feeds, and builds follow (one, or one per feed when they finish apart).
    police = cluster.wait_for("police_feed to accept its delivery",
                              lambda: accepted_run(api, "police_feed", POLICE_FIRST[0]), deadline)
    treatment = cluster.wait_for("treatment_feed to accept its delivery",
                                 lambda: accepted_run(api, "treatment_feed", TREATMENT[0]), deadline)
    staged = {"leadhub://staging/police", "leadhub://staging/treatment"}
    builds = cluster.wait_for("warehouse_build to take both feeds' staging events",
                              lambda: builds_settled(api, staged), deadline)
    assert {(r["run_type"], r["state"]) for r in builds} == {("asset_triggered", "success")}, builds

    # Which worker ran which task: the warehouse's host ran everything that opens the warehouse.
    ran = {}
    for dag_id, run in [("police_feed", police), ("treatment_feed", treatment),
                        *(("warehouse_build", b) for b in builds)]:
        for task_id, ti in task_instances(api, dag_id, run["dag_run_id"]).items():
            ran.setdefault((dag_id, task_id), set()).add((ti["state"], ti["queue"], ti["pool"], ti["hostname"]))
    on_warehouse = {("success", WAREHOUSE_QUEUE, WAREHOUSE_POOL, host_of(WAREHOUSE_QUEUE))}
    on_default = {("success", DEFAULT_QUEUE, "default_pool", host_of(DEFAULT_QUEUE))}
    assert ran == {
        ("police_feed", "restore_requested"): on_warehouse,
        ("police_feed", "ingest"): on_warehouse,
        ("police_feed", "check_quarantine"): on_default,
        ("treatment_feed", "restore_requested"): on_warehouse,
        ("treatment_feed", "ingest"): on_warehouse,
        ("treatment_feed", "check_quarantine"): on_default,
        ("warehouse_build", "build"): on_warehouse,
    }

    # Kill the warehouse worker while an ingest is inside its load transaction (no build meanwhile).
    set_paused(api, "warehouse_build", True)
    (hub.pause_dir / "arm").touch()
    deliver(settings, "police", *POLICE_SECOND)
    cluster.wait_for("the next police ingest to pause mid-load", (hub.pause_dir / "paused").exists, deadline,
                     every=0.2)
    [interrupted] = [r for r in api.runs("police_feed") if r["state"] == "running"]
    cluster.kill(f"worker-{WAREHOUSE_QUEUE}")
    # The host comes back at once: its new worker starts up while Airflow waits out the lost
    # task's heartbeat (Redis hands the dead worker's unacknowledged message to nobody for a day).
    cluster.start_worker(WAREHOUSE_QUEUE, {"LEADHUB_TEST_PAUSE_DIR": str(hub.pause_dir)})

    def retry_due() -> bool:
        ti = task_instances(api, "police_feed", interrupted["dag_run_id"])["ingest"]
        return ti["state"] == "up_for_retry" or ti["try_number"] > 1

    cluster.wait_for("Airflow to notice the lost worker and schedule a retry", retry_due, deadline)
    retried = cluster.wait_for("the retry to accept the delivery",
                               lambda: accepted_run(api, "police_feed", POLICE_SECOND[0]), deadline)
    assert retried["dag_run_id"] == interrupted["dag_run_id"]
    attempts = tries(api, "police_feed", retried["dag_run_id"], "ingest")
    assert [(t["try_number"], t["state"], t["hostname"]) for t in attempts] == [
        (1, "failed", host_of(WAREHOUSE_QUEUE)), (2, "success", host_of(WAREHOUSE_QUEUE))]

    # Loaded once: one ledger entry for the delivery (the first try's 'received' row, resumed), one
    # batch, and its two rows; the first delivery's two rows are untouched: 2 + 2 = 4 in all.
    with connect(settings.warehouse_path, read_only=True) as con:
        ledger = con.execute("SELECT status, row_count, batch_id FROM ops.file_ledger WHERE file_name = ?",
                             [POLICE_SECOND[0]]).fetchall()
        assert [(s, n) for s, n, _ in ledger] == [("accepted", 2)]
        batch = ledger[0][2]
        assert con.execute("SELECT count(*) FROM ops.batches WHERE batch_id = ?", [batch]).fetchone() == (1,)
        assert con.execute("SELECT count(*) FROM staging.police_referrals WHERE _batch_id = ?",
                           [batch]).fetchone() == (2,)
        assert con.execute("SELECT count(*) FROM staging.police_referrals").fetchone() == (4,)
    assert not (hub.pause_dir / "arm").exists() and (hub.pause_dir / "paused").exists()  # paused once only

    # No task left a process behind (intake's validation process ends with its task).
    cluster.wait_for("processes left behind by tasks to end", lambda: not cluster.strays(),
                     time.monotonic() + 30)
