"""Validation of one delivered file as intake streams it, chunk by chunk.

The pipeline hands intake a ``FileCheck`` per file (intake never imports this
stage): chunks of pseudonymized rows are validated with the contract's GX suite
in the validation process while intake reads on, and once all rows sit in
staging, ``outcome`` gives one verdict for the file, history-aware checks included.
"""

from __future__ import annotations

from collections import deque
from datetime import datetime

import duckdb
import pyarrow as pa

from leadhub.core.clock import CLOCK
from leadhub.core.contracts import Contract
from expectations.history import batch_stats, history_checks, history_settings
from expectations.suites import CRITICAL, suite_for
from expectations.validate import ROWS_SHOWN, PendingValidation, ValidationOutcome, count, submit_validation

# Expectations whose verdict depends on rows of several batches: with more than one batch they
# are recomputed in SQL over the file's staging rows instead of summed batch by batch.
CROSS_CHUNK = ("expect_table_row_count_to_be_between", "expect_column_values_to_be_unique",
               "expect_compound_columns_to_be_unique")
# Chunks validated together: GX costs about 0.19 CPU-s per batch whatever its size (building
# its metric graph), on top of about 3.6 us per row. At 4 chunks (200,000 rows) the fixed part
# is a fifth of a batch's cost; 8 would save another 0.4 CPU-s per million rows for about
# 120 MB more in the validation process (bench/README.md).
BATCH_CHUNKS = 4
# Batches handed over and not yet validated: one in the validation process and one waiting,
# so intake never stops for GX while it has chunks to read (one batch of staged rows more in
# memory, about 35 MB for 200,000 jail rows).
BACKLOG = 2


