from datetime import date

import pytest

from leadhub.core.contracts import load_contracts
from leadhub.core.readers import header_difference, read_chunks
from leadhub.core.errors import RejectedFile

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
    (HEADER + "S1,C1,2024-01-01,housing\n\nS2,C1,2024-01-01,housing\n", "blank_row", 2),
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


# --- formats other than CSV with a header ---------------------------------------------------------

import dataclasses  # noqa: E402
import json  # noqa: E402
from datetime import datetime  # noqa: E402

from openpyxl import Workbook  # noqa: E402

from leadhub.core import readers  # noqa: E402
from leadhub.core.contracts import FileFormat  # noqa: E402

CLIENTS = load_contracts()["treatment_clients"]
COLUMNS = CONTACTS.column_names


def variant(contract, **fmt):
    """The same contract delivered in another format (same columns, same staging table)."""
    return dataclasses.replace(contract, format=FileFormat.from_raw(fmt))


def _xlsx(tmp_path, rows, sheets=1, name="treatment_contacts_20240101.xlsx"):
    wb = Workbook()
    ws = wb.active
    for row in rows:
        ws.append(row)
    for i in range(1, sheets):
        wb.create_sheet(f"extra{i}")
    path = tmp_path / name
    wb.save(path)
    return path


def test_xlsx_reads_excel_dates_numbers_and_text_dates(tmp_path):
    path = _xlsx(tmp_path, [COLUMNS,
                            ["S1", 1001, datetime(2024, 1, 2), "housing"],
                            ["S2", "C2", "2024-01-03", "benefits"],
                            [None, None, None, None]])  # trailing empty rows are harmless
    [(numbers, cols)] = list(read_chunks(path, variant(CONTACTS, type="xlsx")))
    assert numbers == [1, 2]
    assert cols["client_id"] == ["1001", "C2"]
    assert cols["contact_date"] == [date(2024, 1, 2), date(2024, 1, 3)]


@pytest.mark.parametrize("rows, sheets, rule, row", [
    ([COLUMNS, ["S1", "C1", datetime(2024, 1, 2), "housing"]], 2, "xlsx_sheets", None),
    ([COLUMNS, ["S1", "C1", datetime(2024, 1, 2), "housing"], ["S2", "=HYPERLINK(\"x\")", "2024-01-02", "housing"]],
     1, "xlsx_formula", 2),
    ([COLUMNS, ["S1", "C1", "=TODAY()", "housing"]], 1, "xlsx_formula", 1),
    ([["contact_id", "client", "contact_date", "service_type"]], 1, "header", 0),
    ([COLUMNS, ["S1", "C1", "2024-01-02", "housing", "extra"]], 1, "ragged_row", 1),
    ([COLUMNS, ["S1", "C1", "02.01.2024", "housing"]], 1, "date_format", 1),
    ([COLUMNS, ["S1", "C1", datetime(2024, 1, 2, 13, 5), "housing"]], 1, "date_format", 1),
    ([COLUMNS, ["S1", "C1", "2024-01-02", "housing"], [None] * 4, ["S2", "C1", "2024-01-02", "housing"]],
     1, "blank_row", 2),
])
def test_xlsx_refusals(tmp_path, rows, sheets, rule, row):
    path = _xlsx(tmp_path, rows, sheets)
    with pytest.raises(RejectedFile) as e:
        list(read_chunks(path, variant(CONTACTS, type="xlsx")))
    assert (e.value.rule, e.value.row) == (rule, row)
    assert "HYPERLINK" not in str(e.value) and "TODAY" not in str(e.value)


def test_a_file_that_is_not_a_workbook_is_refused(tmp_path):
    path = _write(tmp_path, HEADER + "S1,C1,2024-01-01,housing\n", name="treatment_contacts_20240101.xlsx")
    with pytest.raises(RejectedFile) as e:
        list(read_chunks(path, variant(CONTACTS, type="xlsx")))
    assert e.value.rule == "xlsx_unreadable"


