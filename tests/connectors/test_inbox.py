"""Drop-folder intake against a real DuckDB file, real GX validation and real encryption."""

import io
from pathlib import Path
import os

import duckdb
import pytest

from leadhub.core.archive import decrypt_to
from leadhub.pipeline import ingest_agency

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


def client_rows(n: int) -> str:
    """``n`` valid treatment client rows, C00001 upwards."""
    return "".join(f"C{i:05d},Surname{i},Given{i},1980-02-{i % 28 + 1:02d},,,,F,active,2022-01-05\n"
                   for i in range(1, n + 1))


def test_full_history_delivery_supersedes_and_drops_missing_rows_from_current(settings, master_key):
    drop(settings, "treatment_clients_20240101.csv", CLIENTS_HEADER + client_rows(10))
    ingest_agency(settings, "treatment", master_key)
    # 9 of the 10 current rows: removes 1 = 10%, not more than the default guard's 10%
    drop(settings, "treatment_clients_20240108.csv", CLIENTS_HEADER + client_rows(9))
    [outcome] = ingest_agency(settings, "treatment", master_key)
    assert outcome["status"] == "accepted"
    assert query(settings, "SELECT count(*) FROM current.treatment_clients") == [(9,)]
    assert query(settings, "SELECT count(*) FROM staging.treatment_clients") == [(19,)]  # history kept
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
    held = list((settings.quarantine_dir / "treatment").iterdir())
    assert any(p.name.endswith("__" + name) for p in held)
    # The steward's alone, whatever mode the clerk's umask gave the file: 0600 files in a 0700 folder.
    assert {oct(p.stat().st_mode & 0o777) for p in held} == {"0o600"} and len(held) == 2
    assert oct((settings.quarantine_dir / "treatment").stat().st_mode & 0o777) == "0o700"
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


# --- hostile and broken deliveries -----------------------------------------------------------------

import dataclasses  # noqa: E402
import json  # noqa: E402
import threading  # noqa: E402
from datetime import datetime  # noqa: E402

from openpyxl import Workbook  # noqa: E402

from connectors import dropcrypt, inbox  # noqa: E402
from leadhub.core.contracts import FileFormat, contract_for_file, load_contracts  # noqa: E402
from connectors.inbox import Intake  # noqa: E402

CONTACT = "S1,C1,2024-01-01,housing\n"
RAW_VALUES = ("Zebediah", "Quill", "123-45-6780", "1980-02-03", "C00001", "206-555-0100", "Main St")


def _only_ledger_row(settings):
    [(status, reason, name)] = query(settings, "SELECT status, reason, file_name FROM ops.file_ledger")
    return status, reason, name


def _quarantine_reasons(settings, agency="treatment"):
    return [json.loads(p.read_text()) for p in (settings.quarantine_dir / agency).glob("*.reason.json")]


@pytest.mark.parametrize("name, text, rule", [
    (".hidden_treatment_contacts_20240101.csv", CONTACTS_HEADER + CONTACT, "file_name"),
    ("..%2f..%2fetc%2fpasswd", "root:x:0:0\n", "file_name"),
    ("..treatment_contacts_20240101.csv", CONTACTS_HEADER + CONTACT, "file_name"),
    ("treatment_contacts_2024\uff10101.csv", CONTACTS_HEADER + CONTACT, "file_name"),    # fullwidth digit
    ("treatment_c\u043entacts_20240101.csv", CONTACTS_HEADER + CONTACT, "file_name"),    # Cyrillic o
    ("treatment_contacts_20240101.csv\n", CONTACTS_HEADER + CONTACT, "file_name"),       # trailing newline
    ("t" * 240 + ".csv", CONTACTS_HEADER + CONTACT, "file_name"),
    ("treatment_contacts_20240101.csv", b"contact_id,client_id\xff\n", "encoding"),
    ("treatment_contacts_20240101.csv", "contact_id,client_id,contact_date\nS1,C1,2024-01-01\n", "header"),
    ("treatment_contacts_20240101.csv", CONTACTS_HEADER.replace("\n", ",note\n") + "S1,C1,2024-01-01,housing,x\n",
     "header"),
    ("treatment_contacts_20240101.csv", CONTACTS_HEADER + CONTACT + "S2,C1,2024-01-01\n", "ragged_row"),
    ("treatment_contacts_20240101.csv", CONTACTS_HEADER + "S1,C1,31/12/2024,housing\n", "date_format"),
    ("treatment_contacts_20240101.csv", CONTACTS_HEADER + "S1,C1\x00\x00\x00,2024-01-01,housing\n", "binary_content"),
    ("treatment_contacts_20240101.lhx", CONTACTS_HEADER + CONTACT, "unknown_file_name"),
])
def test_hostile_and_broken_files_are_quarantined_and_recorded(settings, master_key, name, text, rule):
    path = drop(settings, name, text)
    [outcome] = ingest_agency(settings, "treatment", master_key)
    assert outcome["status"] == "quarantined" and f"rule '{rule}'" in outcome["reason"]
    assert not path.exists()
    status, reason, _ = _only_ledger_row(settings)
    assert status == "quarantined" and f"rule '{rule}'" in reason
    [info] = _quarantine_reasons(settings)
    assert info["rule"] == rule
    assert query(settings, "SELECT count(*) FROM staging.treatment_contacts") == [(0,)]


