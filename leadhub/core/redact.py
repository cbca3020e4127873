"""Row removal: the rows of whole batches or of given records, from the warehouse and from originals.

Retention removes the rows of batches past their agreement's retention period;
sealing removes the records an order names. Both remove the staging rows (the
only place delivered rows live) and the ``core.record_history`` rows that name
them; every other core and marts table is derived from staging and is rebuilt
by the build the caller runs in the same transaction, so no derived row
outlives its source. Nothing here commits: the caller owns the transaction.
Results are counts per table, never values.

Sealing also rewrites originals without the sealed rows (``rewrite_original``, one rewriter
per readable format, numbering rows as ``leadhub.core.readers`` does) and re-encrypts them
(``encrypt_bytes``); the staging rows left then point at their row of the rewritten file
(``renumber_rows``). Both ``leadhub seal`` and intake (a re-delivered sealed record) use them.
After removing rows, sealing and retention rewrite the warehouse file itself
(``compact_warehouse``): DuckDB leaves deleted values in the file until their blocks are reused.
"""

from __future__ import annotations

import csv
import io
import json
import os
import re
from collections.abc import Iterable, Sequence
from pathlib import Path

import duckdb
import pandas as pd

from leadhub.core.archive import encrypt_file
from leadhub.core.contracts import Contract, load_contracts
from leadhub.core.errors import LeadHubError
from leadhub.core.files import PRIVATE_FILE_MODE, replace_durably
from leadhub.core.keys import MasterKey
from leadhub.core.lock import writer_lock
from leadhub.core.settings import writer_lock_file
from leadhub.core.warehouse import STORAGE_COMPATIBILITY, connect, staging_key, table_exists

HISTORY = "core.record_history"


def row_counts_by_batch(con: duckdb.DuckDBPyConnection, batch_ids: Iterable[str],
                        contracts: dict[str, Contract] | None = None) -> dict[str, dict[str, int]]:
    """{batch id: {table: rows}} for 'staging.<contract>' and 'core.record_history', zeros left
    out; one grouped query per table however many batches."""
    ids = sorted(set(batch_ids))
    counts: dict[str, dict[str, int]] = {i: {} for i in ids}
    if not ids:
        return counts
    tables = [(f"staging.{c.name}", "_batch_id") for c in (contracts or load_contracts()).values()
              if table_exists(con, "staging", c.name)]
    if table_exists(con, "core", "record_history"):
        tables.append((HISTORY, "last_batch_id"))
    for table, column in tables:
        for batch_id, n in con.execute(f"SELECT {column}, count(*) FROM {table} WHERE {column} IN "
                                       "(SELECT unnest(?::VARCHAR[])) GROUP BY 1 ORDER BY 1", [ids]).fetchall():
            counts[batch_id][table] = n
    return counts


def batch_row_counts(con: duckdb.DuckDBPyConnection, batch_ids: Iterable[str],
                     contracts: dict[str, Contract] | None = None) -> dict[str, int]:
    """Rows of ``batch_ids`` per table ('staging.<contract>', 'core.record_history'), zeros left out."""
    total: dict[str, int] = {}
    for per_table in row_counts_by_batch(con, batch_ids, contracts).values():
        for table, n in per_table.items():
            total[table] = total.get(table, 0) + n
    return total


def remove_batches(con: duckdb.DuckDBPyConnection, batch_ids: Iterable[str],
                   contracts: dict[str, Contract] | None = None) -> dict[str, int]:
    """Delete every staging row of ``batch_ids`` and the history rows of their versions.

    The batches' entries in ``ops.batches`` and ``ops.file_ledger`` stay (counts,
    no person data); the caller records why the rows went. Returns the rows
    deleted per table.
    """
    ids = sorted(set(batch_ids))
    counts = batch_row_counts(con, ids, contracts)
    for table in counts:
        column = "last_batch_id" if table == HISTORY else "_batch_id"
        con.execute(f"DELETE FROM {table} WHERE {column} IN (SELECT unnest(?::VARCHAR[]))", [ids])
    return counts


