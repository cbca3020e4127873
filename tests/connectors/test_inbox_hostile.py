"""Careless and hostile deliveries: none may block another, crash the ledger or forge output."""

from __future__ import annotations

import json
import logging
import os
import re

import duckdb
import pytest

from connectors import inbox
from leadhub.pipeline import ingest_agency
from leadhub import cli

CLIENTS_HEADER = "client_id,last_name,first_name,dob,ssn,phone,address,sex,consent_status,consent_date\n"
CONTACTS_HEADER = "contact_id,client_id,contact_date,service_type\n"
REFERRALS_HEADER = ("referral_id,person_id,last_name,first_name,dob,ssn,sex,race,ethnicity,referral_date,"
                    "referral_type,offense_category,precinct,officer_id\n")
CONTROL = [chr(c) for c in range(32)] + ["\x7f"]


def clients(n: int) -> str:
    return CLIENTS_HEADER + "".join(
        f"C{i:05d},Surname{i},Given{i},1980-02-{i % 28 + 1:02d},,,,F,active,2022-01-05\n" for i in range(1, n + 1))


def contacts(n: int) -> str:
    return CONTACTS_HEADER + "".join(f"S{i:05d},C{i:05d},2024-01-0{i % 9 + 1},housing\n" for i in range(1, n + 1))


def referrals(n: int, dob=lambda i: f"1980-01-{i % 28 + 1:02d}") -> str:
    return REFERRALS_HEADER + "".join(
        f"R{i:05d},P{i:05d},Surname{i},Given{i},{dob(i)},,M,WHITE,UNKNOWN,2024-03-{i % 28 + 1:02d},"
        f"social_contact,drug,NORTH,B{i:04d}\n" for i in range(1, n + 1))


def drop(settings, agency: str, name: str | bytes, data: str | bytes):
    inbox_dir = settings.inbox(agency)
    inbox_dir.mkdir(parents=True, exist_ok=True)
    raw = os.path.join(os.fsencode(inbox_dir), name if isinstance(name, bytes) else os.fsencode(name))
    with open(raw, "wb") as f:
        f.write(data.encode() if isinstance(data, str) else data)
    os.utime(raw, (1, 1))  # old enough to count as complete
    return raw


def query(settings, sql: str, params=None) -> list[tuple]:
    with duckdb.connect(str(settings.warehouse_path), read_only=True) as con:
        return con.execute(sql, params or []).fetchall()


def test_poison_files_beside_good_ones_in_two_inboxes_never_stop_the_good_ones(settings, master_key,
                                                                             monkeypatch, capsys):
    # treatment: a good clients file, a name that is not UTF-8, and a file whose intake raises
    # an exception nobody foresaw; police: a good referrals file and another undecodable name.
    drop(settings, "treatment", "treatment_clients_20240101.csv", clients(3))
    drop(settings, "treatment", b"treatment_contacts_2025\xff.csv", contacts(2))
    drop(settings, "treatment", "treatment_contacts_20240102.csv", contacts(4))
    drop(settings, "police", b"police_referrals_\xff\xfe.csv", referrals(2))
    drop(settings, "police", "police_referrals_20240103.csv", referrals(5))
    real_load = inbox.Intake._load

    def load(self, delivery, *rest):
        if delivery.path.name == "treatment_contacts_20240102.csv":
            raise ZeroDivisionError("a bug that quotes Surname1")  # its message must go nowhere
        return real_load(self, delivery, *rest)

    monkeypatch.setattr(inbox.Intake, "_load", load)
    assert cli.main(["ingest"]) == 1  # quarantined files make the exit code 1, nothing crashes
    printed = capsys.readouterr().out

    # good files: 3 clients and 5 referrals loaded
    assert query(settings, "SELECT count(*) FROM current.treatment_clients") == [(3,)]
    assert query(settings, "SELECT count(*) FROM current.police_referrals") == [(5,)]
    ledger = dict(query(settings, "SELECT file_name, status FROM ops.file_ledger"))
    assert ledger == {
        "treatment_clients_20240101.csv": "accepted",
        "treatment_contacts_2025\\xff.csv": "quarantined",
        "treatment_contacts_20240102.csv": "quarantined",
        "police_referrals_\\xff\\xfe.csv": "quarantined",
        "police_referrals_20240103.csv": "accepted",
    }
    [(reason,)] = query(settings, "SELECT reason FROM ops.file_ledger WHERE file_name = ?",
                        ["treatment_contacts_20240102.csv"])
    assert "rule 'intake_error'" in reason and "ZeroDivisionError" in reason and "Surname1" not in reason
    assert "Surname1" not in printed and "\\xff" in printed
    # every inbox is empty: each poison file went to quarantine with its reason file
    assert os.listdir(settings.inbox("treatment")) == [] and os.listdir(settings.inbox("police")) == []
    quarantined = sorted(os.listdir(settings.quarantine_dir / "treatment"))
    assert len(quarantined) == 4 and all(n.isascii() and n.isprintable() for n in quarantined)
    infos = [json.loads((settings.quarantine_dir / "treatment" / n).read_text())
             for n in quarantined if n.endswith(".reason.json")]
    assert sorted(i["file"] for i in infos) == ["treatment_contacts_20240102.csv", "treatment_contacts_2025\\xff.csv"]
    # a second run finds nothing left to choke on
    assert cli.main(["ingest"]) == 0