def test_header_mismatch_reason_spells_out_the_difference(settings, master_key):
    drop(settings, "treatment_contacts_20240101.csv", "contact_id,client,contact_date,service_type\n" + CONTACT)
    [outcome] = ingest_agency(settings, "treatment", master_key)
    assert "renamed columns: client_id->client" in outcome["reason"]


def test_a_fifo_is_refused_without_ever_being_opened(settings, master_key):
    fifo = settings.inbox("treatment") / "treatment_contacts_20240101.csv"
    fifo.parent.mkdir(parents=True, exist_ok=True)
    os.mkfifo(fifo)
    result = {}
    worker = threading.Thread(target=lambda: result.update(out=ingest_agency(settings, "treatment", master_key)))
    worker.start()
    worker.join(60)
    if worker.is_alive():  # unblock the reader so the test run can finish, then fail
        with open(fifo, "wb"):
            pass
        pytest.fail("intake blocked on a FIFO")
    [outcome] = result["out"]
    assert outcome["status"] == "quarantined" and "not_regular_file" in outcome["reason"]
    assert _only_ledger_row(settings)[0] == "quarantined"


def test_a_directory_is_refused(settings, master_key):
    (settings.inbox("treatment") / "treatment_contacts_20240101.csv").mkdir(parents=True)
    [outcome] = ingest_agency(settings, "treatment", master_key)
    assert "not_regular_file" in outcome["reason"]


def test_oversize_files_are_quarantined_unread(settings, master_key):
    small = dataclasses.replace(settings, max_file_bytes=40)
    drop(settings, "treatment_contacts_20240101.csv", CONTACTS_HEADER + CONTACT)
    [outcome] = ingest_agency(small, "treatment", master_key)
    assert "rule 'file_size'" in outcome["reason"]
    [(sha,)] = query(settings, "SELECT sha256 FROM ops.file_ledger")
    assert sha == ""  # never read, not even hashed


def test_reasons_logs_and_ledger_never_hold_identifiers(settings, master_key, caplog):
    rows = ("C00001,Zebediah,Quill,1980-02-03,123-45-6780,206-555-0100,1 Main St,M,active,2022-01-05\n"
            "C00002,Zebediah,Quill,03/02/1980,123-45-6780,206-555-0100,1 Main St,M,active,2022-01-05\n")
    drop(settings, "treatment_clients_20240101.csv", rows)                  # header missing
    drop(settings, "treatment_clients_20240102.csv", CLIENTS_HEADER + rows)  # unreadable date in row 2
    caplog.set_level("DEBUG")
    outcomes = ingest_agency(settings, "treatment", master_key)
    assert [o["status"] for o in outcomes] == ["quarantined", "quarantined"]
    recorded = json.dumps(outcomes) + caplog.text + json.dumps(_quarantine_reasons(settings)) + json.dumps(
        query(settings, "SELECT * FROM ops.file_ledger"), default=str)
    for raw in RAW_VALUES:
        assert raw not in recorded


# --- spreadsheets and JSON lines through the whole intake ------------------------------------------

def _as_format(monkeypatch, fmt: dict, pattern: str):
    """Serve the treatment_contacts contract in another format (same staging table and suite)."""
    base = load_contracts()["treatment_contacts"]
    variant = dataclasses.replace(base, format=FileFormat.from_raw(fmt), file_pattern=pattern)
    monkeypatch.setattr(inbox, "contract_for_file",
                        lambda agency, name: variant if variant.matches(name) else contract_for_file(agency, name))


