"""Intake takes a delivery only while the agency's data-sharing agreement is in force."""

import json
import os

import duckdb
import pytest

import leadhub.core.agreements as agreements
from leadhub.pipeline import ingest_agency

CONTACTS = "contact_id,client_id,contact_date,service_type\nS1,C1,2024-01-01,housing\n"
EXPIRED = """reference: DSA-TX-2019
agency: treatment
effective: 2019-01-01
end: 2020-12-31
purposes: [evaluation, operations]
retention_days: 365
small_cell_threshold: 10
"""


def drop(settings, name, text, agency="treatment"):
    inbox = settings.inbox(agency)
    inbox.mkdir(parents=True, exist_ok=True)
    path = inbox / name
    path.write_text(text)
    os.utime(path, (1, 1))  # old enough to count as complete
    return path


@pytest.fixture
def signed(tmp_path, monkeypatch):
    """An agreements folder of the test's own, holding what each test writes into it."""
    folder = tmp_path / "agreements"
    folder.mkdir()
    monkeypatch.setattr(agreements, "AGREEMENTS_DIR", folder)
    return folder


def outcome_of_one_delivery(settings, master_key):
    path = drop(settings, "treatment_contacts_20240101.csv", CONTACTS)
    [outcome] = ingest_agency(settings, "treatment", master_key)
    with duckdb.connect(str(settings.warehouse_path), read_only=True) as con:
        ledger = con.execute("SELECT status, reason, archive_path FROM ops.file_ledger").fetchall()
        staged = con.execute("SELECT count(*) FROM staging.treatment_contacts").fetchone()[0] \
            if con.execute("SELECT count(*) FROM duckdb_tables() WHERE schema_name = 'staging' "
                           "AND table_name = 'treatment_contacts'").fetchone()[0] else 0
    reasons = [json.loads(p.read_text()) for p in (settings.quarantine_dir / "treatment").glob("*.reason.json")]
    return path, outcome, ledger, staged, reasons


def test_delivery_after_the_agreement_ended_is_quarantined_naming_agency_and_agreement(settings, master_key, signed):
    (signed / "treatment.yaml").write_text(EXPIRED)
    path, outcome, ledger, staged, reasons = outcome_of_one_delivery(settings, master_key)
    assert outcome["status"] == "quarantined" and not path.exists()
    [(status, reason, archive)] = ledger
    assert status == "quarantined" and archive is None  # refused before it was archived
    assert "rule 'agreement' failed" in reason and "agency treatment" in reason and "DSA-TX-2019" in reason
    assert "\n" not in reason
    assert [r["reason"] for r in reasons] == [reason]
    assert staged == 0


def test_delivery_from_an_agency_without_any_agreement_is_quarantined(settings, master_key, signed):
    path, outcome, ledger, staged, _ = outcome_of_one_delivery(settings, master_key)
    [(status, reason, _)] = ledger
    assert status == "quarantined" and "agency treatment has no data-sharing agreement" in reason
    assert staged == 0


def test_delivery_within_the_agreement_is_loaded(settings, master_key, signed):
    (signed / "treatment.yaml").write_text(EXPIRED.replace("end: 2020-12-31", "end: 2099-12-31"))
    _, outcome, ledger, staged, reasons = outcome_of_one_delivery(settings, master_key)
    assert outcome["status"] == "accepted" and [s for s, _, _ in ledger] == ["accepted"]
    assert staged == 1 and reasons == []
