"""History-aware checks: does this delivery look like the recent ones of the same extract?

A GX suite sees one batch at a time, so it cannot notice that a daily extract
suddenly holds half its usual rows, or that a column that is normally filled
arrives mostly empty (the typical trace of an export change upstream). These
checks compare a new batch with the last accepted deliveries of the same
extract, read from the warehouse the intake already holds open:

* row count against the median of the last N deliveries (``ops.batches``);
* the share of empty values of every optional column against the median
  share in the same deliveries (counted in ``staging.<extract>``).

They need only counts, which the intake gathers chunk by chunk with
``batch_stats``, so they work for streamed files and never see a value.
Results have the shape of ``ValidationOutcome.results`` and are stored with
the batch's other validation results.

Thresholds come from the optional ``validation:`` key of the contract::

    validation:
      history_deliveries: 5       # how many earlier accepted deliveries form the baseline
      min_history: 3              # fewer than this: the checks pass and say so
      row_count_tolerance: 0.10   # allowed deviation, as a share of the median row count
      row_count_severity: warning # or critical, to quarantine the batch
      null_share_tolerance: 0.10  # allowed change of a column's empty share (0.10 = 10 points)
      null_share_severity: warning
      max_removed_share: 0.10     # volume guard (connectors.inbox): a full-history delivery, or a
                                  # same-name correction, that would remove a larger share of the
                                  # current rows is held for a steward instead of loaded

Schema drift (added, removed or renamed columns) is refused earlier, when the
header is read (``leadhub.core.readers``); ``ops.data_quality`` names those
refusals ``schema_drift``.
"""

from __future__ import annotations

import statistics
from dataclasses import dataclass, fields

from leadhub.core.contracts import Contract, ContractError
from expectations.suites import CRITICAL, WARNING, suite_for, validated_columns

ROW_COUNT_CHECK = "expect_row_count_to_match_history"
NULL_SHARE_CHECK = "expect_null_share_to_match_history"
# Lineage columns are filled by the loader itself; their history says nothing about the agency.
NOT_PROFILED = ("key_id", "_row_number")


@dataclass(frozen=True)
class HistorySettings:
    """Thresholds of the history checks; each can be overridden per extract in its contract."""

    history_deliveries: int = 5
    min_history: int = 3
    row_count_tolerance: float = 0.10
    row_count_severity: str = WARNING
    null_share_tolerance: float = 0.10
    null_share_severity: str = WARNING
    max_removed_share: float = 0.10


def history_settings(contract: Contract) -> HistorySettings:
    """The contract's ``validation:`` overrides on top of the defaults; unknown keys are errors,
    so a misspelt threshold cannot silently fall back to the default."""
    raw = dict(contract.validation or {})
    known = {f.name: f.type for f in fields(HistorySettings)}
    unknown = sorted(set(raw) - set(known))
    if unknown:
        raise ContractError(f"contract {contract.name}: unknown validation setting(s) "
                            f"{', '.join(unknown)}; known: {', '.join(sorted(known))}")
    settings = HistorySettings(**raw)
    for name in ("row_count_severity", "null_share_severity"):
        if getattr(settings, name) not in (CRITICAL, WARNING):
            raise ContractError(f"contract {contract.name}: validation {name} must be "
                                f"'{CRITICAL}' or '{WARNING}'")
    if not 0 <= settings.max_removed_share <= 1:
        raise ContractError(f"contract {contract.name}: validation max_removed_share must be "
                            "a share between 0 and 1")
    if settings.history_deliveries < 1 or settings.min_history < 1:
        raise ContractError(f"contract {contract.name}: validation history sizes must be positive")
    return settings


def batch_stats(chunk, into: dict | None = None) -> dict:
    """Row count and empty cells per column of one chunk (Arrow table or pandas frame).

    Pass the previous result as ``into`` to add chunk after chunk of one file:
    ``{"rows": int, "nulls": {column: int}}``.
    """
    stats = into if into is not None else {"rows": 0, "nulls": {}}
    if hasattr(chunk, "num_rows"):  # pyarrow.Table
        rows = chunk.num_rows
        nulls = {name: chunk.column(name).null_count for name in chunk.column_names}
    else:  # pandas.DataFrame
        rows = len(chunk)
        nulls = {name: int(n) for name, n in chunk.isna().sum().items()}
    stats["rows"] += rows
    for name, n in nulls.items():
        stats["nulls"][name] = stats["nulls"].get(name, 0) + n
    return stats