def test_jsonl_reads_objects_in_any_key_order(tmp_path):
    lines = [{"contact_id": "S1", "client_id": "C1", "contact_date": "2024-01-02", "service_type": "housing"},
             {"service_type": "benefits", "contact_date": "2024-01-03", "client_id": 77, "contact_id": "S2"}]
    path = _write(tmp_path, "".join(json.dumps(o) + "\n" for o in lines) + "\n", name="c.jsonl")
    [(numbers, cols)] = list(read_chunks(path, variant(CONTACTS, type="jsonl")))
    assert numbers == [1, 2] and cols["client_id"] == ["C1", "77"]
    assert cols["contact_date"] == [date(2024, 1, 2), date(2024, 1, 3)]


@pytest.mark.parametrize("line, rule, detail", [
    ({"contact_id": "S1", "client_id": "C1", "contact_date": "2024-01-02"}, "header",
     "missing columns: service_type"),
    ({"contact_id": "S1", "client_id": "C1", "contact_date": "2024-01-02", "service_type": "housing", "note": "x"},
     "header", "unexpected columns: note"),
    ({"contact_id": "S1", "client": "C1", "contact_date": "2024-01-02", "service_type": "housing"}, "header",
     "renamed columns: client_id->client"),
    ({"contact_id": "S1", "client_id": "C1", "contact_date": "Jan 2", "service_type": "housing"}, "date_format", ""),
    ({"contact_id": "S1", "client_id": True, "contact_date": "2024-01-02", "service_type": "housing"}, "type", ""),
    ("not json at all", "jsonl_syntax", "not valid JSON"),
    (["S1", "C1", "2024-01-02", "housing"], "jsonl_syntax", "not a JSON object"),
])
def test_jsonl_refusals_spell_out_the_difference(tmp_path, line, rule, detail):
    good = json.dumps({"contact_id": "S0", "client_id": "C0", "contact_date": "2024-01-01",
                       "service_type": "housing"})
    bad = line if isinstance(line, str) else json.dumps(line)
    path = _write(tmp_path, good + "\n" + bad + "\n", name="c.jsonl")
    with pytest.raises(RejectedFile) as e:
        list(read_chunks(path, variant(CONTACTS, type="jsonl")))
    assert (e.value.rule, e.value.row) == (rule, 2) and detail in e.value.detail


def test_headerless_csv_takes_columns_in_declared_order(tmp_path):
    path = _write(tmp_path, "S1,C1,2024-01-01,housing\nS2,C2,2024-01-02,benefits\n")
    [(numbers, cols)] = list(read_chunks(path, variant(CONTACTS, type="csv", header=False)))
    assert numbers == [1, 2] and cols["contact_id"] == ["S1", "S2"]


def test_headerless_contract_refuses_a_file_that_has_a_header(tmp_path):
    path = _write(tmp_path, HEADER + "S1,C1,2024-01-01,housing\n")
    with pytest.raises(RejectedFile) as e:
        list(read_chunks(path, variant(CONTACTS, type="csv", header=False)))
    assert (e.value.rule, e.value.row) == ("header", 1)


def test_tsv_defaults_to_tab_delimiter(tmp_path):
    path = _write(tmp_path, HEADER.replace(",", "\t") + "S1\tC1\t2024-01-01\thousing\n")
    fmt = variant(CONTACTS, type="tsv")
    assert fmt.format.delimiter == "\t"
    [(_, cols)] = list(read_chunks(path, fmt))
    assert cols["service_type"] == ["housing"]


def test_a_file_sent_without_its_header_is_described_without_its_values(tmp_path):
    row = "C00001,Zebediah,Quill,1980-02-03,123-45-6780,206-555-0100,1 Main St,M,active,2022-01-05\n"
    with pytest.raises(RejectedFile) as e:
        list(read_chunks(_write(tmp_path, row + row, name="treatment_clients_20240101.csv"), CLIENTS))
    assert e.value.rule == "header" and "header row missing" in str(e.value)
    for raw in ("C00001", "Zebediah", "Quill", "1980", "123-45", "206-555", "Main"):
        assert raw not in str(e.value)


