"""Suites are generated from the contracts and committed; custom checks survive regeneration."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import pytest

from leadhub.core.contracts import load_contracts
from expectations.suites import (SUITES_DIR, build_suite, contract_expectations, custom_expectations,
                                 gx_config, load_suite, merge_suite, validated_columns, write_suites)
from leadhub.core.warehouse import staging_columns

CONTRACTS = load_contracts()


def test_one_committed_suite_per_contract():
    assert sorted(p.stem for p in SUITES_DIR.glob("*.json")) == sorted(CONTRACTS)


@pytest.mark.parametrize("name", sorted(CONTRACTS))
def test_committed_suite_is_up_to_date_with_its_contract(name):
    committed = load_suite(name)
    expected = merge_suite(build_suite(CONTRACTS[name]), committed)
    assert committed == expected, (
        f"expectations/suites/{name}.json is stale: run 'python -m expectations.suites'")


def test_a_contract_change_makes_the_committed_suite_stale():
    contract = CONTRACTS["treatment_contacts"]
    service = replace(contract.column("service_type"),
                      known_values=contract.column("service_type").known_values + ("peer_support",))
    changed = replace(contract, columns=tuple(service if c.name == "service_type" else c
                                              for c in contract.columns))
    committed = load_suite("treatment_contacts")
    assert merge_suite(build_suite(changed), committed) != committed


@pytest.mark.parametrize("name", sorted(CONTRACTS))
def test_every_expectation_says_its_severity_and_source(name):
    for exp in load_suite(name)["expectations"]:
        assert exp["meta"]["severity"] in ("critical", "warning")
        assert exp["meta"]["source"] in ("contract", "custom")
        assert exp["severity"] == exp["meta"]["severity"]
        assert exp["description"]


@pytest.mark.parametrize("name", sorted(CONTRACTS))
def test_committed_suite_loads_into_gx(name):
    from great_expectations.core.expectation_suite import ExpectationSuite

    stored = load_suite(name)
    suite = ExpectationSuite(name=stored["name"], expectations=stored["expectations"])
    assert len(suite.expectations) == len(stored["expectations"])


@pytest.mark.parametrize("name", sorted(CONTRACTS))
def test_generated_expectations_are_as_gx_builds_them(name):
    for config in contract_expectations(CONTRACTS[name]):
        assert gx_config(config) == config


def test_reading_a_suite_does_not_import_gx():
    code = ("import sys; from expectations.suites import suite_for; suite_for('jail_bookings'); "
            "assert 'great_expectations' not in sys.modules")
    subprocess.run([sys.executable, "-c", code], check=True, cwd=Path(__file__).parents[2])


def _by_type(suite: dict, type_: str) -> list[dict]:
    return [e for e in suite["expectations"] if e["type"] == type_]


def test_generated_suite_covers_the_contract():
    suite = build_suite(CONTRACTS["police_arrests"])
    assert suite["name"] == "police_arrests"
    assert {e["meta"]["source"] for e in suite["expectations"]} == {"contract"}

    [columns] = _by_type(suite, "expect_table_columns_to_match_ordered_list")
    assert columns["kwargs"]["column_list"] == [
        n for n, _ in staging_columns(CONTRACTS["police_arrests"]) if n != "_batch_id"]
    assert "_batch_id" not in columns["kwargs"]["column_list"]

    [key] = _by_type(suite, "expect_compound_columns_to_be_unique")
    assert key["kwargs"]["column_list"] == ["arrest_id", "charge_seq"]

    not_null = {e["kwargs"]["column"] for e in _by_type(suite, "expect_column_values_to_not_be_null")}
    assert {"arrest_id", "charge_seq", "arrest_date", "precinct", "offense_code", "severity",
            "person_token", "name_dob_token"} <= not_null
    assert not {"sex", "ssn_token", "address_token", "age_at_event"} & not_null

    in_set = {e["kwargs"]["column"]: e for e in _by_type(suite, "expect_column_values_to_be_in_set")}
    assert in_set["precinct"]["kwargs"]["value_set"] == ["NORTH", "SOUTH", "EAST", "WEST", "CENTRAL"]
    assert "DRG01" in in_set["offense_code"]["kwargs"]["value_set"]
    assert in_set["offense_code"]["description"] == "values in offense table"

    regex = {e["kwargs"]["column"] for e in _by_type(suite, "expect_column_values_to_match_regex")}
    assert regex == {"person_token", "ssn_token", "address_token", "name_dob_token"}

    [age] = _by_type(suite, "expect_column_values_to_be_between")
    assert (age["kwargs"], age["meta"]["severity"]) == ({"column": "age_at_event", "min_value": 10,
                                                         "max_value": 100}, "warning")
    [rows] = _by_type(suite, "expect_table_row_count_to_be_between")
    assert rows["kwargs"] == {"min_value": 1}


def test_single_column_key_and_person_token_key():
    referrals = build_suite(CONTRACTS["police_referrals"])
    unique = _by_type(referrals, "expect_column_values_to_be_unique")
    assert [e["kwargs"]["column"] for e in unique] == ["referral_id"]

    clients = build_suite(CONTRACTS["treatment_clients"])
    unique = _by_type(clients, "expect_column_values_to_be_unique")
    assert [e["kwargs"]["column"] for e in unique] == ["person_token"]
    assert "client_id" not in validated_columns(CONTRACTS["treatment_clients"])


def test_regenerating_keeps_custom_expectations_and_restores_generated_ones(tmp_path):
    write_suites(tmp_path)
    path = tmp_path / "treatment_contacts.json"
    first = path.read_text()

    suite = json.loads(first)
    custom = {"type": "expect_column_values_to_not_be_null", "kwargs": {"column": "service_type"},
              "meta": {"severity": "warning", "source": "custom"}, "description": "hand-written"}
    suite["expectations"].append(custom)
    suite["expectations"][0]["kwargs"]["column_list"] = ["edited", "by", "hand"]
    path.write_text(json.dumps(suite))

    write_suites(tmp_path)
    regenerated = json.loads(path.read_text())
    assert custom in regenerated["expectations"]
    assert regenerated["expectations"][0] == json.loads(first)["expectations"][0]
    assert custom_expectations(regenerated)[-1] == custom

    write_suites(tmp_path)
    assert json.loads(path.read_text()) == regenerated


def test_regenerating_unchanged_suites_writes_identical_bytes(tmp_path):
    paths = write_suites(tmp_path)
    before = {p.name: p.read_bytes() for p in paths}
    write_suites(tmp_path)
    assert {p.name: p.read_bytes() for p in paths} == before
    committed = SUITES_DIR / "police_arrests.json"
    text = committed.read_text()
    assert text == json.dumps(json.loads(text), sort_keys=True, indent=2, ensure_ascii=False) + "\n"


def test_custom_checks_are_committed():
    jail = custom_expectations(load_suite("jail_bookings"))
    [order] = [e for e in jail if e["type"] == "expect_column_pair_values_a_to_be_greater_than_b"]
    assert order["kwargs"] == {"column_A": "release_ts", "column_B": "booking_ts", "or_equal": True,
                               "ignore_row_if": "either_value_is_missing"}
    assert order["meta"]["severity"] == "critical"
    cases = custom_expectations(load_suite("prosecutor_cases"))
    assert any(e["kwargs"].get("column_A") == "decision_date"
               and e["kwargs"].get("column_B") == "referral_date"
               and e["meta"]["severity"] == "warning" for e in cases)


@pytest.mark.parametrize("name", sorted(CONTRACTS))
def test_free_text_columns_refuse_ssn_shaped_values(name):
    """An SSN typed into an id or badge column would reach the warehouse in clear: critical."""
    contract = CONTRACTS[name]
    free_text = {c.name for c in contract.plain_columns
                 if c.type == "string" and c.known_values is None and not c.reference}
    guarded = {e["kwargs"]["column"]: e for e in custom_expectations(load_suite(name))
               if e["type"] == "expect_column_values_to_not_match_regex"}
    assert set(guarded) == free_text
    for exp in guarded.values():
        assert exp["meta"]["severity"] == "critical"
        assert re.match(exp["kwargs"]["regex"], "123-45-6789")
        assert not re.match(exp["kwargs"]["regex"], "B000123")
