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
