"""History-aware checks through the real intake: row counts and empty shares vs earlier deliveries."""

from __future__ import annotations

from dataclasses import replace

import pandas as pd
import pyarrow as pa
import pytest

import connectors.inbox as inbox
from leadhub.core.contracts import ContractError, load_contracts
from leadhub.pipeline import ingest_agency
from expectations.history import (NULL_SHARE_CHECK, ROW_COUNT_CHECK, HistorySettings, batch_stats,
                                  history_settings, profiled_columns)
from expectations.validate import ValidationOutcome

REFERRALS = load_contracts()["police_referrals"]


def deliver(settings, master_key, deliveries, day: int, rows: list[dict]) -> dict:
    deliveries.drop(settings, f"police_referrals_202401{day:02d}.csv", deliveries.to_csv(rows))
    [outcome] = ingest_agency(settings, "police", master_key)
    return outcome


def deliver_history(settings, master_key, deliveries, sizes=(100, 104, 96)) -> None:
    """Three accepted deliveries: the minimum history the checks need by default."""
    start = 0
    for day, n in enumerate(sizes, start=1):
        assert deliver(settings, master_key, deliveries, day,
                       deliveries.referral_rows(n, start=start))["status"] == "accepted"
        start += n


def stored(deliveries, settings, batch_id: str, expectation: str) -> list[tuple]:
    return deliveries.query(
        settings, "SELECT column_name, severity, success, observed FROM ops.validation_results "
        "WHERE batch_id = ? AND expectation = ? ORDER BY column_name", [batch_id, expectation])


def test_batch_stats_add_up_chunks_of_arrow_and_pandas():
    first = pa.table({"a": [1, None, 3], "b": [None, None, "x"]})
    second = pd.DataFrame({"a": [None, 2.0], "b": ["y", None]})
    stats = batch_stats(second, into=batch_stats(first))
    assert stats == {"rows": 5, "nulls": {"a": 2, "b": 3}}


def test_settings_default_and_per_extract_overrides():
    assert history_settings(REFERRALS) == replace(HistorySettings(), row_count_tolerance=0.5)
    strict = replace(REFERRALS, validation={"row_count_tolerance": 0.2, "row_count_severity": "critical"})
    assert history_settings(strict) == replace(HistorySettings(), row_count_tolerance=0.2,
                                               row_count_severity="critical")
    with pytest.raises(ContractError, match="row_count_tolerence"):
        history_settings(replace(REFERRALS, validation={"row_count_tolerence": 0.2}))
    with pytest.raises(ContractError, match="critical"):
        history_settings(replace(REFERRALS, validation={"null_share_severity": "fatal"}))


def test_every_contract_has_valid_validation_settings():
    for contract in load_contracts().values():
        history_settings(contract)


def test_only_optional_columns_are_profiled():
    columns = profiled_columns(REFERRALS)
    assert {"officer_id", "offense_category", "ssn_token", "sex", "age_at_event"} <= set(columns)
    assert not {"referral_id", "person_token", "precinct", "key_id", "_row_number"} & set(columns)


def test_outcome_extend_fails_the_batch_only_on_a_critical_result():
    outcome = ValidationOutcome(suite="s", success=True, results=[])
    warning = {"expectation": "x", "column": None, "severity": "warning", "success": False,
               "observed": "", "description": "d"}
    assert outcome.extend([warning]).success
    assert not outcome.extend([{**warning, "severity": "critical"}]).success


def test_first_deliveries_pass_with_not_enough_history(settings, master_key, deliveries):
    outcome = deliver(settings, master_key, deliveries, 1, deliveries.referral_rows(50))
    assert outcome["status"] == "accepted" and outcome["warnings"] == 0
    [(column, severity, success, observed)] = stored(deliveries, settings, outcome["batch_id"],
                                                     ROW_COUNT_CHECK)
    assert (column, severity, success) == (None, "warning", True)
    assert observed == "not enough history: 0 earlier deliveries, needs 3"


