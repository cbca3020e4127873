"""pyarrow.csv reads the blocks it can take exactly as the csv module reads them.

Random small delimited files (fixed seed) are read twice, with the pyarrow path and
with the csv module alone; the chunks, or the refusal, must be the same.
"""

import dataclasses
import random

import pytest

from leadhub.core import readers
from leadhub.core.contracts import Column, FileFormat, load_contracts
from leadhub.core.errors import RejectedFile
from leadhub.core.readers import read_chunks

BASE = load_contracts()["treatment_contacts"]
PIECES = ["a", "Zoe", "17", "x y", " ", "  pad ", "é", "\u3000", "\xa0", "\ufeff", "NULL", "N/A", "-3", "1e3",
          "\u2028", "\x0b", "\x1c", "\u00e9t\u00e9", "\U0001f600"]


def _contract(rng):
    width = rng.randint(1, 5)
    columns = tuple(Column(f"c{i}", type=rng.choice(["string"] * 4 + ["integer"]), nullable=rng.random() < 0.8)
                    for i in range(width))
    kind = rng.choice(["csv", "csv", "csv", "tsv"])
    fmt = FileFormat.from_raw({"type": kind, "header": rng.random() < 0.7})
    return dataclasses.replace(BASE, columns=columns, format=fmt)


def _cell(rng, delimiter, quoted_files):
    cell = "".join(rng.choice(PIECES) for _ in range(rng.choice([0, 1, 1, 2])))
    if rng.random() < 0.15:
        cell = str(rng.randint(-5, 99))
    if quoted_files and rng.random() < 0.2:
        inner = rng.choice(["", "a", delimiter, "line\nbreak", "cr\rhere", 'say ""hi""', "a\r\nb"])
        cell = rng.choice(['"' + inner + '"', '"' + inner, inner + '"x'])  # closed, left open, stray
    return cell


def _text(rng, contract):
    fmt = contract.format
    names = contract.column_names
    width = len(names)
    quoted = rng.random() < 0.3
    lines = [fmt.delimiter.join(names)] if fmt.header or rng.random() < 0.05 else []
    for _ in range(rng.randint(0, 30)):
        r = rng.random()
        if r < 0.04:
            lines.append("")  # a blank line
        elif r < 0.07:
            lines.append(fmt.delimiter * (width - 1) + rng.choice(["", " "]))  # a row of empty cells
        elif r < 0.09:
            lines.append(fmt.delimiter.join(_cell(rng, fmt.delimiter, quoted) for _ in range(width + rng.choice([-1, 1]))))
        else:
            lines.append(fmt.delimiter.join(_cell(rng, fmt.delimiter, quoted) for _ in range(width)))
    if rng.random() < 0.3:
        lines += [""] * rng.randint(1, 3)
    endings = rng.choice([["\n"], ["\r\n"], ["\r"], ["\n", "\r\n", "\r"]])
    text = "".join(line + rng.choice(endings) for line in lines)
    if text and rng.random() < 0.2:
        text = text.rstrip("\r\n")  # no line end after the last row
    if rng.random() < 0.1:
        text = "\ufeff" + text
    return text


def _read(path, contract, chunk_rows):
    try:
        return [(rows, cols) for rows, cols in read_chunks(path, contract, chunk_rows=chunk_rows)], None
    except RejectedFile as e:
        return None, (e.rule, e.row, e.detail)


def test_the_arrow_path_reads_exactly_what_the_csv_module_reads(tmp_path, monkeypatch):
    rng = random.Random(20261201)
    path = tmp_path / "treatment_contacts_20240101.csv"
    arrow_parser = readers._arrow_parser
    taken = []

    def counted(fmt, names):
        parse = arrow_parser(fmt, names)

        def counting(lines):
            columns = parse(lines)
            taken.append(columns is not None)
            return columns
        return counting

    outcomes = set()
    for _ in range(500):
        contract = _contract(rng)
        path.write_bytes(_text(rng, contract).encode("utf-8"))
        chunk_rows = rng.choice([1, 3, 7, 1000])
        monkeypatch.setattr(readers, "TEXT_BLOCK_BYTES", rng.choice([8, 40, 200, 1 << 20]))
        monkeypatch.setattr(readers, "_arrow_parser", counted)
        fast = _read(path, contract, chunk_rows)
        monkeypatch.setattr(readers, "_arrow_parser", lambda fmt, names: None)
        assert fast == _read(path, contract, chunk_rows)
        outcomes.add(fast[1][0] if fast[1] else "read")
    # the cases reached both paths and every kind of outcome
    assert sum(taken) > 200 and taken.count(False) > 100
    assert {"read", "blank_row", "ragged_row", "csv_syntax", "header", "not_null", "integer"} <= outcomes


