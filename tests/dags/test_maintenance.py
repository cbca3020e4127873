"""Maintenance functions the DAGs call, tested without Airflow on real intake runs.

Files go through the real intake (hash, encrypted archive, ledger, load), so
the retention and re-processing rules are checked against ledgers as the hub
writes them; only received times are moved into the past to age entries.
"""

from __future__ import annotations

import os
import re
from datetime import date, datetime, timedelta

import duckdb
import pytest

from leadhub import maintenance, pipeline
from leadhub.core.errors import LeadHubError

HEADER = "client_id,last_name,first_name,dob,ssn,phone,address,sex,consent_status,consent_date\n"
V1 = HEADER + "C00001,Zebediah,Quill,1980-02-03,123-45-6780,206-555-0100,1 Main St,M,active,2022-01-05\n"
V2 = V1 + "C00002,Okonkwo,Ada,1975-11-30,,206-555-0101,Shelter A,F,revoked,2022-03-01\n"
BAD = HEADER + "C00003,Lind,Bo,1990-01-01,,,,M,maybe,2022-01-05\n"  # consent_status outside the agreed codes
NOW = datetime(2026, 6, 1)


def deliver(settings, name: str, text: str) -> list[dict]:
    inbox = settings.inbox("treatment")
    inbox.mkdir(parents=True, exist_ok=True)
    (inbox / name).write_text(text)
    os.utime(inbox / name, (1, 1))  # long complete
    return pipeline.ingest(settings, "treatment")


def ledger(settings) -> list[tuple]:
    with duckdb.connect(str(settings.warehouse_path), read_only=True) as con:
        return con.execute("SELECT file_id, file_name, status, archive_path FROM ops.file_ledger "
                           "ORDER BY received_at").fetchall()


def age(settings, file_id: str, days: int) -> None:
    with duckdb.connect(str(settings.warehouse_path)) as con:
        con.execute("UPDATE ops.file_ledger SET received_at = ? WHERE file_id = ?",
                    [NOW - timedelta(days=days), file_id])


@pytest.fixture
def history(settings):
    """v1 (superseded by v2), v2 (accepted, current) and a quarantined file, all archived."""
    assert [o["status"] for o in deliver(settings, "treatment_clients_20240101.csv", V1)] == ["accepted"]
    assert [o["status"] for o in deliver(settings, "treatment_clients_20240201.csv", V2)] == ["accepted"]
    assert [o["status"] for o in deliver(settings, "treatment_clients_20240301.csv", BAD)] == ["quarantined"]
    rows = {name: (file_id, status, archive) for file_id, name, status, archive in ledger(settings)}
    assert [rows[n][1] for n in sorted(rows)] == ["superseded", "accepted", "quarantined"]
    assert all(archive for _, _, archive in rows.values())
    return rows


@pytest.fixture
def agreements(monkeypatch):
    """Agreements' retention periods as retention reads them: none, unless a test adds one."""
    declared = {}
    monkeypatch.setattr(maintenance, "_agreement_retention", declared.get)
    monkeypatch.delenv(maintenance.ENV_RETENTION_DAYS, raising=False)
    return declared


def staging_batches(settings) -> dict[str, int]:
    with duckdb.connect(str(settings.warehouse_path), read_only=True) as con:
        return dict(con.execute("SELECT _batch_id, count(*) FROM staging.treatment_clients "
                                "GROUP BY 1").fetchall())


def batch_of(settings, file_id: str) -> tuple[str, int]:
    with duckdb.connect(str(settings.warehouse_path), read_only=True) as con:
        return con.execute("SELECT batch_id, row_count FROM ops.batches WHERE file_id = ?",
                           [file_id]).fetchall()[0]


