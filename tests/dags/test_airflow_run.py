"""The DAGs run through real Airflow (``dag.test()`` in a child process, SQLite metadata DB).

The metadata DB is migrated once per session and shared; every test has its
own data directory and key. Each run costs a few seconds (the child imports
Airflow and starts its in-process execution API). The demo's run of every DAG
is tests/test_end_to_end.py's.
"""

from __future__ import annotations

import os
import re
import sqlite3
import textwrap

import duckdb
import pytest

from leadhub.airflow_local import CHILD_LOG, migrate_metadata_db, run_demo_dags
from leadhub.core.errors import LeadHubError
from leadhub.core.keys import create_key_file
from leadhub.core.settings import Settings

CLIENTS = ("client_id,last_name,first_name,dob,ssn,phone,address,sex,consent_status,consent_date\n"
           "C00001,Zebediah,Quill,1980-02-03,123-45-6780,206-555-0100,1 Main St,M,active,2022-01-05\n"
           "C00002,Okonkwo,Ada,1975-11-30,,206-555-0101,Shelter A,F,revoked,2022-03-01\n")
RAW_IDENTIFIERS = (b"Zebediah", b"Okonkwo", b"123-45-6780", b"1980-02-03", b"C00001", b"206-555-0100")


@pytest.fixture(scope="session")
def shared_airflow_home(tmp_path_factory):
    return tmp_path_factory.mktemp("airflow_home")


@pytest.fixture
def hub(settings, shared_airflow_home, monkeypatch) -> Settings:
    monkeypatch.setenv("AIRFLOW_HOME", str(shared_airflow_home))
    return Settings.from_env()


def drop(settings: Settings, agency: str, name: str, text: str) -> None:
    path = settings.inbox(agency) / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    os.utime(path, (1, 1))  # old enough to count as a complete delivery


def asset_events(settings: Settings) -> list[tuple[str, str]]:
    db = sqlite3.connect(f"file:{settings.airflow_home / 'airflow.db'}?mode=ro", uri=True)
    try:
        return db.execute("SELECT a.uri, e.source_dag_id FROM asset_event e "
                          "JOIN asset a ON a.id = e.asset_id ORDER BY e.id").fetchall()
    finally:
        db.close()


@pytest.fixture(scope="module")
def clients_delivered(shared_airflow_home, tmp_path_factory):
    """police_feed on an empty police inbox, then CLIENTS taken through treatment_feed,
    warehouse_build and lead_report, in one Airflow run, for the tests that read the result or
    carry on from it: (settings, runs, the bytes of that run's child log)."""
    root = tmp_path_factory.mktemp("clients_delivered")
    with pytest.MonkeyPatch.context() as env:
        env.setenv("LEADHUB_DATA_DIR", str(root / "data"))
        env.setenv("LEADHUB_KEY_FILE", str(root / "keys" / "master.key"))
        env.setenv("AIRFLOW_HOME", str(shared_airflow_home))
        settings = Settings.from_env()
        create_key_file(settings.key_file)
        settings.ensure_dirs()
        drop(settings, "treatment", "treatment_clients_20240101.csv", CLIENTS)
        runs = run_demo_dags(settings, ["police_feed", "treatment_feed", "warehouse_build", "lead_report"])
        return settings, runs, (settings.airflow_home / CHILD_LOG).read_bytes()


@pytest.fixture
def delivered(clients_delivered, shared_airflow_home, monkeypatch):
    """``clients_delivered``, with Airflow's home in the environment as its run had it."""
    monkeypatch.setenv("AIRFLOW_HOME", str(shared_airflow_home))
    return clients_delivered


def test_feed_with_an_empty_inbox_succeeds_with_an_empty_summary(delivered):
    hub, runs, _ = delivered
    assert runs["police_feed"]["state"] == "success"
    assert runs["police_feed"]["tasks"] == {"restore_requested": "success", "ingest": "success",
                                            "check_quarantine": "success"}
    assert runs["police_feed"]["xcom"] == {"restore_requested": [], "ingest": []}
    assert runs["police_feed"]["asset_events"] == []  # nothing accepted
    assert ("leadhub://staging/police", "police_feed") not in asset_events(hub)
    with sqlite3.connect(hub.airflow_home / "airflow.db") as db:
        assert db.execute("SELECT slots FROM slot_pool WHERE pool = 'leadhub_warehouse'").fetchall() == [(1,)]
    assert migrate_metadata_db(hub) is None  # the next run skips the migration


