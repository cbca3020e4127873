"""Small vectorised helpers: day numbers, weighted draws, object arrays, id scrambling."""

from __future__ import annotations

import math
import unicodedata
from datetime import date

import numpy as np

from synthetic.parameters import EPOCH_ORDINAL


def _day(d: date) -> int:
    """Days since 1970-01-01: every date below is an int so numpy can do the arithmetic."""
    return d.toordinal() - EPOCH_ORDINAL


def _date(day: int) -> date:
    return date.fromordinal(int(day) + EPOCH_ORDINAL)


def _ymd(days: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Year, month and day arrays of day numbers."""
    d = np.asarray(days, dtype=np.int64).astype("datetime64[D]")
    months = d.astype("datetime64[M]")
    year = months.astype(np.int64) // 12 + 1970
    month = months.astype(np.int64) % 12 + 1
    day = (d - months.astype("datetime64[D]")).astype(np.int64) + 1
    return year, month, day


def _age(dob: np.ndarray, on: np.ndarray) -> np.ndarray:
    """Whole years of age on a date, as people count birthdays."""
    by, bm, bd = _ymd(dob)
    oy, om, od = _ymd(on)
    return oy - by - ((om * 100 + od) < (bm * 100 + bd))


def _pick(rng: np.random.Generator, weights: dict, n: int) -> np.ndarray:
    """n draws of the keys of a {value: weight} dict, as an object array."""
    keys = np.empty(len(weights), dtype=object)
    keys[:] = list(weights)
    p = np.array(list(weights.values()), dtype=float)
    return keys[rng.choice(len(keys), size=n, p=p / p.sum())]


def _zipf(n: int) -> np.ndarray:
    """Frequency weights for a list ordered from most to least common."""
    w = 1.0 / (np.arange(n) + 8.0)
    return w / w.sum()


def _obj(values) -> np.ndarray:
    """A 1-d object array of any iterable (np.array would make fixed-width strings)."""
    values = list(values)
    out = np.empty(len(values), dtype=object)
    out[:] = values
    return out


def _expand(starts: np.ndarray, counts: np.ndarray) -> np.ndarray:
    """Flat indices start[i] .. start[i]+count[i]-1 for every i, in order."""
    total = int(counts.sum())
    if total == 0:
        return np.zeros(0, dtype=np.int64)
    group_start = np.repeat(np.cumsum(counts) - counts, counts)
    return np.repeat(starts, counts) + (np.arange(total) - group_start)


def _seq(counts: np.ndarray) -> np.ndarray:
    """1..count[i] for every i, concatenated: charge numbers within their record."""
    return _expand(np.ones(len(counts), dtype=np.int64), counts)


def _ascii(text: str) -> str:
    return "".join(ch for ch in unicodedata.normalize("NFKD", text) if not unicodedata.combining(ch))


def _map(values: np.ndarray, fn) -> np.ndarray:
    """Apply fn to every non-null value, once per distinct value (names repeat a lot)."""
    seen: dict = {}
    out = values.copy()
    for i, v in enumerate(values.tolist()):
        if v is not None:
            r = seen.get(v)
            if r is None:
                r = seen[v] = fn(v)
            out[i] = r
    return out


def _scramble(rng: np.random.Generator, space: int) -> tuple[int, int]:
    """Multiplier and shift of k -> (a*k + b) mod space, a bijection when gcd(a, space) == 1."""
    while True:
        a = int(rng.integers(space // 3, space))
        if math.gcd(a, space) == 1:
            return a, int(rng.integers(0, space))


def _as_date(value) -> date:
    return value if isinstance(value, date) else date.fromisoformat(str(value))
