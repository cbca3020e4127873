"""Validation cost next to load cost, per million rows, measured on the same batch in one run.

The intake validates a pseudonymized staging batch with GX (pandas) and then
inserts the same Arrow batch into DuckDB. This benchmark builds such a batch
for one extract (synthetic, staging-shaped: tokens, codes, dates, a unique
key), then times in the same process:

* load      — INSERT of the Arrow batch into the staging table of a fresh
              DuckDB file, committed (what ``connectors.inbox`` does);
* validate  — ``Table.to_pandas()`` plus ``validate_batch`` with the
              extract's committed suite, as the intake calls it; before the
              tuning in ``expectations.validate._prepared_for_gx`` (no dtype
              preparation, GX's batch fingerprint on); and on Arrow-backed
              pandas;
* chunks    — load and validate again in the intake's chunks
              (``leadhub.core.readers.CHUNK_ROWS`` rows each), as a file is taken;
* history   — ``batch_stats`` plus ``history_checks`` against five earlier
              deliveries already in the warehouse.

Every variant must reach the same verdict, check by check, as the baseline;
the run stops if one does not. Prints one table; the target is a ratio
validate/load of at most 1.

    python bench/validation.py                      # jail_bookings, 1,000,000 rows
    python bench/validation.py --rows 200000 --extract police_arrests
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

os.environ["GX_ANALYTICS_ENABLED"] = "False"

import duckdb  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import pyarrow as pa  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from leadhub.core.contracts import Contract, load_contracts  # noqa: E402
from connectors.inbox import ARROW_TYPES  # noqa: E402
from leadhub.core.readers import CHUNK_ROWS  # noqa: E402
from expectations.history import batch_stats, history_checks  # noqa: E402
from expectations.suites import reference_values, token_columns, validated_columns  # noqa: E402
from expectations import validate  # noqa: E402
from expectations.validate import validate_batch  # noqa: E402
from leadhub.core.warehouse import migrate, staging_columns  # noqa: E402

EPOCH = np.datetime64("2020-01-01T00:00", "us")
LARGE_CHUNK = 250_000


def staging_batch(contract: Contract, rows: int, seed: int = 1) -> pa.Table:
    """A staging-shaped batch (as the pseudonymizer hands it over) that passes the suite.

    People repeat (a pool of tokens), dates fall in 2020-2024, each date column a little
    after the one before, so "A not before B" checks hold; about 10% of optional cells
    are empty.
    """
    rng = np.random.default_rng(seed)
    sql_types = dict(staging_columns(contract))
    tokens = set(token_columns(contract))
    people = max(rows // 4, 1)
    pool = np.array([os.urandom(32).hex() for _ in range(min(people, 200_000))], dtype=object)
    base = EPOCH + rng.integers(0, 4 * 365 * 24 * 60, rows).astype("timedelta64[m]")
    offset = 0
    arrays, fields = [], []
    for name in validated_columns(contract):
        col = contract.column(name) if name in contract.column_names else None
        sql_type = sql_types[name]
        optional = col is not None and col.nullable
        mask = (rng.random(rows) < 0.1) if optional else None
        if name in tokens:
            values = pool[rng.integers(0, len(pool), rows)]
        elif name.endswith("_enc"):
            values = pool[rng.integers(0, len(pool), rows)]
        elif name == "age_at_event":
            values = rng.integers(18, 80, rows)
        elif name == "key_id":
            values = np.full(rows, "0123456789ab", dtype=object)
        elif name == "_row_number":
            values = np.arange(1, rows + 1)
        elif name in contract.primary_key and len(contract.primary_key) > 1:
            # Compound key: the first part is shared by a few rows, the rest numbers them.
            values = (np.arange(rows) // 3).astype(str).astype(object) if sql_type == "VARCHAR" \
                else np.arange(rows) % 3 + 1
            if sql_type == "VARCHAR":
                values = np.char.add("K", values.astype(str)).astype(object)
        elif sql_type in ("DATE", "TIMESTAMP"):
            moments = base + np.timedelta64(offset * 36, "h")
            offset += 1
            values = moments.astype("datetime64[D]") if sql_type == "DATE" else moments
        elif sql_type == "BIGINT":
            values = rng.integers(1, 5, rows)
        elif col is not None and col.reference:
            codes = np.array(reference_values(col.reference), dtype=object)
            values = codes[rng.integers(0, len(codes), rows)]
        elif col is not None and col.known_values:
            codes = np.array(col.known_values, dtype=object)
            values = codes[rng.integers(0, len(codes), rows)]
        else:
            values = np.char.add(f"{name[:2].upper()}", np.arange(rows).astype(str)).astype(object)
        arrow_type = ARROW_TYPES[sql_type]
        arrays.append(pa.array(values, type=arrow_type, mask=mask))
        fields.append(pa.field(name, arrow_type))
    return pa.Table.from_arrays(arrays, schema=pa.schema(fields))


def timed(fn, *args, **kwargs):
    start = time.perf_counter()
    value = fn(*args, **kwargs)
    return time.perf_counter() - start, value


def load(con: duckdb.DuckDBPyConnection, contract: Contract, table: pa.Table, batch_id: str) -> None:
    """The intake's insert: register the Arrow batch, INSERT ... SELECT, record the batch, commit."""
    cols = [n for n, _ in staging_columns(contract)]
    select = ", ".join("? AS _batch_id" if c == "_batch_id" else f'"{c}"' for c in cols)
    con.execute("BEGIN")
    con.register("incoming_batch", table)
    con.execute(f"INSERT INTO staging.{contract.name} ({', '.join(cols)}) SELECT {select} "
                f"FROM incoming_batch", [batch_id])
    con.unregister("incoming_batch")
    con.execute("INSERT INTO ops.batches VALUES (?, ?, ?, '', now(), now(), ?, 'bench')",
                [batch_id, contract.name, batch_id, table.num_rows])
    con.execute("COMMIT")