def test_accepted_file_reaches_the_warehouse_and_airflow_sees_no_identifier(delivered):
    hub, runs, child_log = delivered

    assert {d: r["state"] for d, r in runs.items()} == dict.fromkeys(runs, "success")
    [summary] = runs["treatment_feed"]["xcom"]["ingest"]
    assert (summary["file"], summary["status"], summary["rows"]) == ("treatment_clients_20240101.csv",
                                                                     "accepted", 2)
    assert ("leadhub://staging/treatment", "treatment_feed") in asset_events(hub)
    # Table counts and the linkage model id; one person: C00002 revoked Part 2 consent, so is not linked.
    counts = runs["warehouse_build"]["xcom"]["build"]
    assert counts["link.persons"] == 1 and all(isinstance(n, int) for k, n in counts.items() if k.startswith("core."))
    assert runs["lead_report"]["xcom"]["report"]
    with duckdb.connect(str(hub.warehouse_path), read_only=True) as con:
        assert con.execute("SELECT count(*) FROM staging.treatment_clients").fetchone() == (2,)

    # The run's own log, and everything in Airflow's home (its metadata DB, its task logs).
    assert b"treatment_clients_20240101.csv" in child_log
    assert not [raw for raw in RAW_IDENTIFIERS if raw in child_log]
    airflow_files = [p for p in hub.airflow_home.rglob("*") if p.is_file()]
    assert hub.airflow_home / "airflow.db" in airflow_files and hub.airflow_home / CHILD_LOG in airflow_files
    for path in airflow_files:
        data = path.read_bytes()
        assert not [raw for raw in RAW_IDENTIFIERS if raw in data], path


def test_quarantined_file_fails_check_quarantine_naming_agency_file_and_rule(hub):
    drop(hub, "police", "police_unexpected_20240101.csv", "a,b\n1,2\n")
    with pytest.raises(LeadHubError) as caught:
        run_demo_dags(hub, ["police_feed", "warehouse_build"])
    message = str(caught.value)
    assert "police_feed" in message and "check_quarantine" in message
    assert "agency=police" in message and "file=police_unexpected_20240101.csv" in message
    assert "rule=unknown_file_name" in message
    assert "warehouse_build" not in message  # the run stopped at the failed feed
    assert list((hub.quarantine_dir / "police").glob("*police_unexpected_20240101.csv"))  # kept, not lost


def test_stage_errors_that_may_quote_data_are_withheld_from_airflow(hub, tmp_path):
    dags_dir = tmp_path / "dags"
    dags_dir.mkdir()
    (dags_dir / "leaky.py").write_text(textwrap.dedent('''
        from airflow.sdk import dag, task
        from dags._common import START_DATE, default_args, run_stage

        def stage():
            raise ValueError("cannot parse 'Zebediah Quill' born 1980-02-03")

        @dag(dag_id="leaky", schedule=None, start_date=START_DATE, default_args=default_args("police"))
        def leaky():
            @task
            def ingest():
                return run_stage("police ingest", stage)
            ingest()

        leaky()
    '''))
    with pytest.raises(LeadHubError, match="police ingest failed with ValueError; its message is withheld"):
        run_demo_dags(hub, ["leaky"], dags_dir=dags_dir)
    log = (hub.airflow_home / CHILD_LOG).read_bytes()
    assert b"withheld" in log
    assert b"Zebediah" not in log and b"1980-02-03" not in log


def test_pull_dag_delivers_into_the_inbox_and_a_backfill_never_loads_twice(hub, tmp_path, monkeypatch):
    """A SQL pull source declared in a YAML file gets its DAG; here the agency system is a SQLite file."""
    sources = tmp_path / "sources"
    sources.mkdir()
    (sources / "clinic_db.yaml").write_text(textwrap.dedent("""
        kind: sql
        agency: treatment
        extract: contacts
        url_env: LEADHUB_TEST_CLINIC_URL
        table: contacts
        high_water_mark: {column: row_version, type: integer}
        key: [contact_id]
        schedule: "@daily"
    """))
    with sqlite3.connect(tmp_path / "clinic.db") as db:
        db.execute("CREATE TABLE contacts (contact_id TEXT, client_id TEXT, contact_date TEXT, service_type TEXT, "
                   "row_version INT)")
        db.executemany("INSERT INTO contacts VALUES (?,?,?,?,?)", [
            ("K1", "C00001", "2024-01-03", "housing", 1), ("K2", "C00002", "2024-01-04", "case_management", 2)])
    monkeypatch.setenv("LEADHUB_SOURCES_DIR", str(sources))
    monkeypatch.setenv("LEADHUB_TEST_CLINIC_URL", f"sqlite:///{tmp_path / 'clinic.db'}")

    runs = run_demo_dags(hub, ["pull_clinic_db", "treatment_feed"])
    pulled = runs["pull_clinic_db"]["xcom"]["pull"]
    assert (pulled["files"], pulled["rows"], pulled["reset"]) == (["treatment_contacts_start_2.csv"], 2, None)
    assert runs["pull_clinic_db"]["asset_events"] == ["leadhub://inbox/treatment"]  # starts the feed at once
    assert [(s["file"], s["status"]) for s in runs["treatment_feed"]["xcom"]["ingest"]] == [
        ("treatment_contacts_start_2.csv", "accepted")]

    runs = run_demo_dags(hub, ["pull_clinic_db", "treatment_feed"],
                         conf={"pull_clinic_db": {"backfill_from": "1"}})
    pulled = runs["pull_clinic_db"]["xcom"]["pull"]
    assert pulled["reset"] == {"source": "clinic_db", "kind": "sql", "previous_mark": 2, "mark": 0}
    assert pulled["rows"] == 2
    assert [s["status"] for s in runs["treatment_feed"]["xcom"]["ingest"]] == ["duplicate"]
    with duckdb.connect(str(hub.warehouse_path), read_only=True) as con:
        assert con.execute("SELECT count(*) FROM staging.treatment_contacts").fetchone() == (2,)


