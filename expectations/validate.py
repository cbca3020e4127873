"""Validate one pseudonymized staging batch against its contract's suite.

GX runs on a pandas DataFrame: GX 1.24's SQL datasource on DuckDB returns
empty metric results, so every expectation would error. GX's own result
objects can quote cell values, so results are reduced here to counts and
percentages before anything leaves this module.

Intake validates in a process of its own (``submit_validation``): GX is Python
through and through, so on a thread it would hold the GIL the reader and the
pseudonymizer need, while in a second process it uses the second core, and the
intake process never imports GX at all (about 4 s per process).
"""

from __future__ import annotations

import os

os.environ["GX_ANALYTICS_ENABLED"] = "False"

import json  # noqa: E402
import logging  # noqa: E402
import re  # noqa: E402
import threading  # noqa: E402
import time  # noqa: E402
from concurrent.futures import Future, ProcessPoolExecutor  # noqa: E402
from concurrent.futures.process import BrokenProcessPool  # noqa: E402
from dataclasses import dataclass, field  # noqa: E402
from datetime import datetime  # noqa: E402
from functools import cache  # noqa: E402
from multiprocessing import get_context  # noqa: E402
from numbers import Real  # noqa: E402

import pandas as pd  # noqa: E402
import pyarrow as pa  # noqa: E402

from leadhub.core.contracts import Contract  # noqa: E402
from leadhub.core.memory import arrow_on_system_allocator  # noqa: E402
from expectations.suites import CRITICAL, WARNING, suite_for  # noqa: E402

log = logging.getLogger(__name__)

DATASOURCE = "leadhub_staging"
# Counts only: no partial unexpected values, no unexpected rows, no index queries.
RESULT_FORMAT = {
    "result_format": "SUMMARY",
    "partial_unexpected_count": 0,
    "include_unexpected_rows": False,
    "return_unexpected_index_query": False,
}
# How many failed checks reason() names before summing up the rest.
REASON_LIMIT = 5
COLUMN_LIST_CHECKS = ("expect_table_columns_to_match_ordered_list",
                      "expect_table_columns_to_match_set")
# Failures of keys and codes name the rows that broke them (the first ROWS_SHOWN, by the
# delivered file's data-row number), never a value, so a clerk can find and fix them.
ROW_LISTED = ("expect_column_values_to_not_be_null", "expect_column_values_to_be_in_set",
              "expect_column_values_to_be_unique", "expect_compound_columns_to_be_unique")
ROWS_SHOWN = 10
BIRTH_DATE_CHECK = "expect_birth_date_not_after_event"
# An exception's class name as it heads a traceback line, e.g. "pkg.mod.KeyError: ...".
_EXCEPTION_LINE = re.compile(r"^(?:[A-Za-z_]\w*\.)*([A-Za-z_]\w*(?:Error|Exception))(?::|$)")


@dataclass
class ValidationOutcome:
    """The verdict on one batch. Holds names, counts and percentages, never cell values.

    Each result is ``{expectation, column, severity, success, observed, description}`` plus,
    for counted checks, ``unexpected`` and ``checked`` (ints) and ``rows`` (the first failing
    data-row numbers): the typed fields stored in ``ops.validation_results``, from which
    ``observed`` is written (``count``).
    """

    suite: str
    success: bool
    results: list[dict] = field(default_factory=list)

    def extend(self, results: list[dict]) -> "ValidationOutcome":
        """Add results of checks outside the suite (history, ``expectations.history``).

        A failed critical one makes the whole batch fail, exactly like a suite expectation.
        """
        self.results.extend(results)
        self.success = self.success and not any(
            not r["success"] and r["severity"] == CRITICAL for r in results)
        return self

    @property
    def failed_critical(self) -> list[dict]:
        return [r for r in self.results if not r["success"] and r["severity"] == CRITICAL]

    @property
    def failed_warning(self) -> list[dict]:
        return [r for r in self.results if not r["success"] and r["severity"] != CRITICAL]

    def reason(self) -> str:
        """One line for the file ledger and the steward: what failed and how much."""
        if self.failed_critical:
            failed = self.failed_critical
            head = f"{_plural(len(failed), 'critical check')} failed"
            if self.failed_warning:
                head += f" (and {_plural(len(self.failed_warning), 'warning')})"
        elif self.failed_warning:
            failed = self.failed_warning
            head = f"passed with {_plural(len(failed), 'warning')}"
        else:
            return f"all {_plural(len(self.results), 'check')} passed"
        parts = [self._describe(r) for r in failed[:REASON_LIMIT]]
        if len(failed) > REASON_LIMIT:
            parts.append(f"and {len(failed) - REASON_LIMIT} more")
        return f"{head}: " + "; ".join(parts)

    def _describe(self, r: dict) -> str:
        single = r["column"] and "," not in r["column"]
        target = f"{self.suite}.{r['column']}" if single else self.suite
        return f"{target} {r['description']}" + (f" ({r['observed']})" if r["observed"] else "")


