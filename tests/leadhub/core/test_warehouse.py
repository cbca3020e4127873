"""Warehouse views over real intake runs."""

import os

import duckdb

from leadhub.pipeline import ingest_agency
from leadhub.pipeline import release

HEADER = "contact_id,client_id,contact_date,service_type\n"


def _drop(settings, name, text):
    inbox = settings.inbox("treatment")
    inbox.mkdir(parents=True, exist_ok=True)
    (inbox / name).write_text(text)
    os.utime(inbox / name, (1, 1))


def _current(settings):
    with duckdb.connect(str(settings.warehouse_path), read_only=True) as con:
        return con.execute("SELECT contact_id, service_type FROM current.treatment_contacts ORDER BY 1").fetchall()


def test_corrected_resend_of_an_incremental_period_replaces_the_whole_file(settings, master_key):
    _drop(settings, "treatment_contacts_20240101.csv",
          HEADER + "S1,C1,2024-01-01,housing\nS2,C1,2024-01-01,benefits\n")
    _drop(settings, "treatment_contacts_20240102.csv", HEADER + "S3,C2,2024-01-02,housing\n")
    assert {o["status"] for o in ingest_agency(settings, "treatment", master_key)} == {"accepted"}
    # The agency corrects 1 January: S2 was entered by mistake, S1's service was wrong. The
    # correction removes half of that file's rows, so the volume guard holds it until the
    # steward releases it.
    _drop(settings, "treatment_contacts_20240101.csv", HEADER + "S1,C1,2024-01-01,mental_health\n")
    [held] = ingest_agency(settings, "treatment", master_key)
    assert held["status"] == "held" and _current(settings) == [("S1", "housing"), ("S2", "benefits"),
                                                              ("S3", "housing")]
    assert release(settings, held["file_id"], "agency confirmed the correction", who="steward")["status"] == "accepted"
    assert _current(settings) == [("S1", "mental_health"), ("S3", "housing")]
    with duckdb.connect(str(settings.warehouse_path), read_only=True) as con:
        assert con.execute("SELECT count(*) FROM staging.treatment_contacts").fetchone()[0] == 4  # history kept
