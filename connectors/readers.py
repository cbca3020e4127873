"""Read a delivered file by its contract into typed column chunks.

Errors name the file, the 1-based data row and the rule broken, never a cell
value (values may be identifiers). Reading is chunked so memory stays bounded
whatever the file size.
"""

from __future__ import annotations

import csv
from datetime import datetime
from pathlib import Path
from typing import Iterator

from connectors.contracts import Column, Contract
from leadhub.errors import RejectedFile

CHUNK_ROWS = 50_000


def header_difference(expected: list[str], got: list[str]) -> str:
    """Spell out how a header differs: missing, extra, renamed or reordered columns."""
    missing = [c for c in expected if c not in got]
    extra = [c for c in got if c not in expected]
    parts = []
    if len(missing) == len(extra) and missing and len(got) == len(expected):
        renamed = [f"{m}->{e}" for m, e in zip(missing, extra) if got.index(e) == expected.index(m)]
        if len(renamed) == len(missing):
            return "renamed columns: " + ", ".join(renamed)
    if missing:
        parts.append("missing columns: " + ", ".join(missing))
    if extra:
        parts.append("unexpected columns: " + ", ".join(extra))
    if not parts:
        parts.append("columns out of order; expected " + ", ".join(expected))
    return "; ".join(parts)


def _converter(col: Column):
    nulls = set(col.null_markers)
    if col.type == "string":
        return lambda v: None if v.strip() in nulls else v
    if col.type == "integer":
        return lambda v: None if v.strip() in nulls else int(v)
    if col.type == "decimal":
        return lambda v: None if v.strip() in nulls else float(v)
    fmts = col.formats
    as_date = col.type == "date"

    def parse(v: str):
        v = v.strip()
        if v in nulls:
            return None
        for f in fmts:
            try:
                parsed = datetime.strptime(v, f)
            except ValueError:
                continue
            return parsed.date() if as_date else parsed
        raise ValueError
    return parse


def _rule_for(col: Column) -> str:
    return {"date": "date_format", "timestamp": "timestamp_format",
            "integer": "integer", "decimal": "decimal"}.get(col.type, "type")


def read_chunks(path: Path, contract: Contract, display_name: str | None = None,
                chunk_rows: int = CHUNK_ROWS) -> Iterator[tuple[list[int], dict[str, list]]]:
    """Yield (row_numbers, {column: values}) chunks of a delimited file.

    Raises RejectedFile on the first broken rule; the caller must treat the
    whole file as rejected (nothing of it is loaded).
    """
    name = display_name or path.name
    fmt = contract.format
    if fmt.type not in ("csv", "tsv"):
        raise RejectedFile(name, "format", f"format {fmt.type} is not readable yet")
    expected = contract.column_names
    converters = [_converter(c) for c in contract.columns]
    required = [not c.nullable for c in contract.columns]
    width = len(expected)
    row_no = 0
    try:
        with open(path, newline="", encoding=fmt.encoding, errors="strict") as f:
            reader = csv.reader(f, delimiter=fmt.delimiter, quotechar=fmt.quotechar, strict=True)
            header = next(reader, None)
            if header is None:
                raise RejectedFile(name, "empty_file", "no header row")
            if header and header[0].startswith("\ufeff"):
                header[0] = header[0][1:]
            header = [h.strip() for h in header]
            if header != expected:
                raise RejectedFile(name, "header", header_difference(expected, header), row=0)
            rows, cols = [], [[] for _ in expected]
            for record in reader:
                row_no += 1
                if len(record) != width:
                    if not any(cell.strip() for cell in record):
                        raise RejectedFile(name, "blank_row", "blank line inside the data", row=row_no)
                    raise RejectedFile(name, "ragged_row",
                                       f"{len(record)} fields where the header has {width}", row=row_no)
                for i, (cell, conv) in enumerate(zip(record, converters)):
                    try:
                        value = conv(cell)
                    except ValueError:
                        col = contract.columns[i]
                        expect = f" (expected {' or '.join(col.formats)})" if col.formats else ""
                        raise RejectedFile(name, _rule_for(col),
                                           f"column {col.name} cannot be read as {col.type}{expect}",
                                           row=row_no) from None
                    if value is None and required[i]:
                        raise RejectedFile(name, "not_null", f"column {expected[i]} is empty", row=row_no)
                    cols[i].append(value)
                rows.append(row_no)
                if len(rows) >= chunk_rows:
                    yield rows, dict(zip(expected, cols))
                    rows, cols = [], [[] for _ in expected]
            if rows:
                yield rows, dict(zip(expected, cols))
            elif row_no == 0:
                raise RejectedFile(name, "no_rows", "header only, no data rows")
    except UnicodeDecodeError:
        raise RejectedFile(name, "encoding", f"not valid {fmt.encoding}", row=row_no + 1) from None
    except csv.Error as e:
        raise RejectedFile(name, "csv_syntax", str(e).split(":")[0], row=row_no + 1) from None
