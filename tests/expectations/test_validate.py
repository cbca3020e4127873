"""Batch validation with real GX on hand-built pseudonymized staging frames."""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict
from datetime import datetime, timedelta

import pandas as pd
import pytest

from leadhub.core.contracts import Contract, load_contracts
from expectations import validate
from expectations.suites import reference_values, token_columns, validated_columns
from expectations.validate import validate_batch
from leadhub.core.warehouse import staging_columns

CONTRACTS = load_contracts()
ARRESTS = CONTRACTS["police_arrests"]
BOOKINGS = CONTRACTS["jail_bookings"]
CASES = CONTRACTS["prosecutor_cases"]
FIRST_DAY = datetime(2023, 1, 2, 8, 30)
# Raw-looking values planted in frames; none may ever come back out.
RAW_NAME = "ZEBEDIAH"
RAW_SSN = "123-45-6789"


def staging_frame(contract: Contract, rows: int = 40, dates_as_objects: bool = False) -> pd.DataFrame:
    """A frame shaped like the pseudonymizer's output that passes every check.

    Each date column falls a day after the one before it, so "A not before B"
    checks hold. ``dates_as_objects`` gives ``datetime.date`` values, as
    ``pyarrow.Table.to_pandas()`` does for DATE columns.
    """
    sql_types = dict(staging_columns(contract))
    tokens = set(token_columns(contract))
    data = {}
    day_offset = 0
    for name in validated_columns(contract):
        col = contract.column(name) if name in contract.column_names else None
        if name in tokens:
            data[name] = [hashlib.sha256(f"{name}|{i}".encode()).hexdigest() for i in range(rows)]
        elif name == "age_at_event":
            data[name] = pd.array([20 + i % 50 for i in range(rows)], dtype="Int64")
        elif name == "key_id":
            data[name] = ["0123456789ab"] * rows
        elif name == "_row_number":
            data[name] = pd.array(range(1, rows + 1), dtype="Int64")
        elif sql_types[name] == "BIGINT":
            data[name] = pd.array([1] * rows, dtype="Int64")
        elif sql_types[name] in ("DATE", "TIMESTAMP"):
            moments = [FIRST_DAY + timedelta(days=i % 200 + day_offset) for i in range(rows)]
            day_offset += 1
            if sql_types[name] == "TIMESTAMP":
                data[name] = pd.to_datetime(moments)
            elif dates_as_objects:
                data[name] = pd.Series([m.date() for m in moments], dtype=object)
            else:
                data[name] = pd.to_datetime([m.date() for m in moments])
        elif col is not None and col.reference:
            codes = reference_values(col.reference)
            data[name] = [codes[i % len(codes)] for i in range(rows)]
        elif col is not None and col.known_values:
            data[name] = [col.known_values[i % len(col.known_values)] for i in range(rows)]
        else:
            data[name] = [f"{name.upper()}{i:06d}" for i in range(rows)]
    return pd.DataFrame(data)


def result(outcome, expectation: str, column: str | None) -> dict:
    [hit] = [r for r in outcome.results if r["expectation"] == expectation and r["column"] == column]
    return hit


def failed(outcome) -> set[tuple[str, str | None]]:
    return {(r["expectation"], r["column"]) for r in outcome.results if not r["success"]}


@pytest.mark.parametrize("contract", [ARRESTS, BOOKINGS, CASES], ids=lambda c: c.name)
def test_clean_frame_passes_every_check(contract):
    outcome = validate_batch(contract, staging_frame(contract))
    assert outcome.success
    assert failed(outcome) == set()
    # every suite expectation, plus the birth-date check of contracts that derive an age
    assert len(outcome.results) == len(validate._gx_suite(contract.name).expectations) + bool(contract.age_at)
    assert outcome.reason() == f"all {len(outcome.results)} checks passed"


def test_dates_as_date_objects_are_checked_like_datetimes():
    df = staging_frame(CASES, dates_as_objects=True)
    assert df["referral_date"].dtype == object
    assert validate_batch(CASES, df).success
    df.loc[3, "decision_date"] = df.loc[3, "referral_date"] - timedelta(days=5)
    outcome = validate_batch(CASES, df)
    assert outcome.success
    assert failed(outcome) == {("expect_column_pair_values_a_to_be_greater_than_b",
                                "decision_date,referral_date")}


