from datetime import date

import pytest

from connectors.contracts import load_contracts
from connectors.readers import header_difference, read_chunks
from leadhub.errors import RejectedFile

CONTACTS = load_contracts()["treatment_contacts"]
HEADER = "contact_id,client_id,contact_date,service_type\n"


def _write(tmp_path, text, name="treatment_contacts_20240101.csv", encoding="utf-8"):
    p = tmp_path / name
    p.write_bytes(text.encode(encoding) if isinstance(text, str) else text)
    return p


def test_reads_typed_columns_in_chunks(tmp_path):
    rows = "".join(f"S{i},C1,2024-01-0{i % 9 + 1},housing\n" for i in range(5))
    chunks = list(read_chunks(_write(tmp_path, HEADER + rows), CONTACTS, chunk_rows=2))
    assert [len(r) for r, _ in chunks] == [2, 2, 1]
    numbers, cols = chunks[0]
    assert numbers == [1, 2] and cols["contact_date"][0] == date(2024, 1, 1)


@pytest.mark.parametrize("text, rule, row", [
    ("contact_id,client_id,contact_dt,service_type\nS1,C1,2024-01-01,housing\n", "header", 0),
    (HEADER + "S1,C1,2024-01-01,housing\nS2,C1,2024-01-01\n", "ragged_row", 2),
    (HEADER + "S1,C1,01/02/2024,housing\n", "date_format", 1),
    (HEADER + "S1,,2024-01-01,housing\n", "not_null", 1),
    (HEADER, "no_rows", None),
])
def test_broken_files_name_the_rule_and_row(tmp_path, text, rule, row):
    with pytest.raises(RejectedFile) as e:
        list(read_chunks(_write(tmp_path, text), CONTACTS))
    assert e.value.rule == rule and e.value.row == row
    assert "treatment_contacts_20240101.csv" in str(e.value)


def test_wrong_encoding_is_refused(tmp_path):
    raw = (HEADER + "S1,C1,2024-01-01,housing\n").encode() + b"S2,C\xe9,2024-01-01,housing\n"
    with pytest.raises(RejectedFile) as e:
        list(read_chunks(_write(tmp_path, raw), CONTACTS))
    assert e.value.rule == "encoding"


def test_errors_never_echo_cell_values(tmp_path):
    text = HEADER + "S1,C1,ZEBEDIAH-1980,housing\n"
    with pytest.raises(RejectedFile) as e:
        list(read_chunks(_write(tmp_path, text), CONTACTS))
    assert "ZEBEDIAH" not in str(e.value)


def test_header_difference_spells_out_renames_and_missing_columns():
    assert header_difference(["a", "b", "c"], ["a", "x", "c"]) == "renamed columns: b->x"
    assert header_difference(["a", "b", "c"], ["a", "c", "d", "e"]) == (
        "missing columns: b; unexpected columns: d, e")