def untuned(contract: Contract, df: pd.DataFrame) -> pd.DataFrame:
    """How the frame reached GX before tuning: only ``datetime.date`` objects were converted."""
    dates = [c.name for c in contract.plain_columns if c.type in ("date", "timestamp")
             and not pd.api.types.is_datetime64_any_dtype(df[c.name])]
    return df.assign(**{name: pd.to_datetime(df[name], errors="coerce") for name in dates})


def validate_untuned(contract: Contract, df: pd.DataFrame):
    """``validate_batch`` with the frame preparation and GX's batch fingerprint as they were."""
    from great_expectations.execution_engine import pandas_execution_engine

    prepared, threshold = validate._prepared_for_gx, pandas_execution_engine.HASH_THRESHOLD
    validate._prepared_for_gx, pandas_execution_engine.HASH_THRESHOLD = untuned, 1e9
    try:
        return validate_batch(contract, df)
    finally:
        validate._prepared_for_gx, pandas_execution_engine.HASH_THRESHOLD = prepared, threshold


def arrow_backed(table: pa.Table) -> pd.DataFrame:
    """Arrow-backed pandas: no copy of the strings into Python objects."""
    return table.to_pandas(types_mapper=pd.ArrowDtype)


def verdict(outcome) -> list[tuple]:
    return [(r["expectation"], r["column"], r["success"], r["observed"]) for r in outcome.results]


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--rows", type=int, default=1_000_000)
    p.add_argument("--extract", default="jail_bookings", help="contract name, e.g. police_arrests")
    args = p.parse_args(argv)
    contract = load_contracts()[args.extract]

    seconds, table = timed(staging_batch, contract, args.rows)
    print(f"{contract.name}: {args.rows:,} staging rows, {table.num_columns} columns, "
          f"{table.nbytes / 1e6:,.0f} MB in Arrow (built in {seconds:.1f} s)")
    validate_batch(contract, table.slice(0, 1000).to_pandas())  # GX import and suite read, once

    with tempfile.TemporaryDirectory() as tmp:
        con = duckdb.connect(str(Path(tmp) / "bench.duckdb"))
        migrate(con, {contract.name: contract})
        history = [staging_batch(contract, max(args.rows // 10, 1000), seed=s) for s in range(2, 7)]
        for i, earlier in enumerate(history):
            load(con, contract, earlier, f"earlier-{i}")
        load_s, _ = timed(load, con, contract, table, "bench-batch")

        rows = []
        baseline = None
        variants = [
            ("validate before tuning: to_pandas() + GX", table.to_pandas, validate_untuned),
            ("validate, frame from to_pandas() (intake today)", table.to_pandas, validate_batch),
            ("validate, the Arrow table itself", lambda: table, validate_batch),
        ]
        for label, frame, validate_fn in variants:
            convert_s, df = timed(frame)
            gx_s, outcome = timed(validate_fn, contract, df)
            del df
            if baseline is None:
                baseline = verdict(outcome)
                assert outcome.success, outcome.reason()
            elif verdict(outcome) != baseline:
                changed = [a for a, b in zip(verdict(outcome), baseline) if a != b]
                rows.append((label, None, f"verdict differs from the baseline: {changed[:2]}"))
                continue
            rows.append((label, convert_s + gx_s, f"convert {convert_s:.2f} s + GX {gx_s:.2f} s"))

        # The intake reads, validates and inserts a file chunk by chunk (leadhub.core.readers.CHUNK_ROWS).
        # GX costs a fixed ~0.5 s per run whatever the size, so fewer, larger frames amortize it.
        def chunked(size: int) -> list[pa.Table]:
            return [table.slice(start, size) for start in range(0, table.num_rows, size)]

        chunks = chunked(CHUNK_ROWS)
        chunk_load_s = sum(timed(load, con, contract, chunk, f"chunk-{i}")[0]
                           for i, chunk in enumerate(chunks))
        rows.append((f"load in the intake's {CHUNK_ROWS:,}-row chunks", chunk_load_s,
                     f"{len(chunks)} INSERTs"))
        for label, size, hand_over in [
                (f"validate {CHUNK_ROWS:,}-row chunks, to_pandas()", CHUNK_ROWS, lambda c: c.to_pandas()),
                (f"validate {CHUNK_ROWS:,}-row chunks, Arrow table", CHUNK_ROWS, lambda c: c),
                (f"validate {LARGE_CHUNK:,}-row chunks, Arrow table", LARGE_CHUNK, lambda c: c)]:
            parts = chunked(size)
            seconds = sum(timed(lambda c: validate_batch(contract, hand_over(c)), part)[0]
                          for part in parts)
            rows.append((label, seconds, f"{len(parts)} GX runs; "
                                         f"{seconds / chunk_load_s:.2f} x the chunked load"))
        history_s, _ = timed(lambda: history_checks(con, contract, batch_stats(table), "bench-batch"))
        rows.append(("history checks: batch_stats + history_checks", history_s, "5 earlier deliveries"))
        con.close()

    per_million = 1e6 / args.rows
    width = max(len(label) for label, _, _ in rows) + 2
    print()
    print(f"{'step':<{width}} {'s':>8} {'s per 1M rows':>14} {'x load':>7}  note")
    print(f"{'load: DuckDB INSERT of the Arrow batch':<{width}} {load_s:>8.2f} "
          f"{load_s * per_million:>14.2f} {1:>7.2f}  same batch, same run")
    for label, seconds, note in rows:
        if seconds is None:
            print(f"{label:<{width}} {'-':>8} {'-':>14} {'-':>7}  {note}")
            continue
        print(f"{label:<{width}} {seconds:>8.2f} {seconds * per_million:>14.2f} "
              f"{seconds / load_s:>7.2f}  {note}")


if __name__ == "__main__":
    main()