def test_frame_from_an_arrow_table_validates():
    """The loader hands over ``pyarrow.Table.to_pandas()``: DATE columns come back as objects."""
    import pyarrow as pa

    df = staging_frame(CASES)
    table = pa.Table.from_pandas(df, preserve_index=False).replace_schema_metadata(None)
    for name, sql_type in staging_columns(CASES):
        if sql_type == "DATE":
            i = table.schema.get_field_index(name)
            table = table.set_column(i, name, table.column(name).cast(pa.date32()))
    frame = table.to_pandas()
    assert frame["referral_date"].dtype == object
    outcome = validate_batch(CASES, frame)
    assert outcome.success, outcome.reason()
    assert failed(outcome) == set()


def test_unknown_code_fails_critical_with_its_count():
    df = staging_frame(ARRESTS, rows=4000)
    df.loc[:6, "precinct"] = RAW_NAME
    outcome = validate_batch(ARRESTS, df)
    assert not outcome.success
    hit = result(outcome, "expect_column_values_to_be_in_set", "precinct")
    assert hit["severity"] == "critical"
    assert hit["observed"] == "unexpected 7 of 4,000 rows, 0.2%; rows 1, 2, 3, 4, 5, 6, 7"
    assert outcome.failed_critical == [hit]
    assert outcome.reason() == ("1 critical check failed: police_arrests.precinct values in known set "
                                "(unexpected 7 of 4,000 rows, 0.2%; rows 1, 2, 3, 4, 5, 6, 7)")


def test_unknown_offense_code_is_named_after_the_offense_table():
    df = staging_frame(ARRESTS)
    df.loc[0, "offense_code"] = "XXX99"
    outcome = validate_batch(ARRESTS, df)
    assert "police_arrests.offense_code values in offense table (unexpected 1 of 40 rows" in outcome.reason()


def test_duplicate_compound_key_fails():
    df = staging_frame(BOOKINGS)
    df.loc[5, "booking_id"] = df.loc[4, "booking_id"]
    outcome = validate_batch(BOOKINGS, df)
    assert not outcome.success
    assert failed(outcome) == {("expect_compound_columns_to_be_unique", "booking_id,charge_seq")}
    hit = result(outcome, "expect_compound_columns_to_be_unique", "booking_id,charge_seq")
    assert hit["observed"].startswith("unexpected 2 of 40 rows")
    assert outcome.reason().startswith("1 critical check failed: jail_bookings primary key "
                                       "(booking_id, charge_seq) is unique")


def test_bad_token_fails_critical():
    df = staging_frame(ARRESTS)
    df.loc[2, "person_token"] = df.loc[2, "person_token"].upper()
    df.loc[3, "ssn_token"] = None  # tokens of optional identifiers may be missing
    outcome = validate_batch(ARRESTS, df)
    assert not outcome.success
    assert failed(outcome) == {("expect_column_values_to_match_regex", "person_token")}


def test_age_out_of_range_is_only_a_warning():
    df = staging_frame(ARRESTS)
    df.loc[0, "age_at_event"] = 7
    df.loc[1, "age_at_event"] = pd.NA
    outcome = validate_batch(ARRESTS, df)
    assert outcome.success
    assert outcome.failed_critical == []
    [warning] = outcome.failed_warning
    assert (warning["column"], warning["severity"]) == ("age_at_event", "warning")
    assert warning["observed"] == "unexpected 1 of 40 rows, 2.5%"
    assert outcome.reason() == ("passed with 1 warning: police_arrests.age_at_event between 10 and 100 "
                                "(unexpected 1 of 40 rows, 2.5%)")


def test_release_before_booking_is_critical_and_future_dates_warn():
    df = staging_frame(BOOKINGS)
    df.loc[0, "release_ts"] = df.loc[0, "booking_ts"] - timedelta(hours=1)
    df.loc[1, "release_ts"] = pd.NaT  # still in custody
    now = FIRST_DAY + timedelta(days=20)
    outcome = validate_batch(BOOKINGS, df, now=now)
    assert not outcome.success
    assert [r["column"] for r in outcome.failed_critical] == ["release_ts,booking_ts"]
    assert {r["column"] for r in outcome.failed_warning} == {"booking_ts", "release_ts"}
    future = int((df["booking_ts"] > now).sum())
    assert future > 0
    assert result(outcome, "expect_column_values_to_be_between", "booking_ts")["observed"].startswith(
        f"unexpected {future} of 40 rows")
    assert validate_batch(BOOKINGS, df.drop(index=0)).success


