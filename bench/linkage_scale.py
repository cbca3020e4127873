"""The benchmark's scale row: pseudopeople's sample population resampled into new people.

pseudopeople's bundled sample holds about 10,000 people (2020 census) and 16,000 Social Security
records; the full simulated population is a separate download, not available offline. So the
sample's unnoised source tables are copied as many times as needed, and every copy after the
first becomes a different population: given names, surnames, middle names and street names are
renamed through a random one-to-one map per copy (frequencies and household structure survive,
people no longer coincide with their originals), birth dates move by a random shift per household,
SSNs are drawn anew, ids get the copy number. pseudopeople then noises the copies itself (its
``source=`` argument; each copy is a shard with its own noise seed). Runs in bench/.venv-compare.
"""

from __future__ import annotations

import math
import tempfile
from pathlib import Path

import numpy as np
import pandas as pd

from linkage_data import census, social_security, write_pair

CENSUS_YEAR = 2020
SHIFT_DAYS = 365


def _sample_root() -> Path:
    from pseudopeople.constants import paths

    return Path(paths.SAMPLE_DATA_ROOT)


def _plain(df: pd.DataFrame) -> pd.DataFrame:
    return df.astype({c: object for c in df.columns if df[c].dtype.name == "category"})


def _renaming(rng: np.random.Generator, *columns: pd.Series) -> dict:
    """A random one-to-one map of the distinct values onto themselves."""
    values = pd.unique(pd.concat(columns).dropna())
    return dict(zip(values, values[rng.permutation(len(values))]))


def _ssns(rng: np.random.Generator, old: pd.Series) -> dict:
    values = pd.unique(old.dropna())
    numbers = rng.choice(899 * 99 * 9999, size=len(values), replace=False)
    area, rest = numbers // (99 * 9999) + 1, numbers % (99 * 9999)
    area = np.where(area >= 666, area + 1, area)  # 666 is never issued
    group, serial = rest // 9999 + 1, rest % 9999 + 1
    return dict(zip(values, (f"{a:03d}-{g:02d}-{s:04d}" for a, g, s in zip(area, group, serial))))


def _copy(census_src: pd.DataFrame, ssa_src: pd.DataFrame, k: int, rng: np.random.Generator):
    c, s = census_src.copy(), ssa_src.copy()
    if k == 0:
        return c, s
    first = _renaming(rng, c["first_name"], s["first_name"])
    last = _renaming(rng, c["last_name"], s["last_name"])
    middle = _renaming(rng, s["middle_name"])
    initial = _renaming(rng, c["middle_initial"])
    street = _renaming(rng, c["street_name"])
    ssn = _ssns(rng, pd.concat([s["ssn"], s["copy_ssn"]]))
    for df in (c, s):
        df["first_name"] = df["first_name"].map(first)
        df["last_name"] = df["last_name"].map(last)
    s["middle_name"] = s["middle_name"].map(middle)
    # A person's census initial stays the initial of their Social Security middle name.
    middle_of = s.dropna(subset=["middle_name"]).drop_duplicates("simulant_id").set_index("simulant_id")["middle_name"]
    c["middle_initial"] = c["simulant_id"].map(middle_of).str[:1].fillna(c["middle_initial"].map(initial))
    c["street_name"] = c["street_name"].map(street)
    s["ssn"], s["copy_ssn"] = s["ssn"].map(ssn), s["copy_ssn"].map(ssn)
    # One shift per household keeps twins twins and parents older than their children.
    households = pd.unique(c["household_id"])
    shift_of_household = dict(zip(households, rng.integers(-SHIFT_DAYS, SHIFT_DAYS + 1, len(households))))
    shift_of = c.drop_duplicates("simulant_id").set_index("simulant_id")["household_id"].map(shift_of_household)
    for df in (c, s):
        own = pd.Series(rng.integers(-SHIFT_DAYS, SHIFT_DAYS + 1, len(df)), index=df.index)
        days = pd.to_timedelta(df["simulant_id"].map(shift_of).fillna(own), unit="D")
        for col in ("date_of_birth", "copy_date_of_birth"):
            df[col] = df[col] + days
    s["event_date"] = s["event_date"].where(s["event_type"] != "creation", s["date_of_birth"])
    for df, cols in ((c, ("simulant_id", "household_id", "guardian_1", "guardian_2")), (s, ("simulant_id",))):
        for col in cols:
            df[col] = df[col].where(df[col].isna(), f"{k}c" + df[col].astype(str))
    return c, s


def resampled_source(folder: Path, copies: int, seed: int) -> Path:
    """A pseudopeople source folder (census 2020 and Social Security) of ``copies`` populations."""
    root = _sample_root()
    census_src = _plain(pd.read_parquet(root / "decennial_census" / "decennial_census.parquet"))
    census_src = census_src[census_src["year"] == CENSUS_YEAR].reset_index(drop=True)
    ssa_src = _plain(pd.read_parquet(root / "social_security" / "social_security.parquet"))
    rng = np.random.default_rng(seed)
    for name in ("decennial_census", "social_security"):
        (folder / name).mkdir(parents=True, exist_ok=True)
    for k in range(copies):
        c, s = _copy(census_src, ssa_src, k, rng)
        c.to_parquet(folder / "decennial_census" / f"decennial_census_{k:03d}.parquet")
        s.to_parquet(folder / "social_security" / f"social_security_{k:03d}.parquet")
    # pseudopeople checks a source's data version; this is the sample's layout.
    (folder / "CHANGELOG.rst").write_text("**1.4.2 - resampled sample population**\n")
    return folder


def scale_pair(out: Path, name: str, seed: int, records: int) -> None:
    if name != "census_ssa":
        raise SystemExit(f"scale row: only census_ssa is resampled, not {name}")
    per_copy = 10_000  # people per census copy, a little under the sample's 10,224
    copies = math.ceil(records / per_copy) + 1
    with tempfile.TemporaryDirectory(prefix="pseudopeople-source-") as tmp:
        source = resampled_source(Path(tmp), copies, seed)
        left = census(seed, source=source)
        right = social_security(seed + 1000, source=source)
    rng = np.random.default_rng(seed)
    left = left.iloc[np.sort(rng.choice(len(left), min(records, len(left)), replace=False))]
    right = right.iloc[np.sort(rng.choice(len(right), min(records, len(right)), replace=False))]
    write_pair(out, f"scale_{name}_s{seed}", left.reset_index(drop=True), right.reset_index(drop=True), seed)
