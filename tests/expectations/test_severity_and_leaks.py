"""Critical failures quarantine, warnings load, and no raw identifier leaks — through the real intake.

Files carry planted names, SSNs and person ids in identifier columns, as a bad coded value
and in a wrong column. Afterwards the validation results, the ledger, the quarantine reasons,
the Airflow message, the Data Docs (every file, byte by byte) and the captured logs are
searched for them.
"""

from __future__ import annotations

import json
import logging

from leadhub.pipeline import ingest_agency
from dags._common import quarantine_message
from expectations.docs import build_docs


def planted(deliveries) -> list[str]:
    return [deliveries.PLANTED_NAME, deliveries.PLANTED_SURNAME, deliveries.PLANTED_SSN,
            deliveries.PLANTED_PERSON_ID, deliveries.PLANTED_SSN.replace("-", "")]


def with_identities(deliveries, rows: list[dict]) -> list[dict]:
    """Put the planted identity on every row's identifier columns."""
    for row in rows:
        row.update(first_name=deliveries.PLANTED_NAME, last_name=deliveries.PLANTED_SURNAME,
                   ssn=deliveries.PLANTED_SSN, person_id=deliveries.PLANTED_PERSON_ID)
    return rows


def test_critical_failure_quarantines_and_says_why(settings, master_key, deliveries):
    rows = deliveries.referral_rows(40, precinct=lambda i: deliveries.PLANTED_NAME if i < 3 else "NORTH")
    path = deliveries.drop(settings, "police_referrals_20240101.csv", deliveries.to_csv(rows))
    [outcome] = ingest_agency(settings, "police", master_key)

    assert outcome["status"] == "quarantined"
    expected = ("police_referrals_20240101.csv: 1 critical check failed: police_referrals.precinct "
                "values in known set (unexpected 3 of 40 rows, 7.5%; rows 1, 2, 3)")
    assert outcome["reason"] == expected
    assert deliveries.query(settings, "SELECT status, reason FROM ops.file_ledger") == [
        ("quarantined", expected)]
    assert deliveries.query(settings, "SELECT count(*) FROM staging.police_referrals") == [(0,)]
    assert deliveries.query(settings, "SELECT count(*) FROM ops.batches") == [(0,)]
    assert not path.exists()
    [reason_file] = (settings.quarantine_dir / "police").glob("*.reason.json")
    assert json.loads(reason_file.read_text())["reason"] == expected
    # What the feed DAG's check_quarantine task fails with.
    assert quarantine_message("police", [outcome]) == (
        "police: 1 file(s) quarantined; fix and redeliver, the other files were loaded\n  " + expected)
    failed = deliveries.query(settings, "SELECT expectation, column_name, severity FROM ops.validation_results "
                                        "WHERE NOT success")
    assert failed == [("expect_column_values_to_be_in_set", "precinct", "critical")]


def test_warning_loads_the_batch_and_records_the_failed_check(settings, master_key, deliveries):
    # Born in 2020: seven years old at a 2024 referral, outside the 10..100 range.
    rows = deliveries.referral_rows(40, dob=lambda i: "2017-03-01" if i == 5 else f"1980-01-{i % 28 + 1:02d}")
    deliveries.drop(settings, "police_referrals_20240101.csv", deliveries.to_csv(rows))
    [outcome] = ingest_agency(settings, "police", master_key)

    assert (outcome["status"], outcome["warnings"]) == ("accepted", 1)
    assert deliveries.query(settings, "SELECT count(*) FROM staging.police_referrals") == [(40,)]
    assert deliveries.query(
        settings, "SELECT d.column_name, d.severity, d.observed, d.file_status, d.kind "
                  "FROM ops.data_quality d WHERE NOT d.success") == [
        ("age_at_event", "warning", "unexpected 1 of 40 rows, 2.5%", "accepted", "batch")]
    [(reason,)] = deliveries.query(settings, "SELECT reason FROM ops.file_ledger")
    assert reason == ("passed with 1 warning: police_referrals.age_at_event between 10 and 100 "
                      "(unexpected 1 of 40 rows, 2.5%)")


def test_schema_drift_is_named_as_such(settings, master_key, deliveries):
    text = deliveries.to_csv(deliveries.referral_rows(5)).replace("officer_id", "badge_number", 1)
    deliveries.drop(settings, "police_referrals_20240101.csv", text)
    [outcome] = ingest_agency(settings, "police", master_key)
    assert outcome["status"] == "quarantined"
    assert deliveries.query(settings, "SELECT kind, expectation, severity, success, observed, file_status "
                                      "FROM ops.data_quality") == [
        ("schema", "schema_drift", "critical", False, "renamed columns: officer_id->badge_number",
         "quarantined")]


def test_planted_identifiers_never_reach_results_docs_or_logs(settings, master_key, deliveries, caplog,
                                                              capfd):
    caplog.set_level(logging.DEBUG)
    # 1: a coded value equal to a planted name, an SSN in a wrong column (critical: quarantined).
    bad = with_identities(deliveries, deliveries.referral_rows(
        30, precinct=lambda i: deliveries.PLANTED_NAME if i % 7 == 0 else "SOUTH",
        officer_id=lambda i: deliveries.PLANTED_SSN if i == 4 else f"B{i}",
        race=lambda i: deliveries.PLANTED_SURNAME if i == 9 else "WHITE"))
    deliveries.drop(settings, "police_referrals_20240101.csv", deliveries.to_csv(bad))
    # 2: identities in their own columns, an age out of range (warning: loaded).
    fine = with_identities(deliveries, deliveries.referral_rows(
        30, start=100, dob=lambda i: "2019-05-05" if i == 101 else "1970-05-05"))
    deliveries.drop(settings, "police_referrals_20240102.csv", deliveries.to_csv(fine))
    # 3: a header row replaced by a data row (schema drift).
    headerless = deliveries.to_csv(with_identities(deliveries, deliveries.referral_rows(3, start=200)))
    deliveries.drop(settings, "police_referrals_20240103.csv", headerless.split("\n", 1)[1])
    outcomes = ingest_agency(settings, "police", master_key)
    assert [o["status"] for o in outcomes] == ["quarantined", "accepted", "quarantined"]
    assert "SSN-shaped value" in outcomes[0]["reason"]

    index = build_docs(settings)
    assert index.exists()
    docs_bytes = [p.read_bytes() for p in index.parent.rglob("*") if p.is_file()]
    assert any(b"unexpected 1 of 30 rows" in b for b in docs_bytes)  # the docs hold the results

    stored = json.dumps(deliveries.query(settings, "SELECT * FROM ops.validation_results"), default=str)
    views = json.dumps(deliveries.query(settings, "SELECT * FROM ops.data_quality"), default=str)
    ledger = json.dumps(deliveries.query(settings, "SELECT * FROM ops.file_ledger"), default=str)
    reasons = " ".join(p.read_text() for p in (settings.quarantine_dir / "police").glob("*.json"))
    message = quarantine_message("police", outcomes)
    # The hub logs through the logging module and, when configured, structured lines to the console.
    console = capfd.readouterr()
    logs = caplog.text + console.out + console.err + json.dumps(outcomes)
    assert "police_referrals_20240101.csv" in logs  # the log capture really holds the intake lines
    for raw in planted(deliveries):
        for where, text in [("validation results", stored), ("ops.data_quality", views),
                            ("ledger", ledger), ("quarantine reasons", reasons),
                            ("Airflow message", message), ("logs", logs)]:
            assert raw not in text, f"{raw} found in {where}"
        assert not any(raw.encode() in b for b in docs_bytes), f"{raw} found in the Data Docs"