class FileCheck:
    """GX verdicts of one file's batches, combined into one verdict per expectation.

    Results come in suite order for every batch, so position i is the same
    expectation in each. Counted results (typed ``unexpected`` of ``checked``) are
    summed; anything else keeps the first failing batch's observation. With one
    batch GX's own result stands; with several, CROSS_CHUNK checks are redone in SQL.
    """

    def __init__(self, contract: Contract, now: datetime):
        self.contract = contract
        self.now = now  # one "not in the future" bound for every chunk of the file
        self.suite = suite_for(contract.name)  # read once: every batch is validated by this one
        self.expectations = self.suite["expectations"]
        self.results: list[dict] | None = None
        self.counts: list[tuple[int, int] | None] = []
        self.listed: list[list[int]] = []  # first failing row numbers per result, in file order
        self.batches = 0  # batches handed to the validation process
        self.rows = 0
        self.stats: dict | None = None  # row and empty counts, for the history checks
        self.max_removed_share = history_settings(contract).max_removed_share
        self._gathered: list[pa.Table] = []  # chunks of the next batch
        self._pending: deque[PendingValidation] = deque()  # batches handed over, in file order

    def add(self, table: pa.Table) -> None:
        """Take one chunk of staging rows (staging columns minus ``_batch_id``).

        Chunks go to the validation process ``BATCH_CHUNKS`` at a time and are validated
        there while intake goes on; this waits only when ``BACKLOG`` batches are already
        handed over, so memory stays bounded by a few chunks.
        """
        self.rows += table.num_rows
        self.stats = batch_stats(table, into=self.stats)
        self._gathered.append(table)
        if len(self._gathered) >= BATCH_CHUNKS:
            self._hand_over()

    def _hand_over(self) -> None:
        while len(self._pending) >= BACKLOG:
            self._collect()
        self._pending.append(submit_validation(self.contract, pa.concat_tables(self._gathered), self.now,
                                               self.suite))
        self._gathered = []
        self.batches += 1

    def _collect(self) -> None:
        """The verdict of the oldest batch handed over, added to the file's."""
        outcome, seconds = self._pending.popleft().result()
        CLOCK.add("validate", seconds)
        self._tally(outcome)

    def _tally(self, outcome: ValidationOutcome) -> None:
        counts = [(r["unexpected"], r["checked"]) if r.get("unexpected") is not None else None
                  for r in outcome.results]
        if self.results is None:
            self.results = [dict(r) for r in outcome.results]
            self.counts = counts
            self.listed = [list(r.get("rows") or []) for r in outcome.results]
            return
        for i, (r, c) in enumerate(zip(outcome.results, counts)):
            mine = self.results[i]
            self.listed[i] = (self.listed[i] + list(r.get("rows") or []))[:ROWS_SHOWN]
            if self.counts[i] is not None and c is not None:
                self.counts[i] = (self.counts[i][0] + c[0], self.counts[i][1] + c[1])
            else:
                self.counts[i] = None
                if mine["success"] and not r["success"]:
                    mine["observed"] = r["observed"]
            mine["success"] = mine["success"] and r["success"]

    def outcome(self, con: duckdb.DuckDBPyConnection, batch_id: str) -> ValidationOutcome:
        """The file's verdict, read inside intake's open transaction with its rows in staging.

        The checks that span batches run in SQL while the validation process is still at
        the last batches. History-aware checks (``expectations.history``): row count and
        empty shares against the last accepted deliveries of this extract; read-only,
        counts only.
        """
        if self._gathered:
            self._hand_over()
        across: dict[int, dict] = {}  # suite position -> the SQL result of a check across batches
        if self.batches > 1:
            with CLOCK.timed("validate"):
                for i, spec in enumerate(self.expectations):
                    if spec["type"] in CROSS_CHUNK:
                        across[i] = {}
                        self._sql_check(con, batch_id, spec, across[i])
        while self._pending:
            self._collect()
        results = self.results or []
        for i, r in enumerate(results):
            if self.counts[i] is not None:
                count(r, *self.counts[i], self.listed[i])
            else:  # summed over batches no more: no count stands for the whole file
                r.update(unexpected=None, checked=None)
        # The suite's expectations come first, in order; checks of the hub's own follow them.
        if len(results) >= len(self.expectations):
            for i, found in across.items():
                if results[i]["expectation"] == self.expectations[i]["type"]:
                    results[i].update(found)
        success = not any(not r["success"] and r["severity"] == CRITICAL for r in results)
        outcome = ValidationOutcome(suite=self.contract.name, success=success, results=results)
        with CLOCK.timed("validate"):
            return outcome.extend(history_checks(con, self.contract, self.stats or {"rows": 0, "nulls": {}},
                                                 batch_id))

    def _sql_check(self, con: duckdb.DuckDBPyConnection, batch_id: str, spec: dict, result: dict) -> None:
        """Batch-level checks over the staging rows of this batch (inside the open transaction)."""
        kwargs, table = spec["kwargs"], f"staging.{self.contract.name}"
        if spec["type"] == "expect_table_row_count_to_be_between":
            low, high = kwargs.get("min_value"), kwargs.get("max_value")
            result["success"] = (low is None or self.rows >= low) and (high is None or self.rows <= high)
            result["observed"] = f"observed {self.rows:,}"
            return
        keys = [kwargs["column"]] if "column" in kwargs else list(kwargs["column_list"])
        quoted = ", ".join(f'"{k}"' for k in keys)
        # As GX counts it: every row whose key occurs more than once; rows with no key are ignored.
        present = " OR ".join(f'"{k}" IS NOT NULL' for k in keys)
        duplicates = (f"SELECT {quoted}, count(*) AS n FROM {table} WHERE _batch_id = ? AND ({present}) "
                      f"GROUP BY {quoted} HAVING count(*) > 1")
        [(duplicated,)] = con.execute(f"SELECT coalesce(sum(n), 0) FROM ({duplicates})", [batch_id]).fetchall()
        same = " AND ".join(f's."{k}" IS NOT DISTINCT FROM d."{k}"' for k in keys)
        # No duplicates, no rows to name: the join would read the whole batch again for nothing.
        listed = [n for (n,) in con.execute(
            f"SELECT s._row_number FROM {table} s JOIN ({duplicates}) d ON {same} WHERE s._batch_id = ? "
            f"ORDER BY s._row_number LIMIT {ROWS_SHOWN}", [batch_id, batch_id]).fetchall()] if duplicated else []
        result["success"] = duplicated == 0
        count(result, int(duplicated), self.rows, listed)