def test_retention_expires_an_old_batch_with_its_rows_and_its_original(settings, history, agreements, master_key,
                                                                       audit_entries):
    v1, v2, bad = (history[f"treatment_clients_2024{m}01.csv"] for m in ("01", "02", "03"))
    for file_id, _, _ in (v1, bad):
        age(settings, file_id, 400)
    stray = settings.archive_dir / "treatment" / "unknown__treatment_clients_x.csv.enc"
    stray.write_bytes(b"not in the ledger")
    b1, b2 = batch_of(settings, v1[0])[0], batch_of(settings, v2[0])[0]
    assert staging_batches(settings) == {b1: 1, b2: 2}
    quarantined = sorted(str(p.relative_to(settings.data_dir)) for p in settings.quarantine_dir.glob("*/*"))
    assert len(quarantined) == 2                                      # the delivered file and its reason

    dry = maintenance.archive_retention(settings, 365, now=NOW, dry_run=True)
    assert [e["batch_id"] for e in dry["expired"]] == [b1]
    assert dry["rows"] == {"staging.treatment_clients": 1}            # v1 held C00001 only
    assert sorted(dry["deleted"]) == sorted([v1[2], bad[2], *quarantined])  # bad never loaded: files only
    assert all((settings.data_dir / p).exists() for p in dry["deleted"])  # a dry run removes nothing
    assert staging_batches(settings) == {b1: 1, b2: 2}
    # NOW is 2026-06-01 00:00, so 365 days earlier is 2025-06-01; v1 was received 400 days before NOW.
    received = f"{NOW - timedelta(days=400):%Y-%m-%d %H:%M}"
    assert maintenance.retention_summary(dry) == "\n".join([
        "treatment: retention 365 days (this run's --days; no agreement declares one: the installation "
        "default gives 2555); past it: received before 2025-06-01 00:00 UTC",
        f"would expire batch {b1} (treatment_clients, treatment_clients_20240101.csv, superseded, received "
        f"{received}): rows staging.treatment_clients 1",
        "would expire 1 batch (1 row) and rebuild core, marts, the snapshot and the steward's crosswalk "
        "from what remains; would delete 4 files (archived originals, quarantined deliveries); would keep "
        "1 received within retention and 1 file the ledger does not know (listed above; a person decides)"])

    assert audit_entries() == []                                      # a dry run is not on the trail
    done = maintenance.archive_retention(settings, 365, now=NOW, who="steward-a", reason="retention test")
    assert staging_batches(settings) == {b2: 2}
    # Its entry counts what the dry run listed: batch b1, its 1 row, 4 files (v1, bad, 2 quarantined).
    [entry] = audit_entries()
    assert (entry["who"], entry["action"], entry["reason"], entry["days"]) == (
        "steward-a", "retention", "retention test", 365)
    assert (entry["batches"], entry["rows"], entry["files"]) == (1, 1, 4)
    assert batch_of(settings, v1[0]) == (b1, 1)                       # the batch's count is kept
    status = {file_id: status for file_id, _, status, _ in ledger(settings)}
    assert (status[v1[0]], status[v2[0]], status[bad[0]]) == ("expired", "accepted", "quarantined")
    assert sorted(done["deleted"]) == sorted([v1[2], bad[2], *quarantined]) and done["unaccounted"] == [
        str(stray.relative_to(settings.data_dir))]
    assert not (settings.data_dir / v1[2]).exists() and not (settings.data_dir / bad[2]).exists()
    assert (settings.data_dir / v2[2]).exists() and stray.exists()
    assert list(settings.quarantine_dir.glob("*/*")) == []
    with duckdb.connect(str(settings.data_dir / "published" / "lead.duckdb"), read_only=True) as snap:
        assert snap.execute("SELECT count(*) FROM core.record_history").fetchall() == [(0,)]
    with pytest.raises(LeadHubError, match="expired under retention"):
        maintenance.restore_ledger_entry(settings, master_key, v1[0])
    day = (NOW - timedelta(days=400)).date()  # a back-fill of that day has nothing left to restore
    assert maintenance.entries_to_backfill(settings, "treatment", day, day) == []
    # Run again: nothing left to expire.
    again = maintenance.archive_retention(settings, 365, now=NOW, who="steward-a", reason="retention test")
    assert again["expired"] == [] and again["deleted"] == []