@pytest.mark.parametrize("block", [16, 1 << 20])
def test_a_quoted_field_across_blocks_is_read_by_the_csv_module_to_its_end(tmp_path, monkeypatch, block):
    # the quoted field of row 2 runs over many lines and blocks; no line of it is read as a row
    monkeypatch.setattr(readers, "TEXT_BLOCK_BYTES", block)
    note = "\n".join(f"S{i},C{i},2024-01-01,housing" for i in range(40))
    text = ("contact_id,client_id,contact_date,service_type\nS1,C1,2024-01-01,housing\n"
            f'S2,C2,2024-01-02,"{note}"\n' + "".join(f"S{i},C1,2024-01-03,food\n" for i in range(3, 200)))
    path = tmp_path / "treatment_contacts_20240101.csv"
    path.write_text(text)
    [(rows, cols)] = list(read_chunks(path, BASE, chunk_rows=1000))
    assert rows == list(range(1, 200))
    assert cols["service_type"][1] == note and cols["contact_id"][2:] == [f"S{i}" for i in range(3, 200)]


def test_a_field_over_the_csv_modules_limit_is_still_refused(tmp_path, monkeypatch):
    # the csv module refuses a field longer than its limit; pyarrow would take it, so it must not
    import csv
    old = csv.field_size_limit(50)
    try:
        path = tmp_path / "treatment_contacts_20240101.csv"
        path.write_text("contact_id,client_id,contact_date,service_type\nS1,C1,2024-01-01,housing\n"
                        "S2,C1,2024-01-01," + "x" * 60 + "\n")
        with pytest.raises(RejectedFile) as e:
            list(read_chunks(path, BASE))
        assert (e.value.rule, e.value.row) == ("csv_syntax", 2)
    finally:
        csv.field_size_limit(old)


def _date_cell(rng, fmt):
    """A cell for a date or timestamp column: mostly as ``fmt`` writes it, else nearly so."""
    y, m, d = rng.choice([1999, 2024, 2000, 1, 9999, 0, 10000]), rng.randint(0, 13), rng.randint(0, 32)
    hh, mm, ss = rng.choice([0, 9, 23, 24]), rng.choice([0, 5, 59, 60]), rng.choice([0, 7, 60])
    numbers = {"%Y": f"{y:04d}", "%m": f"{m:02d}", "%d": f"{d:02d}", "%H": f"{hh:02d}", "%M": f"{mm:02d}",
               "%S": f"{ss:02d}"}
    if rng.random() < 0.15:
        numbers["%m"], numbers["%d"] = str(m), str(d)  # not zero-padded: Python reads it, Arrow does not
    cell = fmt
    for directive, number in numbers.items():
        cell = cell.replace(directive, number)
    return rng.choice([cell] * 6 + [f" {cell}\u3000", "", "NULL", "N/A", cell[:-1], cell + "0", "junk"])


def test_dates_read_by_arrow_are_the_dates_python_reads(tmp_path, monkeypatch):
    # Cells Arrow's strptime takes are only those it must give Python's value for: with and without
    # that path, every file reads to the same values, or is refused on the same row by the same rule.
    rng = random.Random(1201)
    formats = [("%m/%d/%Y",), ("%Y-%m-%d %H:%M:%S", "%m/%d/%Y %H:%M"), ("%d.%m.%Y %H:%M",), ("%Y%m%d",)]
    path = tmp_path / "treatment_contacts_20240101.csv"
    outcomes, taken = set(), []
    arrow_strptime = readers._arrow_strptime

    def counted(cells, fmt, arrow_type):
        found = arrow_strptime(cells, fmt, arrow_type)
        taken.append(0 if found is None else int(found[1].sum()))
        return found

    for _ in range(300):
        chosen = [rng.choice(formats) for _ in range(2)]
        columns = (Column("d", type="date", formats=chosen[0], nullable=rng.random() < 0.7),
                   Column("t", type="timestamp", formats=chosen[1], nullable=True))
        contract = dataclasses.replace(BASE, columns=columns, format=FileFormat.from_raw({"type": "csv"}))
        rows = [f"{_date_cell(rng, chosen[0][0])},{_date_cell(rng, rng.choice(chosen[1]))}"
                for _ in range(rng.randint(1, 12))]
        path.write_text("d,t\n" + "\n".join(rows) + "\n")
        chunk_rows = rng.choice([1, 5, 1000])
        monkeypatch.setattr(readers, "_arrow_strptime", counted)
        fast = _read(path, contract, chunk_rows)
        monkeypatch.setattr(readers, "_arrow_strptime", lambda cells, fmt, arrow_type: None)
        assert fast == _read(path, contract, chunk_rows)
        outcomes.add(fast[1][0] if fast[1] else "read")
    assert sum(taken) > 300  # cells Arrow read (most cells are drawn broken on purpose)
    assert {"read", "date_format", "timestamp_format", "not_null"} <= outcomes
