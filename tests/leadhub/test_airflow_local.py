"""The Airflow configuration `leadhub airflow` runs with: sized to the machine, listening on 127.0.0.1 only.

Airflow itself reads the environment back (in a child process, as the
components would), so a misspelt option name fails here instead of being
silently ignored.
"""

from __future__ import annotations

import json
import socket
import subprocess
import sys

import pytest

from leadhub import airflow_local
from leadhub.core.errors import LeadHubError
from leadhub.core.settings import Settings

READ_BACK = """
import json, os, sys
from airflow.configuration import conf
from airflow.config_templates import __file__ as templates
import yaml
known = yaml.safe_load(open(os.path.join(os.path.dirname(templates), "config.yml")))
out = {}
for name in json.loads(sys.argv[1]):
    section, key = name[len("AIRFLOW__"):].lower().split("__", 1)
    out[name] = {"known": key in (known.get(section) or {}).get("options", {}),
                 "value": conf.get(section, key)}
print(json.dumps(out))
"""


def settings(tmp_path) -> Settings:
    return Settings(data_dir=tmp_path / "data", key_file=tmp_path / "keys" / "master.key")


def test_task_processes_follow_the_cores_with_at_least_two():
    # 2 cores -> 2 task processes (Airflow's default is 32); 1 core still gets 2; 8 cores get 8.
    assert airflow_local.machine_sizes(2)["AIRFLOW__CORE__PARALLELISM"] == "2"
    assert airflow_local.machine_sizes(1)["AIRFLOW__CORE__PARALLELISM"] == "2"
    sizes = airflow_local.machine_sizes(8)
    assert sizes["AIRFLOW__CORE__PARALLELISM"] == sizes["AIRFLOW__CORE__MAX_ACTIVE_TASKS_PER_DAG"] == "8"
    assert sizes["AIRFLOW__API__WORKERS"] == "1"


def test_airflow_reads_every_option_leadhub_airflow_sets(tmp_path, monkeypatch):
    monkeypatch.setattr(airflow_local.os, "cpu_count", lambda: 2)
    env = airflow_local.local_env(settings(tmp_path), 18080)
    names = sorted(k for k in env if k.startswith("AIRFLOW__"))
    done = subprocess.run([sys.executable, "-c", READ_BACK, json.dumps(names)], env=env,
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    seen = json.loads(done.stdout.strip().splitlines()[-1])
    assert [n for n in names if not seen[n]["known"]] == [], "options Airflow does not know"
    values = {n: seen[n]["value"] for n in names}
    assert values["AIRFLOW__CORE__PARALLELISM"] == "2"
    assert values["AIRFLOW__CORE__MAX_ACTIVE_TASKS_PER_DAG"] == "2"
    assert values["AIRFLOW__API__HOST"] == "127.0.0.1"
    assert values["AIRFLOW__API__PORT"] == "18080"
    assert values["AIRFLOW__SCHEDULER__ENABLE_HEALTH_CHECK"] == "False"
    assert values["AIRFLOW__SCHEDULER__SCHEDULER_HEALTH_CHECK_SERVER_HOST"] == "127.0.0.1"
    assert values["AIRFLOW__CORE__DAGS_ARE_PAUSED_AT_CREATION"] == "False"


def test_no_component_starts_a_log_server_that_binds_every_interface():
    # Airflow 3.3's log server listens on "" (all interfaces) with no option to narrow it:
    # the scheduler and triggerer, which would start one, are told not to.
    assert "--skip-serve-logs" in airflow_local.COMPONENTS["scheduler"]
    assert "--skip-serve-logs" in airflow_local.COMPONENTS["triggerer"]
    assert set(airflow_local.COMPONENTS) == {"api-server", "scheduler", "dag-processor", "triggerer"}
    assert next(iter(airflow_local.COMPONENTS)) == "api-server"  # tasks report to it: it starts first


def test_the_demo_writes_dags_into_the_metadata_db_unpaused(tmp_path):
    env = airflow_local.airflow_env(settings(tmp_path))
    assert env["AIRFLOW__CORE__DAGS_ARE_PAUSED_AT_CREATION"] == "False"


def test_a_port_in_use_is_refused_before_anything_starts(tmp_path):
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        with pytest.raises(LeadHubError, match=f"port {port} on 127.0.0.1 is in use"):
            airflow_local.run_local_airflow(settings(tmp_path), port)
    assert not (tmp_path / "data").exists()  # no metadata DB was made