def remove_records(con: duckdb.DuckDBPyConnection, contract: Contract,
                   keys: Sequence[Sequence]) -> dict[str, int]:
    """Delete every version, in every batch, of the records of ``contract`` with these keys.

    A key is the record's primary key as staging holds it (``staging_key``:
    an agency person id appears as its token), one value per key column.
    History rows are matched by their text key; a contract keyed by a person
    id has none (its history names no key), and those rows go with the rebuild.
    Returns the rows deleted per table.
    """
    columns = staging_key(contract)
    rows = [tuple(k) for k in keys]
    if any(len(k) != len(columns) for k in rows):
        raise ValueError(f"{contract.name}: a record key has {len(columns)} part(s) ({', '.join(columns)})")
    counts: dict[str, int] = {}
    if not rows or not table_exists(con, "staging", contract.name):
        return counts
    frame = pd.DataFrame(rows, columns=columns).astype(str)
    con.register("redact_keys", frame)
    try:
        match = " AND ".join(f'CAST(s."{c}" AS VARCHAR) = k."{c}"' for c in columns)
        where = f"EXISTS (SELECT 1 FROM redact_keys k WHERE {match})"
        n = con.execute(f"SELECT count(*) FROM staging.{contract.name} s WHERE {where}").fetchall()[0][0]
        if n:
            con.execute(f"DELETE FROM staging.{contract.name} s WHERE {where}")
            counts[f"staging.{contract.name}"] = n
        if table_exists(con, "core", "record_history") and not any(
                contract.column(k).identifier for k in contract.primary_key):
            text = " || '|' || ".join(f'k."{c}"' for c in columns)
            hist = (f"contract = ? AND record_key IN (SELECT {text} FROM redact_keys k)")
            n = con.execute(f"SELECT count(*) FROM {HISTORY} WHERE {hist}", [contract.name]).fetchall()[0][0]
            if n:
                con.execute(f"DELETE FROM {HISTORY} WHERE {hist}", [contract.name])
                counts[HISTORY] = n
    finally:
        con.unregister("redact_keys")
    return counts


def compact_warehouse(path: Path) -> None:
    """Copy the warehouse into a fresh file and swap it in, so removed rows leave no bytes behind.

    DuckDB deletes a row by marking it, and frees the blocks of a replaced table without
    overwriting them: after sealing or retention the removed values would stay readable in the
    file (``strings lead.duckdb``) until those blocks happen to be reused, though no query finds
    them. ``COPY FROM DATABASE`` writes only live rows, with every schema, table, view,
    constraint and comment. Under the writer lock; the swap is one rename, so a run stopped at
    any point leaves one whole warehouse (a leftover copy is removed by the next run).
    """
    path = Path(path)
    fresh = path.with_name(path.name + ".compact")
    with writer_lock(writer_lock_file(path)):
        for leftover in (fresh, fresh.with_name(fresh.name + ".wal")):
            leftover.unlink(missing_ok=True)
        with connect(path) as con:
            (name,) = con.execute("SELECT current_database()").fetchone()
            con.execute("CHECKPOINT")
            con.execute(f"ATTACH '{fresh}' AS leadhub_compact (STORAGE_VERSION '{STORAGE_COMPATIBILITY}')")
            try:
                con.execute(f'COPY FROM DATABASE "{name}" TO leadhub_compact')
            finally:
                con.execute("DETACH leadhub_compact")
        if path.with_name(path.name + ".wal").exists() or fresh.with_name(fresh.name + ".wal").exists():
            fresh.unlink(missing_ok=True)  # a log replayed onto the other file would corrupt it
            raise LeadHubError(f"{path}: a write-ahead log was left after the checkpoint; the warehouse "
                               "was not compacted")
        os.chmod(fresh, PRIVATE_FILE_MODE)
        replace_durably(fresh, path)


# --- originals without their sealed rows ---------------------------------------------------------

REDACTABLE_FORMATS = ("csv", "tsv", "jsonl", "xlsx")


def record_column(contract: Contract) -> str | None:
    """The column an order's record ids name: the first primary-key column, if not an identifier."""
    first = contract.column(contract.primary_key[0])
    return None if first.identifier else first.name


def person_column(contract: Contract) -> str | None:
    """The column holding the agency's person id, if the extract has one."""
    return next((c.name for c in contract.columns if c.identifier == "agency_person_id"), None)


def rewrite_original(plain: bytes, contract: Contract, drop: Iterable[int] = (),
                     records: Iterable[str] = (), persons: Iterable[str] = (),
                     blank: dict[str, set[str]] | None = None) -> tuple[bytes, tuple[int, ...], int]:
    """The original without its sealed data rows; returns it, the row numbers cut, the cells blanked.

    A row goes when ``drop`` names its number (data rows numbered as the reader numbers them)
    or its record id or agency person id is one of ``records`` or ``persons``; the latter reach
    files no staging row comes from (held, quarantined). ``blank`` ({column: values}) empties
    the cells of another agency's file that quote a sealed record's id. Raises ValueError on a
    file that cannot be parsed as the contract's format, or a format with no rewriter.
    """
    rewrite = _REWRITERS.get(contract.format.type)
    if rewrite is None:
        raise ValueError(f"format {contract.format.type} cannot be rewritten row by row")
    names = contract.column_names
    record, person = record_column(contract), person_column(contract)
    tests = [(names.index(c), set(v)) for c, v in ((record, records), (person, persons)) if c and v]
    blanks = [(names.index(c), v) for c, v in (blank or {}).items() if v]
    drop = set(drop)

    def sealed(n: int, cells: list) -> bool:
        return n in drop or any(len(cells) > i and _text(cells[i]) in values for i, values in tests)

    def blanked(cells: list) -> list[int]:
        return [i for i, values in blanks if len(cells) > i and _text(cells[i]) in values]

    try:
        return rewrite(plain, contract, sealed, blanked)
    except ValueError:
        raise
    except Exception as e:  # a parser's own error (csv.Error, zipfile, XML): unparseable
        raise ValueError(f"cannot be parsed as {contract.format.type} ({type(e).__name__})") from None


