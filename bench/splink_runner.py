"""Splink 5 on clear text, the baseline of bench/linkage.py; runs in bench/.venv-compare.

    python bench/splink_runner.py LEFT.csv RIGHT.csv MAPPING.json OUT.csv

Reads the same files and the same ``leadhub link`` mapping the hub gets, and builds its model
from the fields' roles alone, never from the data set's name, so every data set gets the same
treatment. Trained unsupervised, the standard way: the probability that two random records match
from deterministic rules, u by random sampling, m by expectation maximisation on two blocking
rules; predictions at match probability >= 0.5, then one-to-one best-first (as ``leadhub link
--one-to-one``). Writes ``left_id,right_id,score``.
"""

from __future__ import annotations

import json
import logging
import sys

import pandas as pd
import splink.comparison_level_library as cll
import splink.comparison_library as cl
from splink import DuckDBAPI, Linker, SettingsCreator, block_on

IDENTIFIERS = ("ssn", "id_number", "phone")


def comparison(field: str, fmt: str | None):
    """One comparison per role: Splink's library comparisons with their default levels."""
    if field in ("first_name", "last_name"):
        return cl.NameComparison(field).configure(term_frequency_adjustments=True)
    if field == "middle_name":  # one file may carry an initial, the other the full name
        return cl.CustomComparison(output_column_name=field, comparison_levels=[
            cll.NullLevel(field), cll.ExactMatchLevel(field),
            cll.CustomLevel(f"substr({field}_l, 1, 1) = substr({field}_r, 1, 1)", "initials match"),
            cll.ElseLevel()])
    if field == "dob":
        return cl.DateOfBirthComparison(field, input_is_string=True, datetime_format=fmt)
    if field in IDENTIFIERS:
        return cl.DamerauLevenshteinAtThresholds(field, [1, 2])
    if field in ("address", "address_2", "city"):
        return cl.JaroWinklerAtThresholds(field, [0.9, 0.7])
    return cl.ExactMatch(field)  # sex, state, postcode, street_number


def rules(fields: set[str]) -> tuple[list, list, list]:
    """(prediction blocking, deterministic rules for the match prior, EM blocking), by role."""
    names = {"first_name", "last_name"} <= fields
    ids = [f for f in IDENTIFIERS if f in fields]
    predict, deterministic, em = [], [], []
    if names:
        predict += [block_on("first_name", "last_name"),
                    block_on("substr(first_name, 1, 3)", "substr(last_name, 1, 4)")]
        em.append(block_on("first_name", "last_name"))
    if "dob" in fields:
        predict.append(block_on("dob"))
        em.append(block_on("dob"))
        if names:
            deterministic.append(block_on("first_name", "last_name", "dob"))
    for f in ids:
        predict.append(block_on(f))
        deterministic.append(block_on(f))
        em.append(block_on(f))
    if {"street_number", "address"} <= fields:
        predict.append(block_on("street_number", "address"))
        em.append(block_on("street_number", "address"))
        if names and not deterministic:
            deterministic.append(block_on("first_name", "last_name", "street_number"))
    if "postcode" in fields and names:
        predict.append(block_on("postcode", "last_name"))
    if not deterministic and names:
        deterministic.append(block_on("first_name", "last_name"))
    return predict, deterministic, em[:2]


def one_to_one(pred: pd.DataFrame) -> pd.DataFrame:
    """Best-first: each record in at most one pair, the highest probability winning."""
    pred = pred.sort_values(["score", "left_id", "right_id"], ascending=[False, True, True], kind="stable")
    seen_l, seen_r, keep = set(), set(), []
    for i, left, right in zip(pred.index, pred["left_id"], pred["right_id"]):
        if left not in seen_l and right not in seen_r:
            seen_l.add(left)
            seen_r.add(right)
            keep.append(i)
    return pred.loc[keep]


def link(left_csv: str, right_csv: str, mapping_json: str, out_csv: str) -> None:
    logging.disable(logging.WARNING)  # Splink narrates every step; the benchmark wants the pairs
    mapping = json.loads(open(mapping_json).read())
    columns, formats = {}, {}  # the mapping's forms: "col", ["col", ...], {"column"|"columns", "format"}
    for field, spec in mapping["fields"].items():
        if isinstance(spec, dict):
            columns[field], formats[field] = spec.get("columns") or [spec["column"]], spec.get("format")
        else:
            columns[field] = [spec] if isinstance(spec, str) else list(spec)
    frames = []
    for path in (left_csv, right_csv):
        raw = pd.read_csv(path, dtype=str, keep_default_na=False)
        df = pd.DataFrame({"unique_id": raw[mapping["id"]]})
        for field, cols in columns.items():  # several columns are joined with a space, as the hub does
            joined = raw[cols[0]].str.strip()
            for col in cols[1:]:
                joined = (joined + " " + raw[col].str.strip()).str.strip()
            df[field] = joined.replace("", None)
        frames.append(df)
    left_ids = set(frames[0]["unique_id"])
    predict, deterministic, em = rules(set(columns))
    settings = SettingsCreator(
        link_type="link_only",
        blocking_rules_to_generate_predictions=predict,
        comparisons=[comparison(f, formats.get(f)) for f in columns],
        retain_intermediate_calculation_columns=False,
        retain_matching_columns=False,
    )
    db = DuckDBAPI()
    linker = Linker([db.register(frames[0], dataset_display_name="left_records"),
                     db.register(frames[1], dataset_display_name="right_records")], settings)
    linker.training.estimate_probability_two_random_records_match(deterministic, recall=0.7)
    linker.training.estimate_u_using_random_sampling(max_pairs=5e6, seed=1)
    for rule in em:
        linker.training.estimate_parameters_using_expectation_maximisation(rule)
    pred = linker.inference.predict(threshold_match_probability=0.5).as_pandas_dataframe()
    swap = ~pred["unique_id_l"].isin(left_ids)
    pairs = pd.DataFrame({
        "left_id": pred["unique_id_l"].where(~swap, pred["unique_id_r"]),
        "right_id": pred["unique_id_r"].where(~swap, pred["unique_id_l"]),
        "score": pred["match_probability"]})
    one_to_one(pairs).to_csv(out_csv, index=False)


if __name__ == "__main__":
    link(*sys.argv[1:5])
