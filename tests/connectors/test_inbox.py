"""Drop-folder intake against a real DuckDB file, real GX validation and real encryption."""

import io
import os

import duckdb
import pytest

from connectors.archive import decrypt_to
from connectors.inbox import ingest_agency

CLIENTS_HEADER = "client_id,last_name,first_name,dob,ssn,phone,address,sex,consent_status,consent_date\n"
CLIENT_ROWS = ("C00001,Zebediah,Quill,1980-02-03,123-45-6780,206-555-0100,1 Main St,M,active,2022-01-05\n"
               "C00002,Okonkwo,Ada,1975-11-30,,206-555-0101,Shelter A,F,revoked,2022-03-01\n")
CONTACTS_HEADER = "contact_id,client_id,contact_date,service_type\n"


def drop(settings, name, text, agency="treatment"):
    inbox = settings.inbox(agency)
    inbox.mkdir(parents=True, exist_ok=True)
    path = inbox / name
    path.write_bytes(text.encode() if isinstance(text, str) else text)
    os.utime(path, (1, 1))  # old enough to count as complete
    return path


def query(settings, sql):
    with duckdb.connect(str(settings.warehouse_path), read_only=True) as con:
        return con.execute(sql).fetchall()


def test_accepted_file_is_pseudonymized_loaded_archived_and_removed(settings, master_key):
    original = CLIENTS_HEADER + CLIENT_ROWS
    path = drop(settings, "treatment_clients_20240101.csv", original)
    [outcome] = ingest_agency(settings, "treatment", master_key)
    assert outcome["status"] == "accepted" and outcome["rows"] == 2
    assert not path.exists()
    assert query(settings, "SELECT count(*), count(DISTINCT person_token) FROM staging.treatment_clients") == [(2, 2)]
    [(status, rows, archive, sha)] = query(
        settings, "SELECT status, row_count, archive_path, sha256 FROM ops.file_ledger")
    assert (status, rows) == ("accepted", 2)
    out = io.BytesIO()
    decrypt_to(settings.data_dir / archive, out, master_key)
    assert out.getvalue() == original.encode()
    warehouse_bytes = settings.warehouse_path.read_bytes()
    for raw in (b"Zebediah", b"123-45-6780", b"123456780", b"1980-02-03", b"C00001", b"206-555-0100"):
        assert raw not in warehouse_bytes


def test_identical_resend_is_a_duplicate_and_not_loaded_twice(settings, master_key):
    drop(settings, "treatment_clients_20240101.csv", CLIENTS_HEADER + CLIENT_ROWS)
    ingest_agency(settings, "treatment", master_key)
    drop(settings, "treatment_clients_20240108.csv", CLIENTS_HEADER + CLIENT_ROWS)
    [outcome] = ingest_agency(settings, "treatment", master_key)
    assert outcome["status"] == "duplicate"
    assert query(settings, "SELECT count(*) FROM staging.treatment_clients") == [(2,)]
    assert sorted(query(settings, "SELECT status FROM ops.file_ledger")) == [("accepted",), ("duplicate",)]


def test_full_history_delivery_supersedes_and_drops_missing_rows_from_current(settings, master_key):
    drop(settings, "treatment_clients_20240101.csv", CLIENTS_HEADER + CLIENT_ROWS)
    ingest_agency(settings, "treatment", master_key)
    drop(settings, "treatment_clients_20240108.csv", CLIENTS_HEADER + CLIENT_ROWS.splitlines(True)[0])
    ingest_agency(settings, "treatment", master_key)
    assert query(settings, "SELECT count(*) FROM current.treatment_clients") == [(1,)]
    assert query(settings, "SELECT count(*) FROM staging.treatment_clients") == [(3,)]  # history kept
    assert sorted(query(settings, "SELECT file_name, status FROM ops.file_ledger")) == [
        ("treatment_clients_20240101.csv", "superseded"), ("treatment_clients_20240108.csv", "accepted")]


@pytest.mark.parametrize("name, text, rule", [
    ("treatment_contacts_20240101.csv", "", "empty_file"),
    ("notes.txt", "hello\n", "unknown_file_name"),
    ("treatment_contacts_20240101.csv", "contact_id,client,contact_date,service_type\nS1,C1,2024-01-01,housing\n",
     "header"),
    ("treatment_contacts_20240101.csv", CONTACTS_HEADER + "S1,C1,2024-01-01,haircut\n", "critical check"),
    ("treatment contacts;rm -rf.csv", "x\n", "file_name"),
])
def test_bad_files_are_quarantined_with_a_reason_and_recorded(settings, master_key, name, text, rule):
    path = drop(settings, name, text)
    [outcome] = ingest_agency(settings, "treatment", master_key)
    assert outcome["status"] == "quarantined" and rule in outcome["reason"]
    assert not path.exists()
    assert any(p.name.endswith("__" + name) for p in (settings.quarantine_dir / "treatment").iterdir())
    [(status, reason)] = query(settings, "SELECT status, reason FROM ops.file_ledger")
    assert status == "quarantined" and rule in reason
    assert query(settings, "SELECT count(*) FROM staging.treatment_contacts") == [(0,)]


def test_symlinks_are_never_followed(settings, master_key, tmp_path):
    secret = tmp_path / "secret.csv"
    secret.write_text(CONTACTS_HEADER + "S1,C1,2024-01-01,housing\n")
    link = settings.inbox("treatment") / "treatment_contacts_20240101.csv"
    link.parent.mkdir(parents=True, exist_ok=True)
    link.symlink_to(secret)
    [outcome] = ingest_agency(settings, "treatment", master_key)
    assert outcome["status"] == "quarantined" and "symlink" in outcome["reason"]
    assert secret.exists() and query(settings, "SELECT count(*) FROM staging.treatment_contacts") == [(0,)]


def test_files_still_being_written_are_left_alone(settings, master_key):
    part = drop(settings, "treatment_contacts_20240101.csv.part", CONTACTS_HEADER)
    assert ingest_agency(settings, "treatment", master_key) == []
    assert part.exists()
