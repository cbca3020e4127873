"""Originals rewritten without their sealed rows, in every format a contract may declare: the
rewrite reads back through the contract's own reader with the rows left, numbered as staging
will number them."""

import dataclasses
import io
import json
from datetime import datetime

import pytest
from openpyxl import Workbook, load_workbook

from leadhub.core.contracts import FileFormat, load_contracts
from leadhub.core.readers import read_chunks
from leadhub.core.redact import REDACTABLE_FORMATS, rewrite_original

CONTACTS = load_contracts()["treatment_contacts"]  # contact_id (record id), client_id (person id), ...
BOOKINGS = load_contracts()["jail_bookings"]        # arrest_id quotes police arrest numbers
COLUMNS = CONTACTS.column_names
ROWS = [["S1", "C1", "2024-01-02", "housing"],      # row 1: sealed by number
        ["S2", "C2", "2024-01-03", "benefits"],     # row 2: kept
        ["S3", "C9", "2024-01-04", "housing"],      # row 3: sealed person C9
        ["S4", "C2", "2024-01-05", "housing"],      # row 4: sealed record S4
        ["S5", "C3", "2024-01-06", "benefits"]]     # row 5: kept


def variant(contract, **fmt):
    return dataclasses.replace(contract, format=FileFormat.from_raw(fmt))


def read_back(data: bytes, contract, tmp_path, suffix):
    path = tmp_path / f"rewritten.{suffix}"
    path.write_bytes(data)
    return [(n, [cols[c][i] for c in ("contact_id", "client_id")])
            for numbers, cols in read_chunks(path, contract) for i, n in enumerate(numbers)]


# Rows 1, 3 and 4 go: S2 becomes row 1 and S5 row 2, as renumber_rows moves them in staging.
EXPECTED = [(1, ["S2", "C2"]), (2, ["S5", "C3"])]


def test_every_readable_format_has_a_rewriter():
    assert set(REDACTABLE_FORMATS) == {"csv", "tsv", "jsonl", "xlsx"}


def test_jsonl_original_loses_its_sealed_lines_and_keeps_the_others_byte_for_byte(tmp_path):
    contract = variant(CONTACTS, type="jsonl")
    lines = [json.dumps(dict(zip(COLUMNS, r))) + "\n" for r in ROWS]
    lines[1] = lines[1].replace(", ", ",  ")  # a kept line stays exactly as delivered
    plain = "".join(lines).encode()
    new, cut, blanked = rewrite_original(plain, contract, drop={1}, records={"S4"}, persons={"C9"})
    assert (cut, blanked) == ((1, 3, 4), 0)
    assert new == (lines[1] + lines[4]).encode()
    assert read_back(new, contract, tmp_path, "jsonl") == EXPECTED


def test_jsonl_quote_of_a_sealed_record_is_nulled(tmp_path):
    contract = variant(BOOKINGS, type="jsonl")
    row = {c: None for c in BOOKINGS.column_names}
    lines = [json.dumps({**row, "booking_id": b, "arrest_id": a}) + "\r\n" for b, a in (("B1", "ARR-1"), ("B2", 7))]
    new, cut, blanked = rewrite_original("".join(lines).encode(), contract, blank={"arrest_id": {"ARR-1", "7"}})
    assert (cut, blanked) == ((), 2)   # a number quoting "7" is the id the reader makes of it
    assert [json.loads(line)["arrest_id"] for line in new.decode().splitlines()] == [None, None]
    assert new.count(b"\r\n") == 2    # line endings kept


def test_xlsx_original_loses_its_sealed_rows(tmp_path):
    contract = variant(CONTACTS, type="xlsx")
    wb = Workbook()
    wb.active.append(COLUMNS)
    for r in ROWS:
        wb.active.append([r[0], 4242 if r[1] == "C9" else r[1], datetime.fromisoformat(r[2]), r[3]])
    buf = io.BytesIO()
    wb.save(buf)
    # C9 typed as a number in Excel: person 4242 is sealed as the text "4242".
    new, cut, blanked = rewrite_original(buf.getvalue(), contract, drop={1}, records={"S4"}, persons={"4242"})
    assert (cut, blanked) == ((1, 3, 4), 0)
    assert read_back(new, contract, tmp_path, "xlsx") == EXPECTED
    sheet = load_workbook(io.BytesIO(new)).active
    assert [c.value for c in sheet[1]] == COLUMNS                      # header kept
    assert sheet["C2"].value == datetime(2024, 1, 3)                   # cells keep their types


def test_headerless_csv_counts_rows_from_the_first_line(tmp_path):
    contract = variant(CONTACTS, type="csv", header=False)
    plain = "".join(",".join(r) + "\n" for r in ROWS).encode()
    new, cut, _ = rewrite_original(plain, contract, drop={1}, records={"S4"}, persons={"C9"})
    assert cut == (1, 3, 4)
    assert read_back(new, contract, tmp_path, "csv") == EXPECTED


@pytest.mark.parametrize("fmt, data", [("jsonl", b'{"contact_id": "S1"\n'), ("xlsx", b"PK not a workbook")])
def test_an_unparseable_original_is_a_value_error(fmt, data):
    with pytest.raises(ValueError, match=f"cannot be parsed as {fmt}|JSON|Expecting"):
        rewrite_original(data, variant(CONTACTS, type=fmt), records={"S1"})