@pytest.mark.parametrize("name", [
    "treatment_clients_2024.csv\n2026-12-01 INFO treatment_forged.csv: accepted",
    "treatment_clients\r2024.csv",
    "treatment_clients_\x1b[2J\x1b[31m2024.csv",
    "treatment_clients_\x07\x08\x00x.csv".replace("\x00", ""),
])
def test_control_characters_in_names_are_escaped_in_every_output(settings, master_key, caplog, capsys, name):
    drop(settings, "treatment", name, clients(2))
    with caplog.at_level(logging.DEBUG):
        assert cli.main(["ingest", "--agency", "treatment"]) == 1
    out = capsys.readouterr().out
    [(file_name, reason)] = query(settings, "SELECT file_name, reason FROM ops.file_ledger")
    qdir = settings.quarantine_dir / "treatment"
    reason_files = [p.read_text() for p in qdir.iterdir() if p.name.endswith(".reason.json")]
    outputs = [file_name, reason, out, *reason_files, *os.listdir(qdir),
               *(r.getMessage() for r in caplog.records)]
    for text in outputs:
        body = text[:-1] if text.endswith("\n") else text
        assert not any(c in body.replace("\n", "") for c in CONTROL), repr(text)
    # one line per file in the CLI output: the name cannot start a line of its own
    assert [line for line in out.splitlines() if "treatment_clients" in line][0].lstrip().startswith("quarantined")
    assert "\\x1b" in file_name or "\\x0a" in file_name or "\\x0d" in file_name or "\\x07" in file_name
    assert "rule 'file_name'" in reason


def test_a_hard_link_to_a_file_outside_the_inbox_is_refused(settings, master_key, tmp_path):
    outside = tmp_path / "elsewhere.csv"
    outside.write_text(contacts(2))
    inbox_dir = settings.inbox("treatment")
    inbox_dir.mkdir(parents=True, exist_ok=True)
    os.link(outside, inbox_dir / "treatment_contacts_20240101.csv")
    [outcome] = ingest_agency(settings, "treatment", master_key)
    assert outcome["status"] == "quarantined" and "rule 'hard_link'" in outcome["reason"]
    assert outside.read_text() == contacts(2)  # the other name is untouched
    assert query(settings, "SELECT count(*) FROM staging.treatment_contacts") == [(0,)]


def test_leftover_hub_temp_files_are_swept_but_agency_files_never(settings, master_key):
    archive, quarantine = settings.archive_dir / "treatment", settings.quarantine_dir / "treatment"
    archive.mkdir(parents=True, exist_ok=True)
    quarantine.mkdir(parents=True, exist_ok=True)
    left = [archive / "20261201T101010123456-0123456789ab__treatment_clients_1.csv.enc.tmp",
            quarantine / "20261201T101010123456-unread__treatment contacts.csv.tmp"]
    kept = [archive / "notes.enc.tmp", quarantine / "treatment_clients_1.csv.tmp",
            archive / "20261201T101010123456-0123456789ab__treatment_clients_1.csv.enc"]
    for p in left + kept:
        p.write_bytes(b"x")
    ingest_agency(settings, "treatment", master_key)
    assert [p.exists() for p in left] == [False, False]
    assert [p.exists() for p in kept] == [True, True, True]


@pytest.mark.parametrize("ending", ["\n", "\n\n\n", "\r\n\r\n"])
def test_a_file_ending_in_blank_lines_is_accepted(settings, master_key, ending):
    text = contacts(3).rstrip("\n")
    if ending.startswith("\r"):
        text = text.replace("\n", "\r\n")
    drop(settings, "treatment", "treatment_contacts_20240101.csv", text + ending)
    [outcome] = ingest_agency(settings, "treatment", master_key)
    assert (outcome["status"], outcome["rows"]) == ("accepted", 3)
    assert query(settings, "SELECT count(*) FROM current.treatment_contacts") == [(3,)]


def test_a_header_only_incremental_file_is_a_delivery_of_zero_rows(settings, master_key):
    drop(settings, "treatment", "treatment_contacts_20240101.csv", CONTACTS_HEADER)
    [outcome] = ingest_agency(settings, "treatment", master_key)
    assert (outcome["status"], outcome["rows"]) == ("accepted", 0)
    assert query(settings, "SELECT status, row_count FROM ops.file_ledger") == [("accepted", 0)]
    assert query(settings, "SELECT row_count FROM ops.batches") == [(0,)]