def _plural(n: int, noun: str) -> str:
    return f"{n:,} {noun}" if n == 1 else f"{n:,} {noun}s"


def _no_batch_fingerprint() -> None:
    """Stop GX hashing every frame it is given (an MD5 over all cells, twice per batch).

    The hash only becomes a "batch marker" in GX's result metadata, which the hub drops; on a
    million rows it cost more than several expectations. GX skips it for frames larger than
    ``HASH_THRESHOLD`` bytes, so a threshold of 0 skips it always.
    """
    from great_expectations.execution_engine import pandas_execution_engine

    pandas_execution_engine.HASH_THRESHOLD = 0


def _regex_by_category() -> None:
    """Let GX's pandas regex checks match a categorical's categories, not its rows.

    GX's metric is ``column.astype(str).str.contains(regex)``: on a categorical that first
    spells out one string per row. Matching each category once and spreading the verdicts by
    the category codes gives the same verdict per row (GX has already dropped the empty rows)
    at a fraction of the cost: the token columns of a batch hold a few thousand distinct
    tokens for 200,000 rows, and these checks were a third of GX's time. Any other column
    goes to GX's own function unchanged.
    """
    from great_expectations.expectations.registry import _registered_metrics

    for metric in ("column_values.match_regex.condition", "column_values.not_match_regex.condition"):
        cell = _metric_fn_cell(_registered_metrics[metric]["providers"]["PandasExecutionEngine"][1])
        if not getattr(cell.cell_contents, "by_category", False):
            cell.cell_contents = _per_category(cell.cell_contents)


def _metric_fn_cell(fn):
    """The closure cell holding GX's own ``_pandas(cls, column, regex)`` under its decorators."""
    while True:
        cell = fn.__closure__[fn.__code__.co_freevars.index("metric_fn")]
        inner = cell.cell_contents
        if getattr(inner, "by_category", False) or "metric_fn" not in inner.__code__.co_freevars:
            return cell
        fn = inner


def _per_category(metric_fn):
    def matched(cls, column, **kwargs):
        if not (isinstance(column.dtype, pd.CategoricalDtype)
                and pd.api.types.is_string_dtype(column.cat.categories)):
            return metric_fn(cls, column, **kwargs)
        codes = column.cat.codes.to_numpy()
        if (codes < 0).any():  # GX drops the empty rows first; should one be left, GX's way
            return metric_fn(cls, column, **kwargs)
        per_category = metric_fn(cls, pd.Series(column.cat.categories), **kwargs).to_numpy(dtype=bool)
        return pd.Series(per_category[codes], index=column.index)

    matched.by_category = True
    return matched


_batch_memo = threading.local()  # .configurations: {id(expectation): (expectation, config)} in a batch


