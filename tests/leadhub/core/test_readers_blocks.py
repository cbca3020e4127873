"""The block-wise reading of text files: lines cut across blocks, refusals on the row they are on."""

from datetime import date

import pyarrow as pa
import pytest

from leadhub.core import readers
from leadhub.core.contracts import load_contracts
from leadhub.core.errors import RejectedFile
from leadhub.core.readers import PY_WHITESPACE, read_chunks

CONTACTS = load_contracts()["treatment_contacts"]
HEADER = "contact_id,client_id,contact_date,service_type\n"


def _write(tmp_path, data: bytes):
    path = tmp_path / "treatment_contacts_20240101.csv"
    path.write_bytes(data)
    return path


def _rows(n: int, newline: str = "\n") -> str:
    return "".join(f"S{i},C{i % 3},2024-01-{i % 28 + 1:02d},housing{newline}" for i in range(1, n + 1))


@pytest.mark.parametrize("block", [1, 7, 64, 1 << 20])
@pytest.mark.parametrize("newline", ["\n", "\r\n", "\r"])
def test_lines_cut_across_blocks_read_as_whole_rows(tmp_path, monkeypatch, block, newline):
    # 7-byte blocks cut rows, and "\r\n" pairs, in every place; the rows come out whole
    monkeypatch.setattr(readers, "TEXT_BLOCK_BYTES", block)
    path = _write(tmp_path, (HEADER.replace("\n", newline) + _rows(40, newline)).encode())
    chunks = list(read_chunks(path, CONTACTS, chunk_rows=16))
    assert [numbers for numbers, _ in chunks] == [list(range(1, 17)), list(range(17, 33)), list(range(33, 41))]
    cols = chunks[2][1]
    # row 40: S40, C1 (40 % 3), 2024-01-13 (40 % 28 + 1)
    assert (cols["contact_id"][-1], cols["client_id"][-1], cols["contact_date"][-1]) == (
        "S40", "C1", date(2024, 1, 13))


@pytest.mark.parametrize("block", [5, 1 << 20])
def test_an_invalid_byte_is_refused_on_its_own_row(tmp_path, monkeypatch, block):
    # rows 1-29 are fine, row 30 holds a latin-1 byte in a utf-8 file: refused at row 30
    monkeypatch.setattr(readers, "TEXT_BLOCK_BYTES", block)
    data = (HEADER + _rows(29)).encode() + b"S30,C\xe9,2024-01-01,housing\n" + _rows(5).encode()
    with pytest.raises(RejectedFile) as e:
        list(read_chunks(_write(tmp_path, data), CONTACTS, chunk_rows=8))
    assert (e.value.rule, e.value.row) == ("encoding", 30)


def test_an_earlier_broken_row_is_named_before_a_later_nul_byte(tmp_path):
    # row 3 has three fields, a NUL byte sits on row 6 (physical line 7): row 3 is refused first
    rows = _rows(5).splitlines(keepends=True)
    rows[2] = "S3,C1,2024-01-03\n"
    data = (HEADER + "".join(rows) + "S6,C1,2024-01-01,hous\x00ing\n").encode()
    with pytest.raises(RejectedFile) as e:
        list(read_chunks(_write(tmp_path, data), CONTACTS))
    assert (e.value.rule, e.value.row) == ("ragged_row", 3)
    rows[2] = "S3,C1,2024-01-03,housing\n"
    with pytest.raises(RejectedFile) as e:
        list(read_chunks(_write(tmp_path, (HEADER + "".join(rows) + "S6,C1,x\x00\n").encode()), CONTACTS))
    assert e.value.rule == "binary_content" and "physical line 7" in e.value.detail


def test_a_line_without_end_is_refused_once_it_passes_the_limit(tmp_path, monkeypatch):
    # a 500-character line read in 16-byte blocks: refused at physical line 3 (header, row 1, it)
    monkeypatch.setattr(readers, "TEXT_BLOCK_BYTES", 16)
    monkeypatch.setattr(readers, "MAX_LINE_CHARS", 100)
    data = (HEADER + _rows(1) + "S2,C1,2024-01-01," + "x" * 500).encode()
    with pytest.raises(RejectedFile) as e:
        list(read_chunks(_write(tmp_path, data), CONTACTS))
    assert e.value.rule == "line_too_long" and "physical line 3" in e.value.detail


def test_a_bad_cell_in_a_batch_is_named_by_its_row_and_first_column(tmp_path):
    # row 7 has a bad date, row 9 an empty client_id: the earliest (row 7) is refused
    rows = _rows(10).splitlines(keepends=True)
    rows[6] = "S7,C1,07/01/2024,housing\n"
    rows[8] = "S9,,2024-01-01,housing\n"
    with pytest.raises(RejectedFile) as e:
        list(read_chunks(_write(tmp_path, (HEADER + "".join(rows)).encode()), CONTACTS))
    assert (e.value.rule, e.value.row) == ("date_format", 7)
    rows[6] = "S7,,07/01/2024,housing\n"  # now row 7 is empty in client_id, before its bad date
    with pytest.raises(RejectedFile) as e:
        list(read_chunks(_write(tmp_path, (HEADER + "".join(rows)).encode()), CONTACTS))
    assert (e.value.rule, e.value.row) == ("not_null", 7)


def test_arrow_chunks_hold_the_same_values_as_lists(tmp_path):
    path = _write(tmp_path, (HEADER + _rows(5) + "S6,C1,2024-01-06,\u3000housing \n").encode())
    [(numbers, lists)] = list(read_chunks(path, CONTACTS))
    [(same, arrays)] = list(read_chunks(path, CONTACTS, arrow=True))
    assert numbers == same == [1, 2, 3, 4, 5, 6]
    assert all(isinstance(a, pa.Array) for a in arrays.values())
    assert {k: a.to_pylist() for k, a in arrays.items()} == lists
    assert lists["service_type"][-1] == "\u3000housing "  # kept as sent; only a blank cell is empty


def test_py_whitespace_is_what_str_strip_removes():
    assert PY_WHITESPACE == "".join(c for c in map(chr, range(0x110000)) if c.isspace())