def _text(cell) -> str | None:
    """A cell as the id text the reader would make of it (numbers from xlsx or JSON as digits)."""
    if cell is None or isinstance(cell, bool):
        return None
    if isinstance(cell, float) and cell.is_integer():
        cell = int(cell)
    return str(cell).strip()


def _rewrite_csv(plain: bytes, contract: Contract, sealed, blanked) -> tuple[bytes, tuple[int, ...], int]:
    fmt = contract.format
    out = io.StringIO()
    writer = csv.writer(out, delimiter=fmt.delimiter, quotechar=fmt.quotechar, lineterminator="\n")
    reader = csv.reader(io.StringIO(plain.decode(fmt.encoding), newline=""), delimiter=fmt.delimiter,
                        quotechar=fmt.quotechar, strict=True)
    cut, n_blanked = [], 0
    for n, row in enumerate(reader, start=0 if fmt.header else 1):
        if n > 0 and sealed(n, row):
            cut.append(n)
            continue
        for i in blanked(row) if n > 0 else ():
            row[i], n_blanked = "", n_blanked + 1
        writer.writerow(row)
    return out.getvalue().encode(fmt.encoding), tuple(cut), n_blanked


def _rewrite_jsonl(plain: bytes, contract: Contract, sealed, blanked) -> tuple[bytes, tuple[int, ...], int]:
    """Lines numbered from 1 as physical lines (blank ones too, as the reader counts them); lines
    kept are kept byte for byte, a line with a blanked cell is written again with that cell null."""
    fmt, names = contract.format, contract.column_names
    out, cut, n_blanked = [], [], 0
    for n, line in enumerate(re.split(r"(?<=\r\n)|(?<=\n)|(?<=\r)(?!\n)", plain.decode(fmt.encoding)), start=1):
        if not line.strip():
            out.append(line)
            continue
        obj = json.loads(line.lstrip("\ufeff"))
        if not isinstance(obj, dict):
            raise ValueError("a line is not a JSON object")
        cells = [obj.get(c) for c in names]
        if sealed(n, cells):
            cut.append(n)
            continue
        if hit := blanked(cells):
            for i in hit:
                obj[names[i]] = None
            n_blanked += len(hit)
            ending = line[len(line.rstrip("\r\n")):]
            line = json.dumps(obj, ensure_ascii=False) + ending
        out.append(line)
    return "".join(out).encode(fmt.encoding), tuple(cut), n_blanked


def _rewrite_xlsx(plain: bytes, contract: Contract, sealed, blanked) -> tuple[bytes, tuple[int, ...], int]:
    """The only sheet without the sealed rows (header row kept), saved as a new workbook."""
    from openpyxl import load_workbook  # only xlsx contracts need it

    wb = load_workbook(io.BytesIO(plain), data_only=False)
    if len(wb.sheetnames) != 1:
        raise ValueError("the workbook does not have exactly one sheet")
    ws = wb[wb.sheetnames[0]]
    first = 2 if contract.format.header else 1  # sheet row of data row 1
    cut, n_blanked = [], 0
    for r, cells in enumerate(ws.iter_rows(min_row=first), start=first):
        values = [c.value for c in cells]
        n = r - first + 1
        if sealed(n, values):
            cut.append(n)
            continue
        for i in blanked(values):
            cells[i].value, n_blanked = None, n_blanked + 1
    for n in reversed(cut):
        ws.delete_rows(n + first - 1)
    out = io.BytesIO()
    wb.save(out)
    return out.getvalue(), tuple(cut), n_blanked


_REWRITERS = {"csv": _rewrite_csv, "tsv": _rewrite_csv, "jsonl": _rewrite_jsonl, "xlsx": _rewrite_xlsx}


def encrypt_bytes(data: bytes, target: Path, key: MasterKey) -> None:
    """Encrypt ``data`` into the archive file ``target`` (durably); the plaintext never touches a disk."""
    fd = os.memfd_create("redacted", 0)
    try:
        os.write(fd, data)
        encrypt_file(fd, target, key)
    finally:
        os.close(fd)


def renumber_rows(con: duckdb.DuckDBPyConnection, table: str, batch_ids: Sequence[str], cut: Sequence[int]) -> None:
    """The rows left of a rewritten original's batches keep pointing at their row of it: each
    moves up by the number of rows cut before it."""
    con.execute(f"UPDATE staging.{table} SET _row_number = _row_number - "
                "len(list_filter(?::BIGINT[], lambda x: x < _row_number)) WHERE _batch_id IN "
                "(SELECT unnest(?::VARCHAR[]))", [list(cut), list(batch_ids)])