def _configuration_once_per_batch() -> None:
    """Let an expectation build its ``configuration`` once per batch, not once per look.

    GX's ``Expectation.configuration`` is a property that copies the expectation into a new
    ``ExpectationConfiguration`` (pydantic ``dict()`` and validation) on every read, and GX
    reads it over 3,000 times while building one batch's check graph: about a third of the
    0.19 CPU-s a batch costs whatever its rows. Within ``batch.validate`` nothing changes an
    expectation (GX changes only its own deep copies of configurations), so one copy per
    expectation, kept for that call only, gives the same graph. Outside it, GX's own property.
    """
    from great_expectations.expectations.expectation import Expectation

    build = Expectation.configuration.fget
    if getattr(build, "once_per_batch", False):
        return

    def configuration(self):
        memo = getattr(_batch_memo, "configurations", None)
        if memo is None:
            return build(self)
        kept = memo.get(id(self))
        if kept is None or kept[0] is not self:  # the expectation is kept too: its id stays unique
            kept = memo[id(self)] = (self, build(self))
        return kept[1]

    configuration.once_per_batch = True
    configuration.build = build  # GX's own, for tests
    Expectation.configuration = property(configuration)


@cache
def _context():
    """One ephemeral GX context per process, with progress bars off (they flood task logs)."""
    import great_expectations as gx
    from great_expectations.data_context.types.base import ProgressBarsConfig

    _no_batch_fingerprint()
    for speedup in (_regex_by_category, _configuration_once_per_batch):
        # Both reach into GX's internals (pinned in constraints.txt); should a GX release
        # arrange them differently, validation goes on at GX's own speed with the same verdicts.
        try:
            speedup()
        except (AttributeError, KeyError, ValueError, TypeError, IndexError) as e:
            log.warning("GX internals differ from the pinned release (%s: %s); %s left out",
                        type(e).__name__, e, speedup.__name__)
    ctx = gx.get_context(mode="ephemeral")
    ctx.variables.progress_bars = ProgressBarsConfig(globally=False, metric_calculations=False)
    return ctx


@cache
def datasource():
    """The pandas datasource every batch goes through (see the module docstring for why)."""
    return _context().data_sources.add_pandas(name=DATASOURCE)


@cache
def _batch_definition(name: str):
    asset = datasource().add_dataframe_asset(name=name)
    return asset.add_batch_definition_whole_dataframe(name)


@cache
def _gx_suite(name: str):
    """The suite as a GX suite, read once per process.

    See ``suite_for``: the contract's part comes from the contract itself.
    """
    return _gx_suite_of(json.dumps(suite_for(name), sort_keys=True))


@cache
def _gx_suite_of(text: str):
    """A stored suite (as JSON text) as a GX suite, made once per process and content."""
    from great_expectations.core.expectation_suite import ExpectationSuite

    stored = json.loads(text)
    suite = ExpectationSuite(name=stored["name"], expectations=stored["expectations"],
                             meta=stored.get("meta"))
    # Adding it gives every expectation an id, which ties each result back to its place.
    return _context().suites.add_or_update(suite)


def _prepared_for_gx(contract: Contract, df: pd.DataFrame) -> pd.DataFrame:
    """The frame in the dtypes GX's pandas metrics compare vectorized; a copy, never the caller's.

    Dates held as ``datetime.date`` objects (``pyarrow.Table.to_pandas()`` gives those for
    DATE columns) become datetimes, so they compare with ``now``. GX's "between" metric
    compares column by column only for int64/float64 and nanosecond datetimes, and falls back
    to one Python call per row otherwise (``ColumnValuesBetween._pandas``); Arrow hands over
    microsecond timestamps and int32, which made that check the slowest of a suite. So dates
    become nanosecond datetimes (unless a value lies beyond 2262, which only the slow path
    can compare) and other integer columns become float64 (exact for these magnitudes, and
    the way pandas holds an integer column with gaps anyway). Text columns become
    categoricals: GX filters the whole frame once per column check (the rows where that
    column is not null), and copying category codes is far cheaper than copying strings,
    above all the long tokens and encodings (on 50,000 staged jail rows, 0.28 s a chunk
    instead of 0.44 s; see bench/README.md).
    """
    dates = {c.name for c in contract.plain_columns if c.type in ("date", "timestamp")}
    changes = {}
    for name in df.columns:
        column = df[name]
        if pd.api.types.is_string_dtype(column) and not isinstance(column.dtype, pd.CategoricalDtype):
            column = column.astype("category")
        elif name in dates:
            if not pd.api.types.is_datetime64_any_dtype(column):
                column = pd.to_datetime(column, errors="coerce")
            if not isinstance(column.dtype, pd.DatetimeTZDtype) and column.dtype != "datetime64[ns]":
                try:
                    column = column.astype("datetime64[ns]")
                except (pd.errors.OutOfBoundsDatetime, OverflowError):
                    pass
        elif pd.api.types.is_integer_dtype(column) and column.dtype != "int64":
            column = column.astype("float64")
        if column is not df[name]:
            changes[name] = column
    return df.assign(**changes) if changes else df