def test_missing_column_fails_with_a_readable_reason():
    df = staging_frame(ARRESTS).drop(columns=["sex"])
    outcome = validate_batch(ARRESTS, df)
    assert not outcome.success
    columns = result(outcome, "expect_table_columns_to_match_ordered_list", None)
    assert columns["observed"] == "missing: sex"
    in_set = result(outcome, "expect_column_values_to_be_in_set", "sex")
    assert not in_set["success"] and in_set["observed"].startswith("error: ")
    assert outcome.reason().startswith(
        "2 critical checks failed: police_arrests columns match the staging layout (missing: sex); "
        "police_arrests.sex values in known set (error: ")


def test_extra_and_reordered_columns_are_counted_not_named():
    df = staging_frame(ARRESTS)
    df[RAW_NAME] = 1
    outcome = validate_batch(ARRESTS, df)
    assert result(outcome, "expect_table_columns_to_match_ordered_list", None)["observed"] == (
        "1 unexpected column")
    reordered = staging_frame(ARRESTS)[list(reversed(validated_columns(ARRESTS)))]
    outcome = validate_batch(ARRESTS, reordered)
    assert result(outcome, "expect_table_columns_to_match_ordered_list", None)["observed"] == (
        "column order differs")
    assert not outcome.success


def test_empty_frame_fails_the_row_count():
    outcome = validate_batch(ARRESTS, staging_frame(ARRESTS).iloc[0:0])
    assert not outcome.success
    assert result(outcome, "expect_table_row_count_to_be_between", None)["observed"] == "observed 0"


def test_raw_values_never_reach_the_outcome():
    df = staging_frame(BOOKINGS)
    df.loc[0, "sex"] = RAW_NAME
    df.loc[1, "race"] = RAW_NAME
    df.loc[2, "offense_code"] = RAW_SSN
    df.loc[3, "person_token"] = RAW_SSN
    df.loc[4, "ssn_token"] = RAW_SSN
    df.loc[5, "booking_id"] = df.loc[6, "booking_id"]
    df["age_at_event"] = df["age_at_event"].astype(object)
    df.loc[7, "age_at_event"] = RAW_NAME  # makes GX raise while comparing
    df[RAW_NAME] = RAW_SSN
    outcome = validate_batch(BOOKINGS, df)
    assert not outcome.success
    assert result(outcome, "expect_column_values_to_be_between", "age_at_event")["observed"].startswith(
        "error: ")
    everything = " ".join([json.dumps(outcome.results), outcome.reason(), repr(outcome),
                           json.dumps(asdict(outcome))])
    for planted in (RAW_NAME, RAW_SSN, df.loc[6, "booking_id"]):
        assert planted not in everything


def test_exception_type_is_read_from_the_traceback_without_its_message():
    info = {"metric-id": {
        "raised_exception": True, "exception_message": f"bad value {RAW_NAME}",
        "exception_traceback": ("Traceback (most recent call last):\n  File \"x.py\", line 1\n"
                                f"great_expectations.exceptions.MetricResolutionError: bad {RAW_NAME}\n"
                                f"  {RAW_NAME}Error: second line of the message\n")}}
    assert validate._exception_type(info) == "MetricResolutionError"
    assert validate._exception_type({"raised_exception": False}) is None


def test_validation_runs_on_pandas_and_reports_real_counts():
    """Guard: GX 1.24's SQL datasource on DuckDB returns empty metrics, so every check errors.

    If someone swaps the datasource, the type check fails; if metrics ever come
    back empty, the exact count below does.
    """
    from great_expectations.datasource.fluent import PandasDatasource

    assert type(validate.datasource()) is PandasDatasource
    assert validate._batch_definition(ARRESTS.name).data_asset.datasource is validate.datasource()
    df = staging_frame(ARRESTS, rows=300)
    df.loc[df.index[::10], "severity"] = "violation"
    outcome = validate_batch(ARRESTS, df)
    assert result(outcome, "expect_column_values_to_be_in_set", "severity")["observed"] == (
        "unexpected 30 of 300 rows, 10.0%; first rows 1, 11, 21, 31, 41, 51, 61, 71, 81, 91, ...")
    assert not any(r["observed"].startswith("error") for r in outcome.results)
    assert result(outcome, "expect_table_row_count_to_be_between", None)["observed"] == "observed 300"