def test_an_agreements_retention_governs_its_agency_and_a_run_can_only_shorten_it(agreements, monkeypatch):
    agreements["police"] = (730, "POL-1")
    monkeypatch.setenv(maintenance.ENV_RETENTION_DAYS, "90")
    assert maintenance.agency_retention("police", 90) == (730, "agreement POL-1")
    assert maintenance.agency_retention("jail", 90) == (
        90, "no agreement declares one: the installation default")
    assert maintenance.agency_retention("police", 90, 30) == (30, "this run's --days; agreement POL-1 gives 730")
    assert maintenance.agency_retention("police", 90, 1000) == (730, "agreement POL-1")


def test_a_full_history_extract_past_retention_is_emptied_not_kept(settings, history, agreements):
    for file_id, _, _ in history.values():
        age(settings, file_id, 400)
    dry = maintenance.archive_retention(settings, 365, now=NOW, dry_run=True)
    assert dry["empty_extracts"] == ["treatment_clients"]
    assert ("treatment_clients: every delivery holding rows is past retention, so its current view would be "
            "empty "
            "until the agency delivers again") in maintenance.retention_summary(dry).splitlines()
    done = maintenance.archive_retention(settings, 365, now=NOW, who="steward-a", reason="retention test")
    assert done["rows"] == {"staging.treatment_clients": 3}           # v1: 1 row, v2: 2 rows
    assert staging_batches(settings) == {}
    with duckdb.connect(str(settings.warehouse_path), read_only=True) as con:
        assert con.execute("SELECT count(*) FROM current.treatment_clients").fetchall() == [(0,)]
        assert con.execute("SELECT count(*) FROM core.person_link").fetchall() == [(0,)]
    assert list(settings.archive_dir.glob("*/*.enc")) == []


def test_retention_days_come_from_the_parameter_then_the_environment(monkeypatch):
    monkeypatch.delenv(maintenance.ENV_RETENTION_DAYS, raising=False)
    assert maintenance.retention_days(None) == maintenance.DEFAULT_RETENTION_DAYS
    monkeypatch.setenv(maintenance.ENV_RETENTION_DAYS, "90")
    assert maintenance.retention_days(None) == 90
    assert maintenance.retention_days(30) == 30
    with pytest.raises(LeadHubError, match="at least 1 day"):
        maintenance.retention_days(0)


def test_retention_without_a_ledger_deletes_nothing(settings, history):
    settings.warehouse_path.rename(settings.warehouse_path.with_suffix(".moved"))
    with pytest.raises(LeadHubError, match="none was deleted"):
        maintenance.archive_retention(settings, 1, now=NOW + timedelta(days=4000))
    assert len(list(settings.archive_dir.glob("*/*.enc"))) == 3


def test_reprocessing_an_entry_restores_the_original_and_the_intake_retakes_it(settings, history, master_key):
    file_id, _, _ = history["treatment_clients_20240301.csv"]
    restored = maintenance.restore_ledger_entry(settings, master_key, file_id, "treatment")
    assert (restored["file"], restored["status_before"]) == ("treatment_clients_20240301.csv", "quarantined")
    inbox_file = settings.inbox("treatment") / "treatment_clients_20240301.csv"
    assert inbox_file.read_text() == BAD
    assert [p.name for p in settings.inbox("treatment").iterdir()] == [inbox_file.name]  # no .part left

    [outcome] = pipeline.ingest(settings, "treatment")
    assert outcome["status"] == "quarantined"  # the same bytes break the same rule
    statuses = [status for _, name, status, _ in ledger(settings) if name == inbox_file.name]
    assert statuses == ["quarantined", "quarantined"]  # history kept: a new entry, the old one untouched


def test_reprocessing_a_loaded_entry_never_loads_it_twice(settings, history, master_key):
    file_id, _, _ = history["treatment_clients_20240201.csv"]
    restored = maintenance.restore_ledger_entry(settings, master_key, file_id)
    assert "duplicate" in restored["restored"]
    [outcome] = pipeline.ingest(settings, "treatment")
    assert outcome["status"] == "duplicate"
    with duckdb.connect(str(settings.warehouse_path), read_only=True) as con:
        assert con.execute("SELECT count(*) FROM current.treatment_clients").fetchone() == (2,)
        assert con.execute("SELECT count(*) FROM staging.treatment_clients").fetchone() == (3,)  # v1 + v2