def _workbook(path, rows, sheets=1):
    wb = Workbook()
    for row in rows:
        wb.active.append(row)
    for i in range(1, sheets):
        wb.create_sheet(f"s{i}")
    wb.save(path)
    os.utime(path, (1, 1))


def test_xlsx_delivery_is_loaded(settings, master_key, monkeypatch):
    _as_format(monkeypatch, {"type": "xlsx"}, "treatment_contacts_*.xlsx")
    inbox_dir = settings.inbox("treatment")
    inbox_dir.mkdir(parents=True, exist_ok=True)
    _workbook(inbox_dir / "treatment_contacts_20240101.xlsx",
              [CONTACTS_HEADER.strip().split(","), ["S1", "C1", datetime(2024, 1, 1), "housing"],
               ["S2", 1002, "2024-01-02", "benefits"]])
    [outcome] = ingest_agency(settings, "treatment", master_key)
    assert outcome["status"] == "accepted" and outcome["rows"] == 2
    assert query(settings, "SELECT contact_id, contact_date::VARCHAR FROM staging.treatment_contacts ORDER BY 1") == [
        ("S1", "2024-01-01"), ("S2", "2024-01-02")]


@pytest.mark.parametrize("rows, sheets, rule", [
    ([["contact_id", "client_id", "contact_date", "service_type"], ["S1", "C1", "2024-01-01", "housing"]], 3,
     "xlsx_sheets"),
    ([["contact_id", "client_id", "contact_date", "service_type"], ["S1", "C1", "=DATE(2024,1,1)", "housing"]], 1,
     "xlsx_formula"),
])
def test_xlsx_with_several_sheets_or_formulas_is_quarantined(settings, master_key, monkeypatch, rows, sheets, rule):
    _as_format(monkeypatch, {"type": "xlsx"}, "treatment_contacts_*.xlsx")
    inbox_dir = settings.inbox("treatment")
    inbox_dir.mkdir(parents=True, exist_ok=True)
    _workbook(inbox_dir / "treatment_contacts_20240101.xlsx", rows, sheets)
    [outcome] = ingest_agency(settings, "treatment", master_key)
    assert outcome["status"] == "quarantined" and f"rule '{rule}'" in outcome["reason"]
    assert _only_ledger_row(settings)[0] == "quarantined"


def test_jsonl_delivery_is_loaded(settings, master_key, monkeypatch):
    _as_format(monkeypatch, {"type": "jsonl"}, "treatment_contacts_*.jsonl")
    lines = [{"contact_id": f"S{i}", "client_id": f"C{i}", "contact_date": "2024-01-01", "service_type": "housing"}
             for i in range(3)]
    drop(settings, "treatment_contacts_20240101.jsonl", "".join(json.dumps(o) + "\n" for o in lines))
    [outcome] = ingest_agency(settings, "treatment", master_key)
    assert outcome["status"] == "accepted" and outcome["rows"] == 3


# --- files encrypted to the hub key ----------------------------------------------------------------

@pytest.fixture
def hub_public(settings):
    _, public = dropcrypt.generate_hub_keypair(dropcrypt.default_key_path(settings.key_file))
    return dropcrypt.load_public_key(public)


def _drop_encrypted(settings, tmp_path, name, text, public):
    plain = tmp_path / name
    plain.write_text(text)
    inbox_dir = settings.inbox("treatment")
    inbox_dir.mkdir(parents=True, exist_ok=True)
    target = inbox_dir / (name + ".lhx")
    dropcrypt.encrypt_for_hub(plain, target, public)
    os.utime(target, (1, 1))
    return target


def test_encrypted_delivery_is_decrypted_loaded_and_archived_as_delivered(settings, master_key, hub_public, tmp_path):
    target = _drop_encrypted(settings, tmp_path, "treatment_clients_20240101.csv", CLIENTS_HEADER + CLIENT_ROWS,
                             hub_public)
    delivered = target.read_bytes()
    [outcome] = ingest_agency(settings, "treatment", master_key)
    assert outcome["status"] == "accepted" and outcome["rows"] == 2 and outcome["file"] == "treatment_clients_20240101.csv"
    [(name, sha, archive)] = query(settings, "SELECT file_name, sha256, archive_path FROM ops.file_ledger")
    import hashlib
    assert name == "treatment_clients_20240101.csv" and sha == hashlib.sha256(delivered).hexdigest()
    out = io.BytesIO()
    decrypt_to(settings.data_dir / archive, out, master_key)
    assert out.getvalue() == delivered
    assert not target.exists() and list((settings.data_dir / "work").iterdir()) == []  # no plaintext left