def test_suites_are_read_once_per_process():
    before = validate._gx_suite.cache_info().misses
    validate_batch(ARRESTS, staging_frame(ARRESTS))
    validate_batch(ARRESTS, staging_frame(ARRESTS))
    assert validate._gx_suite.cache_info().misses <= before + 1
    assert validate._context() is validate._context()



def test_an_arrow_table_gets_the_same_verdict_as_its_pandas_frame():
    """The intake may hand over its Arrow table; GX then sees Arrow-backed pandas."""
    import pyarrow as pa

    df = staging_frame(BOOKINGS, rows=200, dates_as_objects=True)
    df.loc[0, "release_ts"] = df.loc[0, "booking_ts"] - timedelta(hours=1)
    df.loc[1, "sex"] = RAW_NAME
    df.loc[2, "booking_id"] = RAW_SSN
    df.loc[3, "age_at_event"] = 5
    table = pa.Table.from_pandas(df, preserve_index=False)
    now = FIRST_DAY + timedelta(days=20)
    from_arrow, from_pandas = validate_batch(BOOKINGS, table, now=now), validate_batch(BOOKINGS, df, now=now)
    assert from_arrow.results == from_pandas.results
    assert failed(from_arrow) == {
        ("expect_column_pair_values_a_to_be_greater_than_b", "release_ts,booking_ts"),
        ("expect_column_values_to_be_in_set", "sex"),
        ("expect_column_values_to_not_match_regex", "booking_id"),
        ("expect_column_values_to_be_between", "age_at_event"),
        ("expect_column_values_to_be_between", "booking_ts"),
        ("expect_column_values_to_be_between", "release_ts"),
    }


# --- row numbers for key and code failures; birth dates after the event ----------------------------

def _result(outcome, expectation, column=None):
    [r] = [r for r in outcome.results if r["expectation"] == expectation
           and (column is None or r["column"] == column)]
    return r


def test_duplicate_keys_are_reported_with_their_row_numbers_never_values():
    frame = staging_frame(BOOKINGS, rows=40)
    # primary key (booking_id, charge_seq): rows 5 and 31 (1-based _row_number) carry the
    # key of row 3, so three rows share one key
    frame.loc[[4, 30], "booking_id"] = frame.loc[2, "booking_id"]
    frame.loc[[4, 30], "charge_seq"] = frame.loc[2, "charge_seq"]
    outcome = validate_batch(BOOKINGS, frame)
    r = _result(outcome, "expect_compound_columns_to_be_unique")
    assert not r["success"] and r["rows"] == [3, 5, 31]
    assert r["observed"] == "unexpected 3 of 40 rows, 7.5%; rows 3, 5, 31"
    assert frame.loc[2, "booking_id"] not in outcome.reason()


def test_unknown_codes_list_the_first_ten_rows_and_the_count():
    frame = staging_frame(ARRESTS, rows=40)
    coded = next(c.name for c in ARRESTS.plain_columns if c.known_values or c.reference)
    frame[coded] = frame[coded].astype(object)
    frame.loc[list(range(10, 22)), coded] = "NOT_A_CODE"  # 12 bad rows: 11..22
    outcome = validate_batch(ARRESTS, frame)
    [r] = [r for r in outcome.results if r["expectation"] == "expect_column_values_to_be_in_set"
           and r["column"] == coded]
    assert r["rows"] == list(range(11, 21))
    assert r["observed"].endswith("; first rows 11, 12, 13, 14, 15, 16, 17, 18, 19, 20, ...")
    assert r["observed"].startswith("unexpected 12 of 40 rows")
    assert "NOT_A_CODE" not in outcome.reason()


