"""The volume guard: a delivery that would remove too many current rows waits for a steward."""

from __future__ import annotations

import os

import duckdb
import pytest

from leadhub.pipeline import ingest_agency
from leadhub import cli, pipeline
from leadhub.core.errors import LeadHubError
from leadhub.maintenance import restore_ledger_entry

CLIENTS_HEADER = "client_id,last_name,first_name,dob,ssn,phone,address,sex,consent_status,consent_date\n"
CONTACTS_HEADER = "contact_id,client_id,contact_date,service_type\n"


def clients(n: int, first: int = 1) -> str:
    return CLIENTS_HEADER + "".join(
        f"C{i:05d},Surname{i},Given{i},1980-02-{i % 28 + 1:02d},,,,F,active,2022-01-05\n"
        for i in range(first, first + n))


def contacts(n: int) -> str:
    return CONTACTS_HEADER + "".join(f"S{i:05d},C{i:05d},2024-01-0{i % 9 + 1},housing\n" for i in range(1, n + 1))


def deliver(settings, key, name: str, text: str, agency: str = "treatment") -> dict:
    inbox = settings.inbox(agency)
    inbox.mkdir(parents=True, exist_ok=True)
    (inbox / name).write_text(text)
    os.utime(inbox / name, (1, 1))
    [outcome] = ingest_agency(settings, agency, key)
    return outcome


def query(settings, sql: str, params=None) -> list[tuple]:
    with duckdb.connect(str(settings.warehouse_path), read_only=True) as con:
        return con.execute(sql, params or []).fetchall()


def status(settings, file_id: str) -> str:
    return query(settings, "SELECT status FROM ops.file_ledger WHERE file_id = ?", [file_id])[0][0]


def test_a_cut_full_history_delivery_is_held_archived_and_leaves_the_inbox(settings, master_key):
    assert deliver(settings, master_key, "treatment_clients_20240101.csv", clients(20))["status"] == "accepted"
    held = deliver(settings, master_key, "treatment_clients_20240201.csv", clients(3))
    # 20 current rows; the new file keeps C00001-C00003, so 17 of 20 would go: 85.0%
    assert held["status"] == "held"
    assert "current 20 rows, delivery 3 rows, would remove 17 = 85.0% (limit 10%)" in held["reason"]
    assert query(settings, "SELECT count(*) FROM current.treatment_clients") == [(20,)]
    assert query(settings, "SELECT count(*) FROM staging.treatment_clients") == [(20,)]  # nothing of it staged
    [(archive, rows)] = query(settings, "SELECT archive_path, row_count FROM ops.file_ledger WHERE status = 'held'")
    assert rows == 3 and (settings.data_dir / archive).is_file()
    assert os.listdir(settings.inbox("treatment")) == []
    # an identical re-send is not held a second time
    again = deliver(settings, master_key, "treatment_clients_20240202.csv", clients(3))
    assert again["status"] == "duplicate" and held["file_id"] in again["reason"]


def test_a_delivery_with_the_same_count_but_other_keys_is_held_too(settings, master_key):
    deliver(settings, master_key, "treatment_clients_20240101.csv", clients(10))
    held = deliver(settings, master_key, "treatment_clients_20240201.csv", clients(10, first=101))
    assert held["status"] == "held" and "would remove 10 = 100.0%" in held["reason"]


def test_a_header_only_full_history_file_would_remove_everything_and_is_held(settings, master_key):
    deliver(settings, master_key, "treatment_clients_20240101.csv", clients(5))
    held = deliver(settings, master_key, "treatment_clients_20240201.csv", CLIENTS_HEADER)
    assert held["status"] == "held" and "current 5 rows, delivery 0 rows, would remove 5 = 100.0%" in held["reason"]
    assert query(settings, "SELECT count(*) FROM current.treatment_clients") == [(5,)]


def test_a_short_same_name_correction_of_an_incremental_file_is_held(settings, master_key):
    deliver(settings, master_key, "treatment_contacts_20240101.csv", contacts(30))
    deliver(settings, master_key, "treatment_contacts_20240102.csv", CONTACTS_HEADER + "S90000,C1,2024-01-02,housing\n")
    held = deliver(settings, master_key, "treatment_contacts_20240101.csv", contacts(3))
    # the 30 current rows of that file name; 27 would go. The other file's row is not counted.
    assert held["status"] == "held"
    assert "current 30 rows, delivery 3 rows, would remove 27 = 90.0%" in held["reason"]
    assert query(settings, "SELECT count(*) FROM current.treatment_contacts") == [(31,)]