def test_same_extract_plain_after_encrypted_is_a_duplicate(settings, master_key, hub_public, tmp_path):
    _drop_encrypted(settings, tmp_path, "treatment_clients_20240101.csv", CLIENTS_HEADER + CLIENT_ROWS, hub_public)
    ingest_agency(settings, "treatment", master_key)
    drop(settings, "treatment_clients_20240101.csv", CLIENTS_HEADER + CLIENT_ROWS)
    [outcome] = ingest_agency(settings, "treatment", master_key)
    assert outcome["status"] == "duplicate"
    _drop_encrypted(settings, tmp_path, "treatment_clients_20240101.csv", CLIENTS_HEADER + CLIENT_ROWS, hub_public)
    [outcome] = ingest_agency(settings, "treatment", master_key)  # encrypted again: new bytes, same content
    assert outcome["status"] == "duplicate"
    assert query(settings, "SELECT count(*) FROM staging.treatment_clients") == [(2,)]


def test_tampered_encrypted_delivery_is_quarantined_as_decryption(settings, master_key, hub_public, tmp_path):
    target = _drop_encrypted(settings, tmp_path, "treatment_contacts_20240101.csv", CONTACTS_HEADER + CONTACT,
                             hub_public)
    data = bytearray(target.read_bytes())
    data[-3] ^= 1
    target.write_bytes(bytes(data))
    os.utime(target, (1, 1))
    [outcome] = ingest_agency(settings, "treatment", master_key)
    assert outcome["status"] == "quarantined" and "rule 'decryption'" in outcome["reason"]
    assert _only_ledger_row(settings)[:1] == ("quarantined",)
    assert query(settings, "SELECT count(*) FROM staging.treatment_contacts") == [(0,)]
    assert list((settings.data_dir / "work").iterdir()) == []


def test_encrypted_delivery_without_a_hub_key_is_quarantined(settings, master_key, tmp_path):
    other = tmp_path / "elsewhere" / "drop.key"
    _, public = dropcrypt.generate_hub_keypair(other)
    _drop_encrypted(settings, tmp_path, "treatment_contacts_20240101.csv", CONTACTS_HEADER + CONTACT,
                    dropcrypt.load_public_key(public))
    [outcome] = ingest_agency(settings, "treatment", master_key)
    assert "rule 'decryption'" in outcome["reason"] and "keygen-drop" in outcome["reason"]


# --- bounded memory: chunk by chunk, still all or nothing ------------------------------------------

def _contacts(n, bad_at=None, dup_at=None):
    rows = []
    for i in range(1, n + 1):
        cid = "S1" if i == dup_at else f"S{i}"
        service = "haircut" if i == bad_at else "housing"
        rows.append(f"{cid},C{i % 3},2024-01-0{i % 9 + 1},{service}\n")
    return CONTACTS_HEADER + "".join(rows)


def test_chunked_load_equals_one_chunk_load(settings, master_key, monkeypatch):
    drop(settings, "treatment_contacts_20240101.csv", _contacts(7))
    monkeypatch.setattr(Intake, "chunk_rows", 2)
    [outcome] = ingest_agency(settings, "treatment", master_key)
    assert outcome["status"] == "accepted" and outcome["rows"] == 7
    assert query(settings, "SELECT list(_row_number ORDER BY _row_number) FROM staging.treatment_contacts") == [
        ([1, 2, 3, 4, 5, 6, 7],)]
    observed = dict(query(settings, "SELECT expectation || ':' || coalesce(column_name, ''), observed "
                                    "FROM ops.validation_results"))
    assert observed["expect_table_row_count_to_be_between:"] == "observed 7"
    assert observed["expect_column_values_to_be_in_set:service_type"] == "unexpected 0 of 7 rows, 0.0%"


def test_duplicate_key_across_chunks_is_caught_and_nothing_is_loaded(settings, master_key, monkeypatch):
    drop(settings, "treatment_contacts_20240101.csv", _contacts(7, dup_at=6))  # S1 in chunk 1 and chunk 3
    monkeypatch.setattr(Intake, "chunk_rows", 2)
    [outcome] = ingest_agency(settings, "treatment", master_key)
    assert outcome["status"] == "quarantined" and "unexpected 2 of 7 rows" in outcome["reason"]
    assert query(settings, "SELECT count(*) FROM staging.treatment_contacts") == [(0,)]
    assert query(settings, "SELECT count(*) FROM ops.batches") == [(0,)]
    [(success, observed)] = query(settings, "SELECT success, observed FROM ops.validation_results WHERE "
                                            "expectation = 'expect_column_values_to_be_unique' "
                                            "AND column_name = 'contact_id'")
    assert (success, observed) == (False, "unexpected 2 of 7 rows, 28.6%; rows 1, 6")  # S1 on rows 1 and 6


