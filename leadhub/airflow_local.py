"""Run the pipeline through Airflow on one machine: the demo, and the DAG tests.

The same DAGs that run in production run here, one after the other, with
``dag.test()``: every ``<agency>_feed``, then ``warehouse_build``, then
``lead_report``. Airflow reads its configuration once, when it is first
imported, so the Airflow part runs in a child process (``python -m
leadhub.airflow_local``) whose environment is prepared here: a SQLite metadata
database in ``settings.airflow_home``, this repository's ``dags/`` folder, no
example DAGs, and the hub's own settings (data directory, key file).

``leadhub airflow`` runs Airflow's own components (scheduler, DAG processor,
triggerer, API server) on the same metadata database, listening on 127.0.0.1
only and sized to the machine's cores (``run_local_airflow``).

Airflow only ever sees the stages' summaries (file names, statuses, counts,
paths), so its database and logs hold no identifiers.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import signal
import socket
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
from contextlib import closing
from importlib.metadata import version
from pathlib import Path

from leadhub.core.deployment import WAREHOUSE_POOL, WAREHOUSE_POOL_DESCRIPTION, WAREHOUSE_POOL_SLOTS
from leadhub.core.errors import LeadHubError
from leadhub.core.settings import ENV_DATA_DIR, ENV_KEY_FILE, ENV_MAX_FILE_MB, Settings

log = logging.getLogger(__name__)

MIGRATED_STAMP = ".leadhub-db-migrated"
CHILD_LOG = "airflow-run.log"


def dags_folder() -> Path:
    """The installed ``dags`` package: the folder Airflow parses, here and in the image."""
    import dags

    # __path__, not __file__: an editable install made before dags/__init__.py
    # existed still imports the folder as a namespace package, without a file.
    return next(Path(p).resolve() for p in dags.__path__ if Path(p).is_dir())


def demo_dag_ids() -> list[str]:
    """The order the demo runs in: every feed, then the build, then the report."""
    from leadhub.core.contracts import agencies

    return [f"{a}_feed" for a in agencies()] + ["warehouse_build", "lead_report"]


def airflow_env(settings: Settings, dags_dir: Path | None = None) -> dict[str, str]:
    """The child's environment: inherited, minus any Airflow settings of the caller's shell."""
    home = Path(settings.airflow_home).resolve()
    env = {k: v for k, v in os.environ.items()
           if not (k.startswith("AIRFLOW__") or k in ("AIRFLOW_HOME", "AIRFLOW_CONFIG"))}
    env.update({
        "AIRFLOW_HOME": str(home),
        "AIRFLOW__CORE__DAGS_FOLDER": str(dags_dir or dags_folder()),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"sqlite:///{home / 'airflow.db'}",
        # The demo's dag.test() writes every DAG of the folder into the metadata DB; they must come
        # out as `leadhub airflow` runs them: unpaused (pull sources declared disabled stay paused).
        "AIRFLOW__CORE__DAGS_ARE_PAUSED_AT_CREATION": "False",
        ENV_DATA_DIR: str(settings.data_dir),
        ENV_KEY_FILE: str(settings.key_file),
        ENV_MAX_FILE_MB: str(settings.max_file_bytes // 1024**2),
    })
    return env


def migrate_metadata_db(settings: Settings) -> float | None:
    """Create or upgrade the SQLite metadata DB; skipped when this Airflow version already did it.

    Returns the seconds ``airflow db migrate`` took, or None when it was skipped.
    """
    home = Path(settings.airflow_home)
    stamp = home / MIGRATED_STAMP
    airflow_version = version("apache-airflow-core")
    if (home / "airflow.db").exists() and stamp.exists() and stamp.read_text().strip() == airflow_version:
        return None
    home.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    done = subprocess.run([sys.executable, "-m", "airflow", "db", "migrate"], env=airflow_env(settings),
                          stdin=subprocess.DEVNULL, capture_output=True, text=True)
    if done.returncode != 0:
        last = (done.stderr.strip() or done.stdout.strip() or "no output").splitlines()[-1]
        raise LeadHubError(f"airflow db migrate failed in {home}: {last}")
    stamp.write_text(airflow_version + "\n")
    return time.perf_counter() - started


# Airflow's components for one steward's machine, each as `airflow <args>`. Their log servers are
# off: Airflow binds them to every interface with no setting to narrow it, and on one machine the
# API server reads task logs from the local log folder anyway. The API server comes first and goes
# last: running tasks report to it, and a task started before it listens fails.
COMPONENTS = {
    "api-server": ["api-server"],  # host and port from [api] in local_env
    "scheduler": ["scheduler", "--skip-serve-logs"],
    "dag-processor": ["dag-processor"],
    "triggerer": ["triggerer", "--skip-serve-logs"],
}
LOCALHOST = "127.0.0.1"
STOP_GRACE_SECONDS = 20
API_START_SECONDS = 180


def machine_sizes(cores: int | None = None) -> dict[str, str]:
    """Airflow's pool sizes for this machine: one task process per core (at least two).

    Airflow's defaults (32 task processes, 4 API server workers, 2 parsers) are
    sized for a server; on a steward's 2-core machine they only compete for the
    same cores, and every warehouse task waits for the one-slot pool anyway.
    """
    tasks = max(2, cores or os.cpu_count() or 2)
    return {
        "AIRFLOW__CORE__PARALLELISM": str(tasks),
        "AIRFLOW__CORE__MAX_ACTIVE_TASKS_PER_DAG": str(tasks),
        "AIRFLOW__API__WORKERS": "1",
        "AIRFLOW__DAG_PROCESSOR__PARSING_PROCESSES": "1",
    }


def local_env(settings: Settings, port: int) -> dict[str, str]:
    """Airflow's components on 127.0.0.1, sized for one steward's machine (not a deployment)."""
    env = airflow_env(settings)
    env.update(machine_sizes())
    env.update({
        "AIRFLOW__CORE__EXECUTOR": "LocalExecutor",
        "AIRFLOW__CORE__AUTH_MANAGER":
            "airflow.api_fastapi.auth.managers.simple.simple_auth_manager.SimpleAuthManager",
        "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS": "steward:admin",
        "AIRFLOW__API__HOST": LOCALHOST,
        "AIRFLOW__API__PORT": str(port),
        "AIRFLOW__CORE__EXECUTION_API_SERVER_URL": f"http://{LOCALHOST}:{port}/execution/",
        "AIRFLOW__API_AUTH__JWT_SECRET": os.urandom(32).hex(),
        "AIRFLOW__SCHEDULER__ENABLE_HEALTH_CHECK": "False",
        "AIRFLOW__SCHEDULER__SCHEDULER_HEALTH_CHECK_SERVER_HOST": LOCALHOST,
        # Anything Airflow starts as `airflow ...` from PATH is this interpreter's.
        "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}",
    })
    return env


def paused_dags(settings: Settings) -> list[str]:
    """DAGs the metadata DB holds paused (a steward's choice, or a disabled pull source)."""
    db = Path(settings.airflow_home) / "airflow.db"
    if not db.exists():
        return []
    try:
        with closing(sqlite3.connect(f"file:{db}?mode=ro", uri=True)) as con:
            return [r[0] for r in con.execute("SELECT dag_id FROM dag WHERE is_paused ORDER BY dag_id")]
    except sqlite3.Error:  # not migrated yet, or busy: the note is only a courtesy
        return []


def run_local_airflow(settings: Settings, port: int = 8080) -> None:
    """Migrate, create the warehouse pool, then run Airflow's components until one stops or Ctrl-C.

    Each component's output is printed with its name in front. When one exits
    on its own, the others are stopped and LeadHubError names it; Ctrl-C or
    SIGTERM stops them all (SIGTERM first, SIGKILL after a grace period).
    """
    if _listening(port):  # else the wait below would take another program for the API server
        raise LeadHubError(f"port {port} on {LOCALHOST} is in use; choose another with --port")
    migrate_metadata_db(settings)
    env = local_env(settings, port)
    done = subprocess.run([sys.executable, "-m", "airflow", "pools", "set", WAREHOUSE_POOL,
                           str(WAREHOUSE_POOL_SLOTS), WAREHOUSE_POOL_DESCRIPTION],
                          env=env, stdin=subprocess.DEVNULL, capture_output=True, text=True)
    if done.returncode != 0:
        raise LeadHubError(f"could not create the {WAREHOUSE_POOL} pool: "
                           f"{(done.stderr.strip() or 'no output').splitlines()[-1]}")
    paused = paused_dags(settings)
    if paused:
        print(f"paused (they run only once unpaused in the UI): {', '.join(paused)}", flush=True)
    previous = signal.signal(signal.SIGTERM, _raise_interrupt)
    processes: dict[str, subprocess.Popen] = {}
    try:
        for name, args in COMPONENTS.items():
            processes[name] = subprocess.Popen([sys.executable, "-m", "airflow", *args], env=env,
                                               stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                               stderr=subprocess.STDOUT)
            threading.Thread(target=_echo, args=(name, processes[name].stdout), daemon=True).start()
            if name == "api-server":
                _wait_for_port(port, processes)
        while True:
            _check_running(processes)
            time.sleep(0.5)
    except KeyboardInterrupt:
        print("stopping Airflow's components ...", flush=True)
    finally:
        signal.signal(signal.SIGTERM, previous)
        _stop(list(processes.values()))


def _raise_interrupt(signum, frame) -> None:
    raise KeyboardInterrupt


def _check_running(processes: dict[str, subprocess.Popen]) -> None:
    for name, process in processes.items():
        if process.poll() is not None:
            raise LeadHubError(f"Airflow's {name} exited with code {process.returncode} (its output is "
                               "above); the other components were stopped")


def _listening(port: int) -> bool:
    with socket.socket() as s:
        return s.connect_ex((LOCALHOST, port)) == 0


def _wait_for_port(port: int, processes: dict[str, subprocess.Popen]) -> None:
    deadline = time.monotonic() + API_START_SECONDS
    while time.monotonic() < deadline:
        _check_running(processes)
        if _listening(port):
            return
        time.sleep(0.5)
    raise LeadHubError(f"Airflow's API server did not listen on {LOCALHOST}:{port} within "
                       f"{API_START_SECONDS} s (its output is above)")


def _echo(name: str, stream) -> None:
    for line in iter(stream.readline, b""):
        print(f"{name:<13} | {line.decode(errors='replace').rstrip()}", flush=True)


def _stop(processes: list[subprocess.Popen]) -> None:
    """SIGTERM the components, the API server last; SIGKILL what outlives the grace period.

    A component's task processes (the executor's workers and the tasks they
    start in sessions of their own) are killed with it, so none is left behind.
    """
    import psutil  # an Airflow dependency

    for group in (processes[1:], processes[:1]):
        running = [p for p in group if p.poll() is None]
        family = []
        for p in running:
            try:
                family += psutil.Process(p.pid).children(recursive=True)
            except psutil.NoSuchProcess:
                pass
            p.terminate()
        deadline = time.monotonic() + STOP_GRACE_SECONDS
        for p in running:
            try:
                p.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()
        for child in family:
            try:
                child.kill()
            except psutil.NoSuchProcess:
                pass


def run_demo_dags(settings: Settings, dag_ids: list[str] | None = None,
                  timeout: float | None = 3600, dags_dir: Path | None = None,
                  conf: dict[str, dict] | None = None, keep_retries: bool = False) -> dict[str, dict]:
    """Run the DAGs through Airflow in order and return, per DAG, its state, task states and XComs.

    Each value is {"state", "tasks": {task_id: state}, "xcom": {task_id: return value},
    "tries": {task_id: attempts}, "asset_events": [URIs of the asset events the run emitted],
    "seconds", "reason"}. Stops at the first DAG that does not succeed and raises
    LeadHubError naming it and its failed task: later DAGs would only build on
    incomplete data. The child's Airflow output goes to ``<airflow_home>/airflow-run.log``.
    ``dags_dir`` replaces the repository's DAG folder (tests use it). ``conf`` maps
    a DAG id to its run parameters, as "Trigger DAG w/ config" would pass them.
    Retries are switched off (a demo should fail at once and say why) unless
    ``keep_retries`` is set, as tests of retry behaviour do.
    """
    dag_ids = dag_ids or demo_dag_ids()
    settings.ensure_dirs()
    home = Path(settings.airflow_home)
    migrated = migrate_metadata_db(settings)
    if migrated is not None:
        log.info("airflow db migrate took %.1f s", migrated)
    child_log = home / CHILD_LOG
    with tempfile.TemporaryDirectory(prefix="leadhub-airflow-") as tmp:
        result_file = Path(tmp) / "result.json"
        cmd = [sys.executable, "-m", "leadhub.airflow_local", "--result", str(result_file),
               "--conf", json.dumps(conf or {}), *(["--keep-retries"] if keep_retries else []), *dag_ids]
        with child_log.open("w") as out:
            try:
                done = subprocess.run(cmd, env=airflow_env(settings, dags_dir), stdin=subprocess.DEVNULL,
                                      stdout=out, stderr=subprocess.STDOUT, timeout=timeout)
            except subprocess.TimeoutExpired:
                raise LeadHubError(f"Airflow run did not finish within {timeout:.0f} s; see {child_log}") from None
        if not result_file.exists():
            raise LeadHubError(f"Airflow run exited {done.returncode} before reporting; see {child_log}")
        result = json.loads(result_file.read_text())
    if result.get("error"):
        raise LeadHubError(f"{result['error']}; see {child_log}")
    runs = result["dags"]
    for dag_id, run in runs.items():
        if run["state"] != "success":
            failed = ([t for t, s in run["tasks"].items() if s == "failed"]
                      or [t for t, s in run["tasks"].items() if s != "success"] or ["(none)"])
            reason = f": {run['reason']}" if run.get("reason") else ""
            raise LeadHubError(f"DAG {dag_id} ended {run['state']} at task {', '.join(failed)}"
                               f"{reason}; see {child_log}")
    return runs


# --- the child process: everything below runs with Airflow configured for settings.airflow_home ---

class _FailureLines(logging.Handler):
    """Keeps the one-line failure reasons dags/_common.log_failure writes, for the parent's error."""

    def __init__(self) -> None:
        super().__init__(logging.ERROR)
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(getattr(record, "leadhub_reason", record.getMessage()))


def _run_in_airflow(dag_ids: list[str], conf: dict[str, dict] | None = None, keep_retries: bool = False) -> dict:
    from airflow import settings as airflow_settings
    from airflow.dag_processing.dagbag import DagBag
    from airflow.models.asset import AssetDagRunQueue, AssetEvent
    from airflow.models.pool import Pool
    from airflow.models.xcom import XComModel
    from airflow.utils.session import create_session
    from sqlalchemy import delete, select

    Pool.create_or_update_pool(WAREHOUSE_POOL, slots=WAREHOUSE_POOL_SLOTS, include_deferred=False,
                               description=WAREHOUSE_POOL_DESCRIPTION)
    bag = DagBag(dag_folder=airflow_settings.DAGS_FOLDER)
    if bag.import_errors:
        first = next(iter(bag.import_errors.items()))
        return {"error": f"DAG folder has import errors: {first[0]}: {first[1].strip().splitlines()[-1]}"}
    missing = [d for d in dag_ids if d not in bag.dags]
    if missing:
        return {"error": f"no such DAG(s): {', '.join(missing)}"}

    failures = _FailureLines()
    logging.getLogger("leadhub.dags").addHandler(failures)
    runs: dict[str, dict] = {}
    for dag_id in dag_ids:
        dag = bag.dags[dag_id]
        if not keep_retries:
            for task in dag.tasks:
                task.retries = 0  # retries wait minutes; a demo should fail at once and say why
        failures.lines.clear()
        started = time.perf_counter()
        dagrun = dag.test(run_conf=(conf or {}).get(dag_id))
        seconds = round(time.perf_counter() - started, 2)
        with create_session() as session:
            tis = dagrun.get_task_instances(session=session)
            rows = session.scalars(XComModel.get_many(run_id=dagrun.run_id, dag_ids=dag_id,
                                                      key="return_value")).all()
            xcom = {row.task_id: XComModel.deserialize_value(row) for row in rows}
            events = session.scalars(select(AssetEvent).where(AssetEvent.source_dag_id == dag_id,
                                                              AssetEvent.source_run_id == dagrun.run_id)).all()
            asset_events = sorted(event.uri for event in events)
            # This run took everything the asset events queued for it so far (e.g. the build after
            # the demo's feeds); left queued, they would start the same run again under the scheduler.
            session.execute(delete(AssetDagRunQueue).where(AssetDagRunQueue.target_dag_id == dag_id))
        runs[dag_id] = {
            "state": str(dagrun.state),
            "tasks": {ti.task_id: str(ti.state) for ti in tis},
            "tries": {ti.task_id: ti.try_number for ti in tis},
            "xcom": xcom,
            "asset_events": asset_events,
            "seconds": seconds,
            "reason": "; ".join(failures.lines),
        }
        if dagrun.state != "success":
            break
    return {"dags": runs}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--result", required=True, type=Path, help="where to write the JSON result")
    parser.add_argument("--conf", type=json.loads, default={}, help="JSON: DAG id -> run parameters")
    parser.add_argument("--keep-retries", action="store_true", help="keep the tasks' retries")
    parser.add_argument("dag_ids", nargs="+")
    args = parser.parse_args(argv)
    if "AIRFLOW_HOME" not in os.environ:
        parser.error("run through leadhub.airflow_local.run_demo_dags, which prepares Airflow's environment")
    result = _run_in_airflow(args.dag_ids, args.conf, args.keep_retries)
    args.result.write_text(json.dumps(result, indent=2, default=str))
    return 0


if __name__ == "__main__":
    sys.exit(main())