def test_a_correction_that_adds_rows_loads_as_usual(settings, master_key):
    deliver(settings, master_key, "treatment_contacts_20240101.csv", contacts(10))
    assert deliver(settings, master_key, "treatment_contacts_20240101.csv", contacts(12))["status"] == "accepted"
    assert query(settings, "SELECT count(*) FROM current.treatment_contacts") == [(12,)]


def test_release_loads_a_held_delivery_and_audits_who_when_and_why(settings, master_key, capsys, audit_entries):
    deliver(settings, master_key, "treatment_clients_20240101.csv", clients(20))
    held = deliver(settings, master_key, "treatment_clients_20240201.csv", clients(3))
    assert cli.main(["status"]) == 1
    assert f"held {held['file_id']} treatment/treatment_clients_20240201.csv" in capsys.readouterr().out
    with pytest.raises(SystemExit):  # --reason is required
        cli.main(["release", held["file_id"]])
    assert cli.main(["release", held["file_id"], "--reason", "agency confirmed the roster shrank",
                     "--who", "steward-a"]) == 0
    out = capsys.readouterr().out
    assert "accepted" in out and "(3 rows)" in out
    assert status(settings, held["file_id"]) == "accepted"
    assert query(settings, "SELECT count(*) FROM current.treatment_clients") == [(3,)]
    [entry] = audit_entries()
    assert (entry["action"], entry["file_id"], entry["who"], entry["reason"]) == (
        "release", held["file_id"], "steward-a", "agency confirmed the roster shrank")
    [(reason,)] = query(settings, "SELECT reason FROM ops.file_ledger WHERE file_id = ?", [held["file_id"]])
    assert reason.startswith("released by a steward at ") and "steward-a" not in reason
    # only a held file can be released
    with pytest.raises(LeadHubError, match="not held"):
        pipeline.release(settings, held["file_id"], "again")


def test_a_held_delivery_stays_held_without_a_release(settings, master_key):
    deliver(settings, master_key, "treatment_clients_20240101.csv", clients(20))
    held = deliver(settings, master_key, "treatment_clients_20240201.csv", clients(3))
    assert ingest_agency(settings, "treatment", master_key) == []
    assert status(settings, held["file_id"]) == "held"
    assert query(settings, "SELECT count(*) FROM current.treatment_clients") == [(20,)]


def test_reprocess_force_makes_an_earlier_delivery_current_again(settings, master_key, capsys, audit_entries):
    good = deliver(settings, master_key, "treatment_clients_20240101.csv", clients(20))
    # a cut file slipped through a release by mistake: 3 rows are current
    held = deliver(settings, master_key, "treatment_clients_20240201.csv", clients(3))
    pipeline.release(settings, held["file_id"], "mistake")
    assert query(settings, "SELECT count(*) FROM current.treatment_clients") == [(3,)]
    # re-processing without --force brings the same bytes back: only a duplicate
    restore_ledger_entry(settings, master_key, good["file_id"])
    assert ingest_agency(settings, "treatment", master_key)[0]["status"] == "duplicate"
    assert query(settings, "SELECT count(*) FROM current.treatment_clients") == [(3,)]
    # with --force the good delivery is loaded again as a new, current entry
    assert cli.main(["reprocess", good["file_id"], "--force", "--reason", "undo the cut file"]) == 0
    assert "accepted" in capsys.readouterr().out
    assert query(settings, "SELECT count(*) FROM current.treatment_clients") == [(20,)]
    rows = query(settings, "SELECT file_id, status, reason, archive_path FROM ops.file_ledger "
                           "WHERE file_name = 'treatment_clients_20240101.csv' ORDER BY received_at")
    assert [r[1] for r in rows] == ["superseded", "duplicate", "accepted"]
    new_id, _, reason, archive = rows[-1]
    assert reason.startswith(f"re-loaded from {good['file_id']} by a steward at ")
    assert (settings.data_dir / archive).is_file()
    assert status(settings, held["file_id"]) == "superseded"
    actions = [entry["action"] for entry in audit_entries()]
    assert actions == ["release", "reload"]
    # only a superseded entry can be re-loaded this way
    with pytest.raises(LeadHubError, match="superseded"):
        pipeline.reload(settings, new_id)


def test_a_held_delivery_older_than_the_current_one_is_not_released_over_it(settings, master_key):
    deliver(settings, master_key, "treatment_clients_20240101.csv", clients(20))
    held = deliver(settings, master_key, "treatment_clients_20240201.csv", clients(3))
    later = deliver(settings, master_key, "treatment_clients_20240301.csv", clients(21))
    assert later["status"] == "accepted"
    with pytest.raises(LeadHubError, match=f"held before {later['file_id']}, which is current now"):
        pipeline.release(settings, held["file_id"], "too late")
    assert status(settings, held["file_id"]) == "held"
    assert query(settings, "SELECT count(*) FROM current.treatment_clients") == [(21,)]