def test_failures_are_summed_over_chunks(settings, master_key, monkeypatch):
    text = _contacts(7, bad_at=2).replace("5,C2,2024-01-06,housing", "5,C2,2024-01-06,haircut")
    drop(settings, "treatment_contacts_20240101.csv", text)
    monkeypatch.setattr(Intake, "chunk_rows", 2)
    [outcome] = ingest_agency(settings, "treatment", master_key)
    assert "unexpected 2 of 7 rows" in outcome["reason"]
    assert query(settings, "SELECT count(*) FROM staging.treatment_contacts") == [(0,)]


def test_a_broken_last_row_rolls_back_the_chunks_already_inserted(settings, master_key, monkeypatch):
    drop(settings, "treatment_contacts_20240101.csv", _contacts(7) + "S99,C1,not-a-date,housing\n")
    monkeypatch.setattr(Intake, "chunk_rows", 2)
    [outcome] = ingest_agency(settings, "treatment", master_key)
    assert outcome["status"] == "quarantined" and "row 8" in outcome["reason"]
    assert query(settings, "SELECT count(*) FROM staging.treatment_contacts") == [(0,)]
    assert _only_ledger_row(settings)[0] == "quarantined"


def test_plaintext_left_by_a_killed_run_is_swept(settings, master_key):
    leftover = settings.data_dir / "work" / "drop-abc123"
    leftover.mkdir(parents=True)
    (leftover / "treatment_clients_20240101.csv").write_text(CLIENTS_HEADER + CLIENT_ROWS)
    ingest_agency(settings, "treatment", master_key)
    assert not leftover.exists()


def test_an_integer_too_large_is_quarantined_and_the_next_file_still_loads(settings, master_key):
    """A cell the warehouse cannot hold must be refused, not crash the run and block the inbox."""
    header = ("booking_id,charge_seq,inmate_id,last_name,first_name,dob,ssn,address,sex,race,"
              "booking_ts,release_ts,arrest_id,offense_code,severity")
    row = "B1,{seq},J1,Quill,Ada,02/03/1980,,,F,WHITE,01/02/2024 10:00,,,DRG01,felony\n"
    assert load_contracts()["jail_bookings"].column_names == header.split(",")
    bad = drop(settings, "jail_bookings_20240101.csv", header + "\n" + row.format(seq=2**63), agency="jail")
    os.utime(bad, (0, 0))  # taken first
    drop(settings, "jail_bookings_20240102.csv", header + "\n" + row.format(seq=1), agency="jail")
    outcomes = ingest_agency(settings, "jail", master_key)
    assert [(o["file"], o["status"]) for o in outcomes] == [
        ("jail_bookings_20240101.csv", "quarantined"), ("jail_bookings_20240102.csv", "accepted")]
    assert "rule 'integer'" in outcomes[0]["reason"] and str(2**63) not in outcomes[0]["reason"]
    assert query(settings, "SELECT charge_seq FROM staging.jail_bookings") == [(1,)]


def test_ledger_times_are_utc_even_for_superseded_rows(settings, master_key, monkeypatch):
    import time
    from datetime import timedelta

    monkeypatch.setenv("TZ", "America/Los_Angeles")  # a hub that is not run in UTC
    time.tzset()
    try:
        drop(settings, "treatment_clients_20240101.csv", CLIENTS_HEADER + CLIENT_ROWS)
        ingest_agency(settings, "treatment", master_key)
        drop(settings, "treatment_clients_20240102.csv", CLIENTS_HEADER + CLIENT_ROWS.replace("revoked", "active"))
        ingest_agency(settings, "treatment", master_key)
    finally:
        monkeypatch.undo()
        time.tzset()
    rows = query(settings, "SELECT status, received_at, updated_at FROM ops.file_ledger ORDER BY received_at")
    assert [r[0] for r in rows] == ["superseded", "accepted"]
    for _, received, updated in rows:
        assert received <= updated < received + timedelta(hours=1)


