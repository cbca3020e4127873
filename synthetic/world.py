"""What a run decides once: calendar, cohorts, id schemes, offense codes and the planted model."""

from __future__ import annotations

import csv
from dataclasses import dataclass
from datetime import date

import numpy as np
import yaml

from leadhub.core.contracts import load_contracts
from synthetic.arrays import _age, _as_date, _day, _obj, _pick, _scramble
from synthetic.parameters import (
    COMPARISON, DATA_END, DATA_START, EVALUATION_FILE, FOLLOW_UP_DAYS, LEAD, MODEL, OFFENSE_CODES_FILE,
    OFFENSE_WEIGHTS, OFFICERS, PERSON_ID_SCHEMES, PRECINCT_WEIGHTS, PRIOR_ARRESTS_P, RECORD_ID_SCHEMES,
    SEX_P, SSN_SPACE, TARGET_COMPARISON_REARREST, WARRANT_CODES,
)


@dataclass(frozen=True)
class _Offenses:
    codes: np.ndarray          # object: offense codes
    severity: np.ndarray       # object: default severity
    eligible: np.ndarray       # bool: LEAD-eligible
    weight: np.ndarray         # how common each code is among arrests


def _offenses() -> _Offenses:
    with open(OFFENSE_CODES_FILE, newline="", encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    return _Offenses(
        codes=_obj(r["offense_code"] for r in rows),
        severity=_obj(r["default_severity"] for r in rows),
        eligible=np.array([r["lead_eligible"].strip().lower() == "true" for r in rows]),
        weight=np.array([OFFENSE_WEIGHTS.get(r["offense_code"], 2) for r in rows], dtype=float),
    )


class _World:
    """Everything decided once per run: calendar, cohorts, id schemes, model intercept, counters."""

    def __init__(self, people: int, seed: int, lead: int, comparison: int):
        if people < 1 or lead < 0 or comparison < 0:
            raise ValueError("people must be positive and cohort sizes not negative")
        if lead + comparison > people:
            raise ValueError(f"{lead} LEAD + {comparison} comparison people do not fit in {people} people")
        if people > SSN_SPACE:
            raise ValueError("more people than distinct valid-looking SSNs")
        self.people, self.seed, self.lead, self.comparison = people, seed, lead, comparison
        self.contracts = load_contracts()
        expected = {"police_referrals", "police_arrests", "prosecutor_cases", "jail_bookings",
                    "treatment_clients", "treatment_episodes", "treatment_contacts",
                    "treatment_assessments"}
        if set(self.contracts) != expected:
            unknown = sorted(set(self.contracts) ^ expected)
            raise ValueError(f"the synthetic generator does not know how to fill: {', '.join(unknown)}")

        ev = yaml.safe_load(EVALUATION_FILE.read_text())
        self.d0, self.d1 = _day(DATA_START), _day(DATA_END)
        self.p0, self.p1 = _day(_as_date(ev["program_start"])), _day(_as_date(ev["program_end"]))
        self.windows = tuple(int(w) for w in ev["windows_days"])
        if self.p0 - FOLLOW_UP_DAYS < self.d0 or self.p1 + FOLLOW_UP_DAYS > self.d1:
            raise ValueError("the program window needs a full year of data before and after it")
        self.precincts = _obj(self.contracts["police_arrests"].column("precinct").known_values)
        comparison_set = set(ev["comparison_precincts"])
        self.is_comparison_precinct = np.array([p in comparison_set for p in self.precincts])
        self.comparison_precincts = np.flatnonzero(self.is_comparison_precinct)
        self.lead_precincts = np.flatnonzero(~self.is_comparison_precinct)
        w = np.array([PRECINCT_WEIGHTS.get(p, 0.2) for p in self.precincts])
        self.precinct_p = w / w.sum()
        self.offenses = _offenses()
        off = self.offenses
        self.code_p = off.weight / off.weight.sum()
        self.eligible_codes = np.flatnonzero(off.eligible)
        self.eligible_p = off.weight[off.eligible] / off.weight[off.eligible].sum()
        self.other_codes = np.flatnonzero(~off.eligible)
        self.other_p = off.weight[~off.eligible] / off.weight[~off.eligible].sum()
        warrant = np.array([WARRANT_CODES.get(c, 0.0) for c in off.codes])
        self.warrant_p = warrant + (1 - warrant.sum()) * self.code_p

        rng = np.random.default_rng([seed, 0])
        chosen = rng.choice(people, size=lead + comparison, replace=False)
        self.cohort = np.zeros(people, dtype=np.int8)
        self.cohort[chosen[:lead]] = LEAD
        self.cohort[chosen[lead:]] = COMPARISON
        self.person_ids = {a: (p, d, *_scramble(rng, 10 ** d)) for a, (p, d) in PERSON_ID_SCHEMES.items()}
        self.ssn_scramble = _scramble(rng, SSN_SPACE)
        self.officers = _obj(sorted({f"{x:04d}" for x in rng.integers(1000, 10000, OFFICERS)}))
        self.intercept = _calibrate(np.random.default_rng([seed, 2]), self)
        self.next_person = {a: 0 for a in PERSON_ID_SCHEMES}
        self.next_record = {k: 1 for k in RECORD_ID_SCHEMES}
        self.tid_width = max(6, len(str(people)))

    def record_ids(self, kind: str, n: int) -> np.ndarray:
        prefix, width = RECORD_ID_SCHEMES[kind]
        start = self.next_record[kind]
        self.next_record[kind] += n
        return _obj(f"{prefix}{k:0{width}d}" for k in range(start, start + n))

    def person_ids_for(self, agency: str, n: int) -> np.ndarray:
        """n new person numbers of an agency; past the scheme's space they simply grow a digit."""
        prefix, digits, a, b = self.person_ids[agency]
        space = 10 ** digits
        start = self.next_person[agency]
        self.next_person[agency] += n
        return _obj(f"{prefix}{(a * k + b) % space:0{digits}d}" if k < space else f"{prefix}{k}"
                    for k in range(start, start + n))


def _draw_dob(rng: np.random.Generator, n: int) -> np.ndarray:
    """Ages 18 to 70 on 2022-01-01, most people in their thirties and forties."""
    age_years = 18 + 52 * rng.beta(2.0, 3.2, n)
    return _day(date(2022, 1, 1)) - np.round(age_years * 365.25).astype(np.int64)


def _draw_index(rng: np.random.Generator, w: _World, cohort: np.ndarray) -> np.ndarray:
    """Comparison index dates spread evenly; referrals ramp up as the program grows (density 1+t)."""
    u = rng.random(len(cohort))
    span = w.p1 - w.p0
    ramp = (np.sqrt(1 + 3 * u) - 1) * span
    even = u * span
    return np.where(cohort == LEAD, w.p0 + np.floor(ramp), w.p0 + np.floor(even)).astype(np.int64)


def _logit(intercept: float, prior: np.ndarray, age: np.ndarray, male: np.ndarray,
           lead: np.ndarray) -> np.ndarray:
    """The planted model's linear predictor (see MODEL)."""
    return (intercept + MODEL["any_prior_365"] * (prior > 0) + MODEL["age_per_decade"] * (age - 35) / 10
            + MODEL["male"] * male + MODEL["lead"] * lead)


def _calibrate(rng: np.random.Generator, w: _World, n: int = 200_000) -> float:
    """The intercept that gives the comparison group TARGET_COMPARISON_REARREST, by bisection
    over a large sample drawn exactly as comparison people are."""
    cohort = np.full(n, COMPARISON)
    dob = _draw_dob(rng, n)
    age = _age(dob, _draw_index(rng, w, cohort))
    male = _pick(rng, SEX_P, n) == "M"
    prior = rng.choice(5, size=n, p=PRIOR_ARRESTS_P[COMPARISON])
    lo, hi = -10.0, 10.0
    for _ in range(60):
        mid = (lo + hi) / 2
        rate = np.mean(1 / (1 + np.exp(-_logit(mid, prior, age, male, np.zeros(n)))))
        lo, hi = (mid, hi) if rate < TARGET_COMPARISON_REARREST else (lo, mid)
    return (lo + hi) / 2