def test_nul_bytes_and_overlong_lines_are_refused(tmp_path, monkeypatch):
    with pytest.raises(RejectedFile) as e:
        list(read_chunks(_write(tmp_path, HEADER + "S1,C1,2024-01-01,hous\x00ing\n"), CONTACTS))
    assert e.value.rule == "binary_content"
    monkeypatch.setattr(readers, "MAX_LINE_CHARS", 100)
    with pytest.raises(RejectedFile) as e:
        list(read_chunks(_write(tmp_path, HEADER + "S1,C1,2024-01-01," + "x" * 500 + "\n"), CONTACTS))
    assert e.value.rule == "line_too_long"


def test_latin1_contract_reads_latin1(tmp_path):
    text = HEADER + "S1,C\xe9,2024-01-01,housing\n"
    [(_, cols)] = list(read_chunks(_write(tmp_path, text, encoding="latin-1"),
                                   variant(CONTACTS, type="csv", encoding="latin-1")))
    assert cols["client_id"] == ["C\xe9"]


@pytest.mark.parametrize("fmt", ["csv", "jsonl"])
def test_an_integer_too_large_for_the_warehouse_is_a_refused_cell(tmp_path, fmt):
    """charge_seq is a BIGINT column: 2**63 would otherwise crash the load instead of being refused."""
    bookings = load_contracts()["jail_bookings"]
    cells = {c: "" for c in bookings.column_names}
    cells.update(booking_id="B1", charge_seq=str(2**63), inmate_id="J1", last_name="Quill", first_name="Ada",
                 dob="02/03/1980", booking_ts="01/02/2024 10:00", offense_code="DRG01", severity="felony")
    if fmt == "csv":
        text = ",".join(bookings.column_names) + "\n" + ",".join(cells.values()) + "\n"
    else:
        import json
        text = json.dumps({**cells, "charge_seq": 2**63}) + "\n"
        bookings = variant(bookings, type="jsonl")
    path = _write(tmp_path, text, name=f"jail_bookings_20240101.{fmt}")
    with pytest.raises(RejectedFile) as refused:
        list(read_chunks(path, bookings))
    assert (refused.value.rule, refused.value.row) == ("integer", 1)
    assert str(2**63) not in str(refused.value)
    cells["charge_seq"] = str(2**63 - 1)
    if fmt == "csv":
        ok = _write(tmp_path, ",".join(bookings.column_names) + "\n" + ",".join(cells.values()) + "\n",
                    name="jail_bookings_20240102.csv")
        [(_, cols)] = list(read_chunks(ok, bookings))
        assert cols["charge_seq"] == [2**63 - 1]


@pytest.mark.parametrize("ending", ["\n", "\n\n\n", "\r\n\r\n", "\n   \n", "\n,,,\n"])
def test_trailing_blank_lines_end_the_data_instead_of_refusing_it(tmp_path, ending):
    # two data rows, then blank (or all-empty) lines: rows 1 and 2 are read, nothing refused
    newline = "\r\n" if ending.startswith("\r") else "\n"
    rows = newline.join([HEADER.strip(), "S1,C1,2024-01-01,housing", "S2,C1,2024-01-02,housing"])
    chunks = list(read_chunks(_write(tmp_path, rows + ending), CONTACTS))
    assert [numbers for numbers, _ in chunks] == [[1, 2]]
    assert chunks[0][1]["contact_id"] == ["S1", "S2"]


@pytest.mark.parametrize("text", [HEADER, HEADER + "\n\n", HEADER.rstrip("\n")])
def test_a_header_only_csv_is_zero_rows_not_an_error(tmp_path, text):
    assert list(read_chunks(_write(tmp_path, text), CONTACTS)) == []


def test_a_header_only_workbook_is_zero_rows_not_an_error(tmp_path):
    assert list(read_chunks(_xlsx(tmp_path, [COLUMNS], 1), variant(CONTACTS, type="xlsx"))) == []
