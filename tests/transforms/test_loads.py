"""Loads that cannot corrupt: reruns change nothing, killed loads leave the previous state,
full-history deletions stay visible, and schemas are migrated by the hub.

Intake and build run as separate `leadhub` processes that are killed with SIGKILL
at random points; the warehouse is then compared with a run that was never
interrupted. Comparisons leave out what legitimately differs between two runs
(batch and file ids, which embed the receipt time, and timestamps).
"""

from __future__ import annotations

import csv
import hashlib
import random
import signal
import subprocess
import sys
import time
from datetime import date
from pathlib import Path

import duckdb
import pytest

from leadhub.core.errors import LeadHubError
from leadhub.core.warehouse import MIGRATIONS, OPS_DDL, SCHEMA_VERSION, migrate
from leadhub.pipeline import build as build_warehouse
from transforms.publish import snapshot_path

RUN_SPECIFIC = {"_batch_id", "batch_id", "last_batch_id", "changed_by_batch_id", "file_id",
                "received_at", "loaded_at", "validated_at", "updated_at", "applied_at",
                "changed_at", "published_at", "archive_path", "reason", "key_id",
                "data_received_until", "validated_on", "file_name_enc"}
KILLS = 3


def fingerprint(path: Path, schemas: tuple[str, ...]) -> dict[str, str]:
    """{'schema.table': digest of its sorted rows}, without run-specific columns.

    The ledger keeps its 'received' rows out: intake records a file as received
    (archived, durable) before its load transaction, by design, so a killed run
    may leave one behind for the next run to resume.
    """
    out = {}
    con = duckdb.connect(str(path), read_only=True)
    try:
        tables = con.execute("""SELECT schema_name, table_name FROM duckdb_tables()
            WHERE database_name = current_database() AND schema_name IN ?
              AND table_name NOT IN ('schema_version', 'snapshot_info')""", [list(schemas)]).fetchall()
        for schema, table in tables:
            columns = [c for (c,) in con.execute("""SELECT column_name FROM duckdb_columns()
                WHERE database_name = current_database() AND schema_name = ? AND table_name = ?
                ORDER BY column_index""", [schema, table]).fetchall() if c not in RUN_SPECIFIC]
            where = "WHERE status <> 'received'" if (schema, table) == ("ops", "file_ledger") else ""
            select = ", ".join(f'"{c}"' for c in columns)
            rows = sorted(repr(r) for r in con.execute(f'SELECT {select} FROM {schema}."{table}" {where}').fetchall())
            out[f"{schema}.{table}"] = hashlib.sha256("\n".join(rows).encode()).hexdigest()
    finally:
        con.close()
    return out


def warehouse_state(settings) -> dict[str, str]:
    return fingerprint(settings.warehouse_path, ("staging", "ops", "core", "marts"))


def big_arrests_delivery(demo_files: Path, target_dir: Path, copies: int = 4) -> Path:
    """A large incremental arrests file: the first delivery's rows, several times, with new ids."""
    source = next((demo_files / "inbox" / "police").glob("police_arrests_*.csv"))
    with open(source, newline="", encoding="utf-8") as f:
        reader = csv.DictReader(f)
        header, rows = reader.fieldnames, list(reader)
    target = target_dir / "police" / "police_arrests_20250131.csv"
    target.parent.mkdir(parents=True, exist_ok=True)
    with open(target, "w", newline="", encoding="utf-8") as f:
        writer = csv.DictWriter(f, fieldnames=header)
        writer.writeheader()
        for k in range(copies):
            for row in rows:
                writer.writerow({**row, "arrest_id": f"B{k}{row['arrest_id'][1:]}"})
    return target


def differing(state: dict[str, str], *expected: dict[str, str]) -> list[str]:
    """Tables of ``state`` that match none of the expected states, for the failure message."""
    return sorted(t for t in set(state).union(*expected) if all(state.get(t) != e.get(t) for e in expected))


def run_cli(settings, tools, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "leadhub.cli", *args], env=tools.hub_env(settings),
                          capture_output=True, text=True, timeout=600)