def test_half_the_usual_rows_is_a_recorded_warning(settings, master_key, deliveries, monkeypatch):
    # Default tolerance (10%) rather than the referral contract's own override.
    default = replace(REFERRALS, validation={})
    monkeypatch.setattr(inbox, "contract_for_file", lambda agency, name: default)
    deliver_history(settings, master_key, deliveries)
    within = deliver(settings, master_key, deliveries, 4, deliveries.referral_rows(108, start=400))
    assert within["status"] == "accepted" and within["warnings"] == 0
    [(_, _, success, observed)] = stored(deliveries, settings, within["batch_id"], ROW_COUNT_CHECK)
    assert success and observed == "108 rows; median 100 over 3 deliveries (+8.0%)"

    half = deliver(settings, master_key, deliveries, 5, deliveries.referral_rows(50, start=600))
    assert half["status"] == "accepted" and half["warnings"] == 1
    [(_, severity, success, observed)] = stored(deliveries, settings, half["batch_id"], ROW_COUNT_CHECK)
    assert (severity, success) == ("warning", False)
    assert observed == "50 rows; median 102 over 4 deliveries (-51.0%)"
    [(reason,)] = deliveries.query(settings, "SELECT reason FROM ops.file_ledger WHERE batch_id = ?",
                                   [half["batch_id"]])
    assert reason == ("passed with 1 warning: police_referrals row count within 10% of the median of "
                      "the last 5 deliveries (50 rows; median 102 over 4 deliveries (-51.0%))")
    assert deliveries.query(settings, "SELECT count(*) FROM staging.police_referrals WHERE _batch_id = ?",
                            [half["batch_id"]]) == [(50,)]


def test_row_count_made_critical_in_the_contract_quarantines(settings, master_key, deliveries,
                                                              monkeypatch):
    strict = replace(REFERRALS, validation={"row_count_tolerance": 0.5,
                                            "row_count_severity": "critical"})
    monkeypatch.setattr(inbox, "contract_for_file", lambda agency, name: strict)
    deliver_history(settings, master_key, deliveries)
    # 60% above the median: beyond a 50% tolerance.
    big = deliver(settings, master_key, deliveries, 4, deliveries.referral_rows(160, start=400))
    assert big["status"] == "quarantined"
    assert "row count within 50% of the median of the last 5 deliveries (160 rows; median 100" in (
        big["reason"])
    assert deliveries.query(settings, "SELECT count(*) FROM ops.batches") == [(3,)]


def test_a_column_that_goes_empty_is_flagged(settings, master_key, deliveries):
    deliver_history(settings, master_key, deliveries)
    # 40% of the officer ids missing where history has none missing.
    rows = deliveries.referral_rows(100, start=400, officer_id=lambda i: "" if i % 5 < 2 else f"B{i}")
    outcome = deliver(settings, master_key, deliveries, 4, rows)
    assert outcome["status"] == "accepted" and outcome["warnings"] == 1
    results = stored(deliveries, settings, outcome["batch_id"], NULL_SHARE_CHECK)
    by_column = {column: (success, observed) for column, _, success, observed in results}
    assert set(by_column) == set(profiled_columns(REFERRALS))
    assert by_column["officer_id"] == (False, "40.0% empty; median 0.0% over 3 deliveries (+40.0 points)")
    assert by_column["ssn_token"] == (True, "0.0% empty; median 0.0% over 3 deliveries (+0.0 points)")
    assert all(success for column, (success, _) in by_column.items() if column != "officer_id")


def test_the_volume_guard_share_is_read_from_the_contract():
    assert history_settings(REFERRALS).max_removed_share == 0.10  # the default
    loose = replace(REFERRALS, validation={"max_removed_share": 0.5})
    assert history_settings(loose).max_removed_share == 0.5
    with pytest.raises(ContractError, match="max_removed_share"):
        history_settings(replace(REFERRALS, validation={"max_removed_share": 1.5}))


@pytest.mark.parametrize("share, status", [(None, "held"), (0.5, "accepted")])
def test_a_contract_can_allow_larger_removals(settings, master_key, deliveries, monkeypatch, share, status):
    if share is not None:
        loose = replace(REFERRALS, validation={**REFERRALS.validation, "max_removed_share": share})
        monkeypatch.setattr(inbox, "contract_for_file", lambda agency, name: loose)
    assert deliver(settings, master_key, deliveries, 1, deliveries.referral_rows(10))["status"] == "accepted"
    # the same file name again with 6 of its 10 rows: removes 4 = 40%, over 10% but under 50%
    assert deliver(settings, master_key, deliveries, 1, deliveries.referral_rows(6))["status"] == status
    current = deliveries.query(settings, "SELECT count(*) FROM current.police_referrals")
    assert current == [(10 if status == "held" else 6,)]
