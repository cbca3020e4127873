"""Splink 5 on clear text, for comparison only; run by bench/linkage.py in bench/.venv-compare.

Kept in its own interpreter so Splink's dependencies never touch the hub's
pins. Reads clear-text CSVs the benchmark wrote to a temporary directory and
writes the predicted pairs (match probability >= 0.5) as CSV.

    python bench/splink_runner.py febrl4 LEFT.csv RIGHT.csv OUT.csv
    python bench/splink_runner.py dedupe RECORDS.csv OUT.csv
"""

from __future__ import annotations

import logging
import sys

import pandas as pd
import splink.comparison_library as cl
from splink import DuckDBAPI, Linker, SettingsCreator, block_on

logging.disable(logging.WARNING)


def febrl4(left: str, right: str, out: str) -> None:
    """A model like the one in Splink's FEBRL4 tutorial, trained unsupervised (no labels)."""
    a = pd.read_csv(left, dtype=str)
    b = pd.read_csv(right, dtype=str)
    settings = SettingsCreator(
        unique_id_column_name="rec_id",
        link_type="link_only",
        blocking_rules_to_generate_predictions=[
            block_on("given_name", "surname"),
            block_on("surname", "date_of_birth"),
            block_on("given_name", "date_of_birth"),
            block_on("soc_sec_id"),
            block_on("street_number", "address_1"),
            block_on("postcode", "suburb"),
        ],
        comparisons=[
            cl.NameComparison("given_name"),
            cl.NameComparison("surname"),
            cl.DateOfBirthComparison("date_of_birth", input_is_string=True, datetime_format="%Y%m%d"),
            cl.DamerauLevenshteinAtThresholds("soc_sec_id", [1, 2]),
            cl.ExactMatch("street_number"),
            cl.PostcodeComparison("postcode"),
            cl.JaroWinklerAtThresholds("address_1", [0.9, 0.7]),
            cl.JaroWinklerAtThresholds("suburb", [0.9, 0.7]),
            cl.ExactMatch("state"),
        ],
        retain_intermediate_calculation_columns=False,
    )
    db = DuckDBAPI()
    linker = Linker([db.register(a), db.register(b)], settings)
    linker.training.estimate_probability_two_random_records_match(
        [block_on("given_name", "surname", "date_of_birth"), block_on("soc_sec_id", "surname")], recall=0.8)
    linker.training.estimate_u_using_random_sampling(max_pairs=1e7)
    linker.training.estimate_parameters_using_expectation_maximisation(block_on("date_of_birth"))
    linker.training.estimate_parameters_using_expectation_maximisation(block_on("given_name", "surname"))
    pred = linker.inference.predict(threshold_match_probability=0.5).as_pandas_dataframe()
    pred[["rec_id_l", "rec_id_r", "match_probability"]].to_csv(out, index=False)


def dedupe(records: str, out: str) -> None:
    """Identity rows of all agencies (first, last, dob, ssn) deduplicated together."""
    df = pd.read_csv(records, dtype=str)
    settings = SettingsCreator(
        unique_id_column_name="unique_id",
        link_type="dedupe_only",
        blocking_rules_to_generate_predictions=[
            block_on("first_name", "last_name"),
            block_on("dob"),
            block_on("ssn"),
        ],
        comparisons=[
            cl.NameComparison("first_name"),
            cl.NameComparison("last_name"),
            cl.DateOfBirthComparison("dob", input_is_string=True, datetime_format="%Y-%m-%d"),
            cl.ExactMatch("ssn"),
        ],
    )
    db = DuckDBAPI()
    linker = Linker(db.register(df), settings)
    linker.training.estimate_probability_two_random_records_match(
        [block_on("first_name", "last_name", "dob")], recall=0.8)
    linker.training.estimate_u_using_random_sampling(max_pairs=1e7)
    linker.training.estimate_parameters_using_expectation_maximisation(block_on("dob"))
    linker.training.estimate_parameters_using_expectation_maximisation(block_on("first_name", "last_name"))
    pred = linker.inference.predict(threshold_match_probability=0.5)
    clusters = linker.clustering.cluster_pairwise_predictions_at_threshold(pred, 0.5).as_pandas_dataframe()
    clusters[["unique_id", "cluster_id"]].to_csv(out, index=False)


if __name__ == "__main__":
    if sys.argv[1] == "febrl4":
        febrl4(*sys.argv[2:5])
    else:
        dedupe(*sys.argv[2:4])