def validate_batch(contract: Contract, df: "pd.DataFrame | pa.Table",
                   now: datetime | None = None, stored: dict | None = None) -> ValidationOutcome:
    """Run the contract's stored suite on a staging frame (staging columns minus ``_batch_id``).

    ``df`` is a pandas frame or the intake's Arrow table. An Arrow table's text columns are
    dictionary-encoded by Arrow and arrive as the categoricals ``_prepared_for_gx`` wants,
    without a copy of every string into Python.
    ``success`` is False when any critical expectation failed or errored;
    warnings are reported but never block a batch. ``now`` bounds the
    "not in the future" checks (default: the current local time). ``stored`` is the
    contract's suite as ``suite_for`` gives it, read by the caller (default: read here).
    """
    if isinstance(df, pa.Table):
        df = pa.table([c.dictionary_encode() if pa.types.is_string(c.type) else c for c in df.columns],
                      names=df.column_names).to_pandas()
    suite = _gx_suite(contract.name) if stored is None else _gx_suite_of(json.dumps(stored, sort_keys=True))
    batch = _batch_definition(contract.name).get_batch(
        batch_parameters={"dataframe": _prepared_for_gx(contract, df)})
    _batch_memo.configurations = {}
    try:
        run = batch.validate(suite, result_format=RESULT_FORMAT,
                             expectation_parameters={"now": pd.Timestamp(now or datetime.now())})
    finally:
        _batch_memo.configurations = None
    position = {e.id: i for i, e in enumerate(suite.expectations)}
    ordered = sorted(run.results, key=lambda r: position.get(r.expectation_config.id, len(position)))
    results = [_summarize(r) for r in ordered]
    for gx_result, result in zip(ordered, results):
        config = gx_result.expectation_config
        columns = config.kwargs.get("column_list") or [config.kwargs.get("column")]
        if (not result["success"] and config.type in ROW_LISTED
                and all(c in df for c in [*columns, "_row_number"])):  # a missing column names no rows
            _name_rows(result, df, _failing(config, df))
    if contract.age_at and "age_at_event" in df:
        results.append(_birth_date_result(contract, df))
    return ValidationOutcome(
        suite=contract.name,
        success=not any(not r["success"] and r["severity"] == CRITICAL for r in results),
        results=results,
    )


def _set_up(parent: int) -> None:
    """Start of the validation process: GX set up, and an exit of its own once ``parent`` is gone.

    A process killed, or ended with ``os._exit`` as task runners end theirs, never shuts its
    pool down, and the worker would wait for work forever.
    """
    threading.Thread(target=_exit_with_parent, args=(parent,), name="parent-watch", daemon=True).start()
    arrow_on_system_allocator()  # every batch arrives as Arrow buffers
    datasource()


def _exit_with_parent(parent: int) -> None:
    while os.getppid() == parent:
        time.sleep(1)
    os._exit(0)


def _ready() -> None:
    datasource()


_worker: ProcessPoolExecutor | None = None
_worker_lock = threading.Lock()


def _validation_worker() -> ProcessPoolExecutor:
    """The process that validates for this one: started on first use and kept, GX set up in it.

    Spawned rather than forked: the intake process holds DuckDB's threads, which a fork
    would copy in whatever state they are.
    """
    global _worker
    with _worker_lock:
        if _worker is None:
            _worker = ProcessPoolExecutor(1, mp_context=get_context("spawn"), initializer=_set_up,
                                          initargs=(os.getpid(),))
        return _worker


def start_validation_worker() -> None:
    """Start the validation process now, so GX's import overlaps the work before the first chunk."""
    _validation_worker()