def kill_at(settings, tools, delay: float, *args: str) -> int | None:
    """Start `leadhub <args>`, SIGKILL it after ``delay`` seconds; its exit code if it finished first."""
    proc = subprocess.Popen([sys.executable, "-m", "leadhub.cli", *args], env=tools.hub_env(settings),
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        return proc.wait(timeout=delay)
    except subprocess.TimeoutExpired:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        return None


# ---------------------------------------------------------------- reruns change nothing

def test_building_twice_gives_identical_tables_and_snapshot(demo_hub, tools, tmp_path):
    hub = tools.clone_hub(demo_hub, tmp_path / "hub")
    first = warehouse_state(hub)
    published = fingerprint(snapshot_path(hub), ("core", "marts", "ops"))
    build_warehouse(hub)
    assert warehouse_state(hub) == first
    assert fingerprint(snapshot_path(hub), ("core", "marts", "ops")) == published
    # Run-specific columns aside, the comparison is exact: the person keys survive too.
    con = duckdb.connect(str(hub.warehouse_path), read_only=True)
    try:
        assert con.execute("SELECT count(*) FROM core.person_link").fetchone()[0] > 500
    finally:
        con.close()


def test_resending_every_file_is_recorded_and_changes_nothing(demo_hub, demo_files, tools, tmp_path):
    hub = tools.clone_hub(demo_hub, tmp_path / "hub")
    before = warehouse_state(hub)
    tools.drop(hub, sorted((demo_files / "inbox").glob("*/*.csv")))
    outcomes = tools.ingest_all(hub)
    assert len(outcomes) == 8 and {o["status"] for o in outcomes} == {"duplicate"}
    build_warehouse(hub)
    after = warehouse_state(hub)
    assert after.pop("ops.file_ledger") != before.pop("ops.file_ledger")   # 7 duplicate rows added
    assert after == before
    con = duckdb.connect(str(hub.warehouse_path), read_only=True)
    try:
        assert con.execute("SELECT status, count(*) FROM ops.file_ledger GROUP BY ALL ORDER BY 1"
                           ).fetchall() == [("accepted", 8), ("duplicate", 8)]
    finally:
        con.close()


# ---------------------------------------------------------------- killed loads

def test_a_killed_ingest_leaves_the_previous_state(demo_hub, demo_files, tools, tmp_path):
    big = big_arrests_delivery(demo_files, tmp_path / "delivery")
    # The uninterrupted run, for comparison and to time the kill points.
    clean = tools.clone_hub(demo_hub, tmp_path / "clean")
    tools.drop(clean, [big])
    started = time.monotonic()
    done = run_cli(clean, tools, "ingest", "--agency", "police")
    duration = time.monotonic() - started
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    loaded = warehouse_state(clean)

    previous = warehouse_state(demo_hub)
    assert loaded != previous
    rng = random.Random(20241231)
    seen = []
    for trial in range(KILLS):
        # Each trial starts again from the previous state, so every kill point is a fresh try.
        hub = tools.clone_hub(demo_hub, tmp_path / f"hub{trial}")
        tools.drop(hub, [big])
        code = kill_at(hub, tools, rng.uniform(0.4, 1.0) * duration, "ingest", "--agency", "police")
        state = warehouse_state(hub)
        assert state in (previous, loaded), \
            f"killed ingest left a third state (exit {code}): {differing(state, previous, loaded)}"
        seen.append("previous" if state == previous else "loaded")
        # The file is still in the inbox unless it was loaded; the next run finishes the job.
        outcomes = tools.ingest_all(hub)
        assert {o["status"] for o in outcomes} <= {"accepted"}
        assert warehouse_state(hub) == loaded, seen
    print(f"ingest killed {KILLS} times; state right after each kill: {seen}")


def test_a_killed_build_leaves_the_previous_build(demo_hub, demo_files, tools, tmp_path):
    new_file = tools.extra_referrals(demo_files, tmp_path / "delivery")
    clean = tools.clone_hub(demo_hub, tmp_path / "clean")
    tools.drop(clean, [new_file])
    tools.ingest_all(clean)
    started = time.monotonic()
    done = run_cli(clean, tools, "build")
    duration = time.monotonic() - started
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    built, published = warehouse_state(clean), fingerprint(snapshot_path(clean), ("core", "marts"))

    hub = tools.clone_hub(demo_hub, tmp_path / "hub")
    tools.drop(hub, [new_file])
    tools.ingest_all(hub)
    previous = warehouse_state(hub)
    previous_published = fingerprint(snapshot_path(hub), ("core", "marts"))
    assert previous != built and previous_published != published
    rng = random.Random(7)
    for _ in range(KILLS):
        code = kill_at(hub, tools, rng.uniform(0.3, 1.0) * duration, "build")
        state = warehouse_state(hub)
        assert state in (previous, built), \
            f"killed build left a third state (exit {code}): {differing(state, previous, built)}"
        # The snapshot is the old one or the new one, never a torn file.
        assert fingerprint(snapshot_path(hub), ("core", "marts")) in (previous_published, published)
    build_warehouse(hub)
    assert warehouse_state(hub) == built
    assert fingerprint(snapshot_path(hub), ("core", "marts")) == published
    assert [p.name for p in snapshot_path(hub).parent.glob(".*")] == []


# ---------------------------------------------------------------- history of full deliveries

def test_full_history_deletions_and_corrections_are_kept(warehouse):
    w = warehouse
    w.client("P1", "active")

    def episodes(*rows):
        for episode_id, exit_reason in rows:
            w.add("treatment_episodes", episode_id=episode_id, person_token="tok-treatment-P1",
                  intake_date=date(2023, 1, 1), referral_source="lead",
                  exit_date=date(2023, 6, 1) if exit_reason else None, exit_reason=exit_reason)

    episodes(("E1", None), ("E2", None), ("E3", None))
    w.add("treatment_contacts", contact_id="S1", person_token="tok-treatment-P1",
          contact_date=date(2023, 1, 5), service_type="housing")
    w.run()
    # The next full delivery drops E2 and closes E3; contact S1 is re-sent with a corrected type.
    episodes(("E1", None), ("E3", "completed"))
    w.add("treatment_contacts", contact_id="S1", person_token="tok-treatment-P1",
          contact_date=date(2023, 1, 5), service_type="case_management")
    w.run()

    assert w.rows("SELECT episode_id, exit_reason FROM core.treatment_episode ORDER BY 1") == [
        {"episode_id": "E1", "exit_reason": None}, {"episode_id": "E3", "exit_reason": "completed"}]
    assert w.rows("SELECT service_type FROM core.service_contact") == [{"service_type": "case_management"}]
    history = w.rows("""SELECT h.contract, h.record_key, h.change, old.contract AS old_contract,
                               new.contract AS new_contract, h.changed_at = new.loaded_at AS stamped
                        FROM core.record_history h
                        JOIN ops.batches old ON old.batch_id = h.last_batch_id
                        JOIN ops.batches new ON new.batch_id = h.changed_by_batch_id
                        WHERE h.contract <> 'treatment_clients' ORDER BY 1, 2""")
    assert history == [
        {"contract": "treatment_contacts", "record_key": "S1", "change": "replaced",
         "old_contract": "treatment_contacts", "new_contract": "treatment_contacts", "stamped": True},
        {"contract": "treatment_episodes", "record_key": "E2", "change": "deleted",
         "old_contract": "treatment_episodes", "new_contract": "treatment_episodes", "stamped": True}]
    # The old rows themselves are still in staging, tied to their batch.
    assert w.rows("SELECT count(*) AS n FROM staging.treatment_episodes")[0]["n"] == 5


# ---------------------------------------------------------------- migrations

def test_an_old_warehouse_is_migrated_by_the_hub(tmp_path):
    path = tmp_path / "old.duckdb"
    con = duckdb.connect(str(path))
    try:
        # A warehouse as the first release left it: version 1, and a staging table that
        # lacks the columns contracts and tokens have gained since.
        con.execute(OPS_DDL)
        con.execute("INSERT INTO ops.schema_version VALUES (1, TIMESTAMP '2024-01-01 00:00:00')")
        con.execute("CREATE TABLE staging.police_referrals (referral_id VARCHAR, _batch_id VARCHAR)")
        con.execute("INSERT INTO staging.police_referrals VALUES ('R1', 'b1')")
        migrate(con)
        versions = con.execute("SELECT version, description FROM ops.schema_version ORDER BY 1").fetchall()
        assert [v for v, _ in versions] == [m[0] for m in MIGRATIONS] and versions[-1][0] == SCHEMA_VERSION
        assert all(d for v, d in versions if v > 1)
        columns = {c for (c,) in con.execute("""SELECT column_name FROM duckdb_columns()
            WHERE schema_name = 'staging' AND table_name = 'police_referrals'""").fetchall()}
        assert {"person_token", "name_dob_token", "referral_date", "_row_number"} <= columns
        assert con.execute("SELECT referral_id, referral_date FROM staging.police_referrals").fetchall() == [
            ("R1", None)]
        # Running it again applies nothing twice.
        migrate(con)
        assert con.execute("SELECT count(*) FROM ops.schema_version").fetchone()[0] == len(MIGRATIONS)
        # A warehouse from newer code is refused, not misread.
        con.execute("INSERT INTO ops.schema_version (version, applied_at) VALUES (?, now())",
                    [SCHEMA_VERSION + 1])
        with pytest.raises(LeadHubError, match="newer"):
            migrate(con)
    finally:
        con.close()