def test_maintenance_fails_naming_every_stale_feed_by_agency_and_extract(delivered):
    hub, _, _ = delivered  # the treatment clients were delivered just now, the other extracts never
    with pytest.raises(LeadHubError) as caught:
        run_demo_dags(hub, ["leadhub_maintenance"], conf={"leadhub_maintenance": {"dry_run": True}})
    message = str(caught.value)
    assert "leadhub_maintenance ended failed at task check_staleness" in message
    assert "agency=jail extract=bookings" in message and "agency=police extract=arrests" in message
    assert "agency=treatment extract=clients" not in message  # delivered just now
    # The other tasks still ran; retention (a dry run) logged what it would remove and keep: the one
    # archived delivery was received just now, well within the agreement's period, so nothing.
    logged = (hub.airflow_home / CHILD_LOG).read_text()
    assert re.search(r"treatment: retention 2555 days \(agreement [^)]+\); past it: received before ", logged)
    assert re.search(r"would expire 0 batches \(0 rows\); would delete 0 files .*; would keep 1 received "
                     r"within retention", logged), logged[-3000:]


KILLED_AFTER_COMMIT = '''
"""The real treatment feed DAG, whose first ingest attempt dies after its load committed.

(Airflow parses only files that mention both "airflow" and "dag".) The file may be
imported more than once, so the patch is installed once and the "already died"
mark is a file, not a module variable.
"""
import pathlib
from datetime import timedelta

from dags.feeds import feed_dag

DIED = pathlib.Path(__file__).with_name("died-once")

if not hasattr(pathlib.Path, "_unlink_before_test"):
    pathlib.Path._unlink_before_test = pathlib.Path.unlink

    def unlink_or_die(self, *args, **kwargs):
        # The intake removes a delivery from the inbox only after its transaction committed;
        # failing here on the first attempt is a worker killed at the worst moment.
        if self.parent.name == "treatment" and self.parent.parent.name == "inbox" and not DIED.exists():
            DIED.touch()
            raise OSError("worker lost")
        return pathlib.Path._unlink_before_test(self, *args, **kwargs)

    pathlib.Path.unlink = unlink_or_die

treatment_feed = feed_dag("treatment")
for _task in treatment_feed.tasks:
    _task.retry_delay = timedelta(seconds=1)
'''


def test_a_killed_ingest_and_a_reprocess_by_parameter_never_load_a_file_twice(hub, tmp_path):
    dags_dir = tmp_path / "dags"
    dags_dir.mkdir()
    (dags_dir / "killed_feed.py").write_text(KILLED_AFTER_COMMIT)
    drop(hub, "treatment", "treatment_clients_20240101.csv", CLIENTS)
    run = run_demo_dags(hub, ["treatment_feed"], dags_dir=dags_dir, keep_retries=True)["treatment_feed"]
    assert (dags_dir / "died-once").exists()
    assert run["state"] == "success" and run["tries"]["ingest"] == 2
    # The retry found the committed file still in the inbox and recognised it.
    assert [s["status"] for s in run["xcom"]["ingest"]] == ["duplicate"]
    assert run["asset_events"] == []  # the killed attempt emitted nothing, the retry loaded nothing
    with duckdb.connect(str(hub.warehouse_path), read_only=True) as con:
        [(file_id,)] = con.execute("SELECT file_id FROM ops.file_ledger WHERE status = 'accepted'").fetchall()

    # The steward re-processes the loaded entry from "Trigger DAG" with parameters.
    run = run_demo_dags(hub, ["treatment_feed"], conf={"treatment_feed": {"file_id": file_id}})["treatment_feed"]
    assert run["state"] == "success"
    [restored] = run["xcom"]["restore_requested"]
    assert (restored["file_id"], restored["file"], restored["status_before"]) == (
        file_id, "treatment_clients_20240101.csv", "accepted")
    assert [s["status"] for s in run["xcom"]["ingest"]] == ["duplicate"]
    assert run["asset_events"] == []

    with duckdb.connect(str(hub.warehouse_path), read_only=True) as con:
        assert con.execute("SELECT count(*) FROM staging.treatment_clients").fetchone() == (2,)
        assert con.execute("SELECT count(*) FROM ops.batches").fetchone() == (1,)
        assert con.execute("SELECT status FROM ops.file_ledger ORDER BY received_at").fetchall() == [
            ("accepted",), ("duplicate",), ("duplicate",)]  # every delivery recorded, the first one loaded
    assert not list(hub.inbox("treatment").iterdir())