def stop_validation_worker() -> None:
    """Stop the validation process, if one runs.

    Python stops it at interpreter shutdown, which a process ending with ``os._exit``
    skips: an Airflow task does, and its validation process would live on, holding the
    task's log sockets (Airflow waits a minute for them) and GX's memory.
    """
    global _worker
    with _worker_lock:
        worker, _worker = _worker, None
    if worker is not None:
        worker.shutdown(wait=True)


def validation_worker_ready() -> None:
    """Wait until the validation process has GX set up (benchmarks start their clock after it)."""
    _validation_worker().submit(_ready).result()


def _checked_only(table: pa.Table, stored: dict) -> pa.Table:
    """The table with every column no expectation reads replaced by NULLs of its type.

    Such columns (the similarity encodings, most of a staged row's bytes) are checked
    by name only, by the column-list expectations, so their names and types stay and
    their values need not travel to the validation process.
    """
    read = {"_row_number", "age_at_event"}  # row numbers of failures; the birth-date check
    for spec in stored["expectations"]:
        kwargs = spec["kwargs"]
        read.update(kwargs[k] for k in ("column", "column_A", "column_B") if k in kwargs)
        if spec["type"] not in COLUMN_LIST_CHECKS:
            read.update(kwargs.get("column_list") or ())
    return pa.table([c if name in read else pa.nulls(len(table), c.type)
                     for name, c in zip(table.column_names, table.columns)], schema=table.schema)


@dataclass
class PendingValidation:
    """A batch handed to the validation process (``submit_validation``)."""

    future: Future
    worker: ProcessPoolExecutor

    def result(self) -> tuple[ValidationOutcome, float]:
        """Wait (outside the GIL) for the verdict and the seconds the validation process spent
        on it. A dead worker is replaced on the next submission."""
        global _worker
        try:
            return self.future.result()
        except BrokenProcessPool:
            with _worker_lock:
                if _worker is self.worker:
                    _worker = None
            raise


def _validate_timed(contract: Contract, table: pa.Table, now: datetime,
                    stored: dict) -> tuple[ValidationOutcome, float]:
    started = time.perf_counter()
    outcome = validate_batch(contract, table, now, stored)
    return outcome, time.perf_counter() - started


def submit_validation(contract: Contract, table: pa.Table, now: datetime, stored: dict) -> PendingValidation:
    """Hand ``validate_batch`` of ``table`` to the validation process and return at once.

    The table travels by pickle (Arrow buffers, no per-value conversion), the verdict
    back as names and counts. ``stored`` is the contract's suite as ``suite_for`` gives it,
    read by the caller once per file and sent along, so the worker, which outlives many
    files, validates every batch of a file by the same suite, the one this process read.
    """
    worker = _validation_worker()
    return PendingValidation(worker.submit(_validate_timed, contract, _checked_only(table, stored), now, stored),
                             worker)


def _failing(config, df: pd.DataFrame) -> pd.Series:
    """The rows a key or code expectation counts as unexpected, computed as GX counts them."""
    kwargs = config.kwargs
    if config.type == "expect_compound_columns_to_be_unique":
        keys = df[list(kwargs["column_list"])]
        return keys.duplicated(keep=False) & keys.notna().any(axis=1)
    column = df[kwargs["column"]]
    if config.type == "expect_column_values_to_not_be_null":
        return column.isna()
    if config.type == "expect_column_values_to_be_unique":
        return column.duplicated(keep=False) & column.notna()
    return ~column.isin(list(kwargs["value_set"])) & column.notna()


def _name_rows(result: dict, df: pd.DataFrame, failing: pd.Series) -> None:
    """Put the failing rows' numbers into a result (``rows``, and its ``observed`` text)."""
    numbers = sorted(int(n) for n in df.loc[failing.fillna(False).to_numpy(dtype=bool), "_row_number"])
    count(result, len(numbers), len(df), numbers[:ROWS_SHOWN])


