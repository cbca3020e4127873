"""Row removal from the warehouse: the rows of whole batches, or of given records.

Retention removes the rows of batches past their agreement's retention period;
sealing removes the records an order names. Both remove the staging rows (the
only place delivered rows live) and the ``core.record_history`` rows that name
them; every other core and marts table is derived from staging and is rebuilt
by the build the caller runs in the same transaction, so no derived row
outlives its source. Nothing here commits: the caller owns the transaction.
Results are counts per table, never values.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import duckdb
import pandas as pd

from leadhub.core.contracts import Contract, load_contracts
from leadhub.core.warehouse import staging_key, table_exists

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