def profiled_columns(contract: Contract) -> list[str]:
    """Columns whose empty share is compared with history: those the suite lets be empty.

    A required column already has a critical not-null expectation, so its share is 0 or the
    batch is refused anyway.
    """
    required = {e["kwargs"]["column"] for e in suite_for(contract.name)["expectations"]
                if e["type"] == "expect_column_values_to_not_be_null"}
    return [c for c in validated_columns(contract) if c not in required and c not in NOT_PROFILED]


def history_checks(con, contract: Contract, stats: dict, batch_id: str | None = None) -> list[dict]:
    """Compare a batch's counts with the last accepted deliveries of its extract.

    Read-only queries on ``con`` (the intake's open connection, inside or outside its
    transaction). ``batch_id``, when the batch is already written, is left out of its
    own history. Returns result dicts shaped like ``ValidationOutcome.results``.
    """
    settings = history_settings(contract)
    earlier = _earlier_batches(con, contract, settings.history_deliveries, batch_id)
    results = [_row_count_result(settings, stats["rows"], [rows for _, rows in earlier])]
    profile = _null_profile(con, contract, [b for b, _ in earlier])
    for column in profiled_columns(contract):
        if column not in stats["nulls"]:
            continue  # a missing column is the columns expectation's failure, not history's
        results.append(_null_share_result(settings, column, stats["nulls"][column], stats["rows"],
                                          profile.get(column, [])))
    return results


def _earlier_batches(con, contract: Contract, n: int, batch_id: str | None) -> list[tuple[str, int]]:
    """(batch_id, rows) of the last ``n`` loaded batches of the extract, newest first."""
    return con.execute(
        "SELECT batch_id, row_count FROM ops.batches WHERE contract = ? AND batch_id IS DISTINCT FROM ? "
        "ORDER BY loaded_at DESC, batch_id DESC LIMIT ?", [contract.name, batch_id, n]).fetchall()


def _null_profile(con, contract: Contract, batch_ids: list[str]) -> dict[str, list[float]]:
    """Per column, the empty share in each of the given batches (counted in staging)."""
    columns = profiled_columns(contract)
    if not batch_ids or not columns:
        return {}
    counts = ", ".join(f'count("{c}")' for c in columns)
    marks = ", ".join("?" for _ in batch_ids)
    rows = con.execute(
        f"SELECT count(*), {counts} FROM staging.{contract.name} WHERE _batch_id IN ({marks}) "
        f"GROUP BY _batch_id", batch_ids).fetchall()
    profile: dict[str, list[float]] = {c: [] for c in columns}
    for total, *filled in rows:
        for column, n in zip(columns, filled):
            profile[column].append((total - n) / total if total else 0.0)
    return profile


def _not_enough(history: int, settings: HistorySettings) -> str:
    earlier = f"{history} earlier deliver{'y' if history == 1 else 'ies'}"
    return f"not enough history: {earlier}, needs {settings.min_history}"


def _row_count_result(settings: HistorySettings, rows: int, history: list[int]) -> dict:
    tolerance = settings.row_count_tolerance
    result = {
        "expectation": ROW_COUNT_CHECK, "column": None, "severity": settings.row_count_severity,
        "description": (f"row count within {tolerance:.0%} of the median of the last "
                        f"{settings.history_deliveries} deliveries"),
    }
    if len(history) < settings.min_history:
        return {**result, "success": True, "observed": _not_enough(len(history), settings)}
    median = statistics.median(history)
    change = (rows - median) / median if median else (0.0 if rows == 0 else 1.0)
    return {**result, "success": abs(change) <= tolerance,
            "observed": (f"{rows:,} rows; median {median:,.0f} over {len(history)} deliveries "
                         f"({change:+.1%})")}


def _null_share_result(settings: HistorySettings, column: str, nulls: int, rows: int,
                       history: list[float]) -> dict:
    tolerance = settings.null_share_tolerance
    share = nulls / rows if rows else 0.0
    result = {
        "expectation": NULL_SHARE_CHECK, "column": column, "severity": settings.null_share_severity,
        "description": f"share of empty values within {tolerance * 100:.0f} points of its history",
    }
    if len(history) < settings.min_history:
        return {**result, "success": True, "observed": _not_enough(len(history), settings)}
    median = statistics.median(history)
    return {**result, "success": abs(share - median) <= tolerance,
            "observed": (f"{share:.1%} empty; median {median:.1%} over {len(history)} deliveries "
                         f"({(share - median) * 100:+.1f} points)")}