def _birth_date_result(contract: Contract, df: pd.DataFrame) -> dict:
    """A birth date after the event (a negative age at the event) is critical: such an age must
    never be published. The age is derived while the birth date is still at hand (during
    pseudonymization); only its sign is checked here."""
    age = pd.to_numeric(df["age_at_event"], errors="coerce")
    failing = (age < 0).fillna(False)
    result = count({"expectation": BIRTH_DATE_CHECK, "column": "age_at_event", "severity": CRITICAL,
                    "success": not failing.any(), "description": f"birth date not after {contract.age_at}"},
                   0, len(df))
    if not result["success"]:
        _name_rows(result, df, failing)
    return result


def _summarize(result) -> dict:
    """One GX result reduced to names and numbers; the GX object itself is dropped."""
    config = result.expectation_config
    kwargs = config.kwargs
    error = _exception_type(result.exception_info)
    if "column" in kwargs:
        column = kwargs["column"]
    elif "column_list" in kwargs and config.type not in COLUMN_LIST_CHECKS:
        column = ",".join(kwargs["column_list"])
    elif "column_A" in kwargs:
        column = f"{kwargs['column_A']},{kwargs['column_B']}"
    else:
        column = None
    summary = {
        "expectation": config.type,
        "column": column,
        "severity": (config.meta or {}).get("severity", CRITICAL),
        "success": bool(result.success) and error is None,
        "observed": f"error: {error}" if error else _observed(config, result.result or {}),
        "description": config.description or config.type,
    }
    found = result.result or {}
    if error is None and isinstance(found.get("unexpected_count"), Real):
        count(summary, int(found["unexpected_count"]), int(found.get("element_count") or 0))
    return summary


def _exception_type(info: dict | None) -> str | None:
    """The class name of an exception GX caught, or None; its message can quote values."""
    if not info:
        return None
    infos = [info] if "raised_exception" in info else list(info.values())
    raised = [i for i in infos if isinstance(i, dict) and i.get("raised_exception")]
    if not raised:
        return None
    for line in reversed((raised[0].get("exception_traceback") or "").splitlines()):
        match = _EXCEPTION_LINE.match(line)
        if match:
            return match.group(1)
    return "exception"


def _observed(config, result: dict) -> str:
    """Observations other than counts (those are ``count``'s), from numeric fields of the GX result."""
    value = result.get("observed_value")
    if config.type in COLUMN_LIST_CHECKS and isinstance(value, list):
        return _column_difference(list(config.kwargs["column_list"]), value)
    if isinstance(value, Real) and not isinstance(value, bool):
        return f"observed {value:,}" if float(value).is_integer() else f"observed {value:,.4g}"
    return ""


def count(result: dict, unexpected: int, checked: int, row_numbers: list[int] | None = None) -> dict:
    """Give a result its typed counts and the one text written from them; returns the result."""
    result.update(unexpected=unexpected, checked=checked, rows=list(row_numbers or []),
                  observed=counted(unexpected, checked, row_numbers))
    return result


def counted(unexpected: int, rows: int, row_numbers: list[int] | None = None) -> str:
    """The one wording of a counted result, "unexpected n of m rows, p%" (for people; the counts
    themselves are stored typed, see ``count``).

    ``row_numbers``, the first failing data rows, are appended: "; rows 3, 9" when they are
    all of them, "; first rows 3, 9, ..." when there are more.
    """
    share = 100 * unexpected / rows if rows else 0.0
    percent = "<0.1%" if 0 < share < 0.1 else f"{share:.1f}%"
    text = f"unexpected {unexpected:,} of {_plural(rows, 'row')}, {percent}"
    if row_numbers:
        listed = ", ".join(str(n) for n in row_numbers)
        text += f"; rows {listed}" if len(row_numbers) >= unexpected else f"; first rows {listed}, ..."
    return text


def _column_difference(expected: list[str], found: list) -> str:
    """Names only from the suite's expected list: the frame's own extra names are counted."""
    missing = [c for c in expected if c not in found]
    extra = sum(1 for c in found if c not in expected)
    parts = []
    if missing:
        parts.append("missing: " + ", ".join(missing))
    if extra:
        parts.append(_plural(extra, "unexpected column"))
    if not parts and found != expected:
        parts.append("column order differs")
    return "; ".join(parts) or _plural(len(found), "column")