def test_a_birth_date_after_the_event_is_a_critical_failure_naming_the_rows():
    frame = staging_frame(BOOKINGS, rows=40)
    frame["age_at_event"] = frame["age_at_event"].astype("Int64")
    frame.loc[[6, 19], "age_at_event"] = -75  # born 2099, booked 2023: rows 7 and 20
    outcome = validate_batch(BOOKINGS, frame)
    r = _result(outcome, "expect_birth_date_not_after_event")
    assert r["severity"] == "critical" and not r["success"] and r["rows"] == [7, 20]
    assert not outcome.success and "rows 7, 20" in outcome.reason()


def test_birth_date_check_passes_on_sound_ages():
    outcome = validate_batch(BOOKINGS, staging_frame(BOOKINGS, rows=40))
    assert _result(outcome, "expect_birth_date_not_after_event")["success"]


def test_regex_checks_by_category_count_as_gx_does_row_by_row():
    """The regex checks match each category once (``_regex_by_category``); the verdicts,
    counts and rows must be those of GX's own row-by-row function."""
    from great_expectations.expectations.registry import _registered_metrics

    validate.datasource()  # GX set up, its regex metrics patched
    df = staging_frame(BOOKINGS, rows=300)
    df.loc[[2, 7, 150], "person_token"] = df.loc[2, "person_token"].upper()
    df.loc[9, "ssn_token"] = "abc"
    df.loc[[3, 4], "ssn_token"] = None
    df.loc[[5, 250], "booking_id"] = RAW_SSN
    by_category = validate_batch(BOOKINGS, df, now=FIRST_DAY + timedelta(days=20))
    cells = [validate._metric_fn_cell(_registered_metrics[m]["providers"]["PandasExecutionEngine"][1])
             for m in ("column_values.match_regex.condition", "column_values.not_match_regex.condition")]
    patched = [cell.cell_contents for cell in cells]
    try:
        for cell, fn in zip(cells, patched):
            cell.cell_contents = fn.__closure__[0].cell_contents  # GX's own function
        row_by_row = validate_batch(BOOKINGS, df, now=FIRST_DAY + timedelta(days=20))
    finally:
        for cell, fn in zip(cells, patched):
            cell.cell_contents = fn
    assert by_category.results == row_by_row.results
    counts = {(r["expectation"], r["column"]): r["unexpected"] for r in by_category.results if not r["success"]}
    assert counts[("expect_column_values_to_match_regex", "person_token")] == 3
    assert counts[("expect_column_values_to_match_regex", "ssn_token")] == 1
    assert counts[("expect_column_values_to_not_match_regex", "booking_id")] == 2


def test_configurations_built_once_per_batch_give_gx_own_verdicts():
    """Within a batch an expectation's configuration is built once
    (``_configuration_once_per_batch``); outside a batch and in the results, GX's own behaviour."""
    from great_expectations.expectations.expectation import Expectation

    validate.datasource()  # GX set up, the property replaced
    df = staging_frame(BOOKINGS, rows=200)
    df.loc[[3, 8], "booking_id"] = df.loc[2, "booking_id"]
    df.loc[5, "ssn_token"] = "abc"
    df.loc[[6, 7], "person_token"] = None
    now = FIRST_DAY + timedelta(days=20)
    once = validate_batch(BOOKINGS, df, now=now)
    patched = Expectation.configuration
    expectation = validate._gx_suite(BOOKINGS.name).expectations[0]
    assert expectation.configuration is not expectation.configuration  # no memo outside a batch
    try:
        Expectation.configuration = property(patched.fget.build)
        every_time = validate_batch(BOOKINGS, df, now=now)
    finally:
        Expectation.configuration = patched
    assert once.results == every_time.results
    assert not once.success


def test_validation_goes_on_when_gx_internals_differ(monkeypatch, caplog):
    """A GX release that arranges its internals differently costs speed, never validation."""
    from expectations import validate

    def moved():
        raise KeyError("column_values.match_regex.condition")

    monkeypatch.setattr(validate, "_regex_by_category", moved)
    validate._context.cache_clear()
    try:
        with caplog.at_level("WARNING"):
            validate._context()
    finally:
        validate._context.cache_clear()
    assert "GX internals differ" in caplog.text and "moved left out" in caplog.text