def test_quarantine_across_filesystems_copies_durably_then_removes(settings, master_key, monkeypatch):
    """An SFTP upload volume is often a separate mount: os.replace then fails with EXDEV."""
    import errno

    import connectors.inbox as inbox

    real_replace = os.replace

    def cross_device(src, dst):
        if Path(src).parent == settings.inbox("treatment"):
            raise OSError(errno.EXDEV, "Invalid cross-device link")
        return real_replace(src, dst)

    monkeypatch.setattr(inbox.os, "replace", cross_device)
    text = CONTACTS_HEADER + "S1,C1,2024-01-01,haircut\n"
    path = drop(settings, "treatment_contacts_20240101.csv", text)
    [outcome] = ingest_agency(settings, "treatment", master_key)
    assert outcome["status"] == "quarantined" and not path.exists()
    [kept] = [p for p in (settings.quarantine_dir / "treatment").iterdir() if p.name.endswith(".csv")]
    assert kept.read_text() == text


def test_a_file_removed_by_its_sender_before_it_is_taken_is_skipped(settings, master_key, monkeypatch):
    import connectors.inbox as inbox

    gone = drop(settings, "treatment_contacts_20240101.csv", CONTACTS_HEADER + "S1,C1,2024-01-01,housing\n")
    kept = drop(settings, "treatment_contacts_20240102.csv", CONTACTS_HEADER + "S2,C1,2024-01-02,housing\n")
    real_pending = inbox.pending_files

    def pending_then_removed(inbox_dir):
        found = real_pending(inbox_dir)
        gone.unlink()
        return found

    monkeypatch.setattr(inbox, "pending_files", pending_then_removed)
    outcomes = ingest_agency(settings, "treatment", master_key)
    assert [(o["file"], o["status"]) for o in outcomes] == [(kept.name, "accepted")]


# --- reading while archiving ---------------------------------------------------------------------

def test_a_file_is_parsed_while_it_is_archived_and_neither_moves_the_other(settings, master_key, monkeypatch):
    # 120,000 rows (about 3.5 MB, several of the reader's 1 MB blocks). The reading stops after its
    # first chunk until the archive copy is written, so the two reads of the one descriptor interleave:
    # with a shared file offset the archive would start the reader over, or the reader lose the rest.
    text = _contacts(120_000)
    drop(settings, "treatment_contacts_20240101.csv", text)
    monkeypatch.setattr(Intake, "chunk_rows", 5_000)
    reading, archived = threading.Event(), threading.Event()
    real_read, real_encrypt = inbox.read_chunks, inbox.encrypt_file

    def read_chunks(*args, **kwargs):
        for i, chunk in enumerate(real_read(*args, **kwargs)):
            if i == 1:
                reading.set()
                assert archived.wait(30)
            yield chunk

    def encrypt_file(*args, **kwargs):
        assert reading.wait(30)  # the reading began before the archive copy
        try:
            return real_encrypt(*args, **kwargs)
        finally:
            archived.set()

    monkeypatch.setattr(inbox, "read_chunks", read_chunks)
    monkeypatch.setattr(inbox, "encrypt_file", encrypt_file)
    [outcome] = ingest_agency(settings, "treatment", master_key)
    assert outcome["status"] == "accepted" and outcome["rows"] == 120_000
    assert query(settings, "SELECT count(*), count(DISTINCT _row_number), max(_row_number) "
                           "FROM staging.treatment_contacts") == [(120_000, 120_000, 120_000)]
    [(archive,)] = query(settings, "SELECT archive_path FROM ops.file_ledger")
    out = io.BytesIO()
    decrypt_to(settings.data_dir / archive, out, master_key)
    assert out.getvalue() == text.encode()


def test_a_file_refused_while_archived_leaves_no_reading_and_no_descriptor_behind(settings, master_key,
                                                                                 monkeypatch):
    drop(settings, "treatment_contacts_20240101.csv", _contacts(20_000))
    monkeypatch.setattr(Intake, "chunk_rows", 1_000)
    # The archive copy hashes differently from the file hashed before: written to in between.
    monkeypatch.setattr(inbox, "encrypt_file", lambda *args, **kwargs: "0" * 64)
    open_before = len(os.listdir("/proc/self/fd"))
    [outcome] = ingest_agency(settings, "treatment", master_key)
    assert outcome["status"] == "quarantined" and "rule 'file_changed'" in outcome["reason"]
    assert not [t for t in threading.enumerate() if t.name == "intake-reader"]
    assert len(os.listdir("/proc/self/fd")) == open_before
    assert query(settings, "SELECT count(*) FROM staging.treatment_contacts") == [(0,)]
