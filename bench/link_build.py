"""First and second linkage build at growing county sizes: the second must not grow faster than the first.

    .venv/bin/python bench/link_build.py [--persons 10000,50000,200000]

Per size, synthetic identity rows (two agency ids per person, keyed encodings
under a random key, a few typos) go through ``cluster_records`` twice: once
with no previous build, once with the first build's keys as the previous
links (what every later build does). Printed: seconds of each and the ratio
second / first, measured in the same run. The key hand-over used to compare
every cluster with every key (quadratic in persons); the ratio shows whether
anything quadratic is left.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from leadhub.core.warehouse import ENCODING_COLUMNS  # noqa: E402
from transforms.encodings import Encoder, canonical, fields_of, load_settings, to_text  # noqa: E402
from transforms.link import cluster_records  # noqa: E402

SYLLABLES = ["ka", "ro", "mi", "ta", "len", "sor", "vi", "dan", "be", "lu", "mar", "ti", "no", "as", "gel"]


def identity_rows(persons: int, seed: int) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    syl = np.array(SYLLABLES)

    def names(k):
        return ["".join(rng.choice(syl, k)).capitalize() for _ in range(persons)]

    first, last = names(2), names(3)
    dob = (pd.Timestamp("1950-01-01") + pd.to_timedelta(rng.integers(0, 20000, persons), unit="D")).strftime("%Y-%m-%d")
    ssn = [f"{a}-{b}-{c}" if rng.random() < 0.6 else None for a, b, c in
           zip(rng.integers(100, 600, persons), rng.integers(10, 99, persons), rng.integers(1000, 9999, persons))]
    settings = load_settings()
    encoder, specs = Encoder(os.urandom(32), settings), fields_of(settings)
    rows = []
    for agency in ("police", "jail"):
        typo = rng.random(persons) < 0.1
        values = {"first_name": first, "last_name": [n[:-1] if t else n for n, t in zip(last, typo)],
                  "dob": list(dob), "ssn": ssn if agency == "police" else [None] * persons}
        frame = pd.DataFrame({"agency": agency, "person_token": [f"{agency[0]}{i:08d}" for i in range(persons)]})
        for field, vals in values.items():
            canon = [canonical(specs[field], v) if v else None for v in vals]
            frame[ENCODING_COLUMNS[field]] = to_text(encoder.encode(field, canon))
        rows.append(frame)
    return pd.concat(rows, ignore_index=True)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--persons", default="10000,50000,200000")
    args = ap.parse_args()
    settings = load_settings()
    print(f"{'persons':>8} {'agency ids':>10} {'first s':>8} {'second s':>9} {'second/first':>12} {'keys kept':>9}")
    for n in (int(x) for x in args.persons.split(",")):
        rows = identity_rows(n, seed=n)
        t = time.perf_counter()
        keys, _ = cluster_records(rows, {}, settings)
        first = time.perf_counter() - t
        t = time.perf_counter()
        again, _ = cluster_records(rows, keys, settings)
        second = time.perf_counter() - t
        kept = sum(again[k] == v for k, v in keys.items()) / len(keys)
        print(f"{n:>8,} {len(rows):>10,} {first:>8.1f} {second:>9.1f} {second / first:>12.2f} {kept:>9.4f}")


if __name__ == "__main__":
    main()