def test_reprocessing_refuses_to_overwrite_a_waiting_delivery_or_cross_agencies(settings, history, master_key):
    file_id, _, _ = history["treatment_clients_20240301.csv"]
    key = master_key
    with pytest.raises(LeadHubError, match="belongs to treatment, not police"):
        maintenance.restore_ledger_entry(settings, key, file_id, "police")
    waiting = settings.inbox("treatment") / "treatment_clients_20240301.csv"
    waiting.write_text(V1)
    with pytest.raises(LeadHubError, match="never overwritten"):
        maintenance.restore_ledger_entry(settings, key, file_id)
    assert waiting.read_text() == V1
    with pytest.raises(LeadHubError, match="no ledger entry"):
        maintenance.restore_ledger_entry(settings, key, "nope")


def test_backfill_selects_entries_of_the_period_whose_bytes_are_not_loaded(settings, history, master_key):
    for name, days in (("treatment_clients_20240101.csv", 40), ("treatment_clients_20240201.csv", 30),
                       ("treatment_clients_20240301.csv", 20)):
        age(settings, history[name][0], days)
    day = (NOW - timedelta(days=20)).date()
    everything = maintenance.entries_to_backfill(settings, "treatment", date(2020, 1, 1), NOW.date())
    assert [e["file_name"] for e in everything] == ["treatment_clients_20240301.csv"]  # loaded bytes left out
    assert maintenance.entries_to_backfill(settings, "treatment", day - timedelta(days=5), day - timedelta(days=1)) == []
    restored = maintenance.restore_period(settings, master_key, "treatment", day, day)
    assert [r["file"] for r in restored] == ["treatment_clients_20240301.csv"]
    assert (settings.inbox("treatment") / "treatment_clients_20240301.csv").read_text() == BAD


def test_staleness_names_agency_and_extract(settings, history):
    stale = maintenance.stale_feeds(settings, now=datetime.utcnow())
    feeds = {(r["agency"], r["extract"]) for r in stale}
    assert ("treatment", "clients") not in feeds and ("jail", "bookings") in feeds
    message = maintenance.staleness_message(stale)
    assert "agency=jail extract=bookings: nothing accepted for 48 h (last accepted: never)" in message
    assert maintenance.staleness_message([]) is None


def test_the_cli_reprocesses_and_reports_retention(settings, history, capsys):
    from leadhub import cli

    file_id, _, _ = history["treatment_clients_20240301.csv"]
    assert cli.main(["reprocess", file_id, "--reason", "fixed contract"]) == 0
    assert (settings.inbox("treatment") / "treatment_clients_20240301.csv").read_text() == BAD
    assert "treatment/treatment_clients_20240301.csv (was quarantined)" in capsys.readouterr().out
    assert cli.main(["reprocess", "--reason", "r"]) == 2  # neither an entry nor a period: a one-line reason
    assert cli.main(["retention", "--days", "1", "--dry-run"]) == 0
    # All three were received today: none is past a day, so nothing would go.
    last = capsys.readouterr().out.splitlines()[-1]
    assert last == ("would expire 0 batches (0 rows); would delete 0 files (archived originals, quarantined "
                    "deliveries); would keep 3 received within retention"), last
    assert len(list(settings.archive_dir.glob("*/*.enc"))) == 3


def test_daily_publication_restores_a_missing_snapshot(settings, history):
    pipeline.build(settings)  # publishes after the build
    snapshot = settings.data_dir / "published" / "lead.duckdb"
    assert snapshot.exists()
    snapshot.unlink()
    counts = maintenance.publish_snapshot(settings)
    assert snapshot.exists() and counts
    with duckdb.connect(str(snapshot), read_only=True) as con:
        assert con.execute("SELECT status FROM ops.file_ledger ORDER BY received_at").fetchall() == [
            ("superseded",), ("accepted",), ("quarantined",)]