def test_a_birth_date_after_the_event_quarantines_the_file_naming_rows(settings, master_key):
    # rows 2 and 4 say born in 2099, referred in 2024: a negative age must never be published
    text = referrals(5, dob=lambda i: "2099-01-01" if i in (2, 4) else "1980-01-01")
    drop(settings, "police", "police_referrals_20240101.csv", text)
    [outcome] = ingest_agency(settings, "police", master_key)
    assert outcome["status"] == "quarantined"
    assert "birth date not after referral_date (unexpected 2 of 5 rows, 40.0%; rows 2, 4)" in outcome["reason"]
    assert query(settings, "SELECT count(*) FROM staging.police_referrals") == [(0,)]
    assert query(settings, "SELECT success FROM ops.validation_results "
                           "WHERE expectation = 'expect_birth_date_not_after_event'") == [(False,)]


def test_stage_log_lines_name_counts_never_values(settings, master_key, caplog):
    drop(settings, "treatment", "treatment_clients_20240101.csv", clients(4))
    with caplog.at_level(logging.INFO, logger="connectors.inbox"):
        ingest_agency(settings, "treatment", master_key)
    stages = [r.getMessage() for r in caplog.records if " rows in " in r.getMessage()]
    assert [m.split(": ")[1].split()[0] for m in stages] == ["parse", "normalize", "pseudonymize", "encode",
                                                                 "validate", "load"]
    assert all("4 rows" in m for m in stages)
    assert not any("Surname" in r.getMessage() or "C00001" in r.getMessage() for r in caplog.records)


def test_a_failure_after_the_load_committed_never_quarantines_the_loaded_file(settings, master_key,
                                                                             monkeypatch):
    # removing the file from the inbox fails once, after its rows committed: the run stops
    # (a worker lost at the worst moment), the file stays accepted, the next run sees a duplicate
    path = settings.inbox("treatment") / "treatment_clients_20240101.csv"
    drop(settings, "treatment", path.name, clients(2))
    real_unlink = type(path).unlink

    def unlink_once(self, *args, **kwargs):
        if self == path and not hasattr(unlink_once, "done"):
            unlink_once.done = True
            raise OSError("worker lost")
        return real_unlink(self, *args, **kwargs)

    monkeypatch.setattr(type(path), "unlink", unlink_once)
    with pytest.raises(OSError, match="worker lost"):
        ingest_agency(settings, "treatment", master_key)
    assert query(settings, "SELECT status FROM ops.file_ledger") == [("accepted",)]
    assert [o["status"] for o in ingest_agency(settings, "treatment", master_key)] == ["duplicate"]
    assert query(settings, "SELECT count(*) FROM current.treatment_clients") == [(2,)]


def test_the_feed_task_message_escapes_names_and_names_held_files():
    from dags._common import quarantine_message

    message = quarantine_message("treatment", [
        {"file": "x\nINFO forged.csv", "status": "quarantined", "reason": "x\nINFO forged.csv: rule 'file_name' failed"},
        {"file": "treatment_clients_2.csv", "status": "held",
         "reason": "treatment_clients_2.csv: rule 'volume' held: current 20 rows, delivery 3 rows"},
        {"file": "treatment_clients_1.csv", "status": "accepted", "reason": None},
    ])
    # a head line and one line per file: 4 lines, the forged "INFO" never starts one
    lines = message.splitlines()
    assert len(lines) == 4 and not any(line.startswith("INFO") for line in lines)
    assert lines[1] == "  x\\x0aINFO forged.csv: rule 'file_name' failed"
    assert lines[2].startswith("treatment: 1 file(s) held") and "rule 'volume'" in lines[3]


def test_a_terminal_gets_a_progress_bar_of_rows_without_values(settings, master_key, capsys, monkeypatch):
    monkeypatch.setattr(inbox.Intake, "chunk_rows", 2)
    drop(settings, "treatment", "treatment_clients_20240101.csv", clients(5))
    ingest_agency(settings, "treatment", master_key, progress=True)
    bar = capsys.readouterr().err
    # 5 rows in chunks of 2: the bar counts rows (2, 4, ...; tqdm redraws at most every 0.1 s)
    # under the file's name
    assert re.search(r"treatment_clients_20240101\.csv: [1-9][\d.]*rows", bar)
    assert "Surname" not in bar and "C00001" not in bar


def test_a_link_whose_other_name_goes_at_once_is_taken(settings, master_key, tmp_path, monkeypatch):
    # a pull or a restore links its finished part file in, then removes the part name: an intake
    # looking in between must not refuse the delivery as a hard link
    part = settings.inbox("treatment") / ".treatment_contacts_20240101.csv.part"
    drop(settings, "treatment", part.name, contacts(2))
    final = part.with_name("treatment_contacts_20240101.csv")
    os.link(part, final)
    real_sleep = inbox.time.sleep

    def sleep(seconds):
        if part.exists():
            part.unlink()  # the deliverer finishes while the intake waits
        real_sleep(0)

    monkeypatch.setattr(inbox.time, "sleep", sleep)
    [outcome] = ingest_agency(settings, "treatment", master_key)
    assert (outcome["status"], outcome["rows"]) == ("accepted", 2)