def test_a_pull_backfill_moves_the_mark_back_and_never_forward(settings, tmp_path, monkeypatch):
    from connectors.sources import PullError, load_state, save_state

    sources = tmp_path / "sources"
    sources.mkdir()
    (sources / "jms.yaml").write_text(
        "kind: sql\nagency: jail\nextract: bookings\nurl_env: LEADHUB_TEST_JMS_URL\ntable: bookings\n"
        "high_water_mark: {column: updated_at, type: timestamp}\nkey: [booking_id, charge_seq]\n")
    monkeypatch.setenv("LEADHUB_SOURCES_DIR", str(sources))
    save_state(settings, "jms", {"kind": "sql", "mark": "2024-03-10T08:00:00", "mark_type": "timestamp"})

    reset = maintenance.reset_pull_source(settings, "jms", "2024-03-01")
    assert reset == {"source": "jms", "kind": "sql", "previous_mark": "2024-03-10T08:00:00",
                     "mark": "2024-02-29T23:59:59.999999"}  # rows from 1 March on are pulled again
    assert load_state(settings, "jms")["mark"] == "2024-02-29T23:59:59.999999"
    with pytest.raises(PullError, match="only moves it back"):
        maintenance.reset_pull_source(settings, "jms", "2024-04-01")
    assert load_state(settings, "jms")["mark"] == "2024-02-29T23:59:59.999999"


def test_reprocessing_never_writes_through_a_link_planted_in_the_inbox(settings, history, master_key):
    file_id, _, _ = history["treatment_clients_20240301.csv"]
    victim = settings.data_dir / "victim.txt"
    victim.write_text("keep me")
    inbox = settings.inbox("treatment")
    (inbox / ".treatment_clients_20240301.csv.restore.part").symlink_to(victim)
    maintenance.restore_ledger_entry(settings, master_key, file_id)
    assert victim.read_text() == "keep me"
    restored = inbox / "treatment_clients_20240301.csv"
    assert restored.read_text() == BAD and (restored.stat().st_mode & 0o777) == 0o600
    (inbox / "treatment_clients_20240301.csv").unlink()
    (inbox / "treatment_clients_20240301.csv").symlink_to(victim)
    with pytest.raises(LeadHubError, match="never overwritten"):
        maintenance.restore_ledger_entry(settings, master_key, file_id)
    assert victim.read_text() == "keep me"


def test_the_crosswalk_still_builds_after_retention_expired_a_superseded_batch(settings, master_key,
                                                                                 history):
    from leadhub.core.warehouse import connect
    from transforms import crosswalk
    from transforms.link import link_people

    v1, v2, bad = (history[f"treatment_clients_2024{m}01.csv"] for m in ("01", "02", "03"))
    for file_id, _, _ in (v1, bad):
        age(settings, file_id, 400)
    done = maintenance.archive_retention(settings, 365, now=NOW, who="steward-a", reason="retention test")
    assert v1[2] in done["deleted"]
    with connect(settings.warehouse_path) as con:
        link_people(con)
        (person_key,) = {k for (k,) in con.execute(
            "SELECT person_key FROM core.person_link WHERE agency = 'treatment'").fetchall()}

    counts = crosswalk.build_crosswalk(settings, master_key)
    assert counts["files_replayed"] == 1 and counts["files_skipped"] == 0  # the expired v1 is not replayed
    assert crosswalk.lookup(settings, master_key, person_key, "consent withdrawal", who="s") == [
        ("treatment", "C00001")]


def test_reprocessing_never_overwrites_a_delivery_that_lands_while_restoring(settings, history, master_key,
                                                                            monkeypatch):
    file_id, _, _ = history["treatment_clients_20240301.csv"]
    waiting = settings.inbox("treatment") / "treatment_clients_20240301.csv"
    real_sha = maintenance._sha256

    def clerk_uploads_meanwhile(path):
        digest = real_sha(path)
        if path.name.endswith(".restore.part") and not waiting.exists():
            waiting.write_text(V2)              # the agency's corrected file arrives under the same name
        return digest

    monkeypatch.setattr(maintenance, "_sha256", clerk_uploads_meanwhile)
    with pytest.raises(LeadHubError, match="never overwritten"):
        maintenance.restore_ledger_entry(settings, master_key, file_id)
    assert waiting.read_text() == V2
    assert [p.name for p in settings.inbox("treatment").iterdir()] == [waiting.name]  # no .part left
