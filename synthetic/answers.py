"""The ground truth: true person per row, cohort people, and the true outcome aggregates."""

from __future__ import annotations

import json
from datetime import date
from pathlib import Path

import numpy as np

from leadhub.core.files import atomic_write
from synthetic.arrays import _date, _day, _obj, _ymd
from synthetic.extracts import _AtomicCsv
from synthetic.parameters import (
    CONTACTS_LOG_ODDS, COHORT_NAMES, DATA_END, DATA_START, DAYS_PER_MONTH, HOUSED_ARREST_RATE_RATIO,
    HOUSED_EFFECT_DAYS, LIFE_LOGIT, LIFE_PERSON_SD, MODEL, NONE, NULL_DAY, ODDS_RATIO_LEAD,
    REFERRAL_TYPES, TARGET_COMPARISON_REARREST,
)
from synthetic.people import _People
from synthetic.world import _World


class _Truth:
    """Collects what the answers need from each block: cohort people and their events only."""

    def __init__(self, w: _World):
        self.w = w
        self.persons: list[dict] = []
        self.arrests: list[tuple[np.ndarray, np.ndarray]] = []      # (gid, day)
        self.bookings: list[tuple[np.ndarray, np.ndarray, np.ndarray]] = []   # (gid, day, days in jail)
        self.referral_months: dict[tuple[str, str], int] = {}

    def add(self, P: _People, events: dict) -> None:
        w = self.w
        in_cohort = P.cohort != NONE
        for i in np.flatnonzero(in_cohort):
            self.persons.append({
                "gid": int(P.gid[i]), "cohort": COHORT_NAMES[int(P.cohort[i])],
                "index_date": _date(P.index[i]).isoformat(), "sex": P.sex[i], "race": P.race[i],
                "ethnicity": P.ethnicity[i], "age_at_index": int(P.age_at_index[i]),
                "prior_arrests_365": int(P.prior[i])})
        A, J, R = events["arrests"], events["bookings"], events["referrals"]
        m = in_cohort[A["who"]]
        self.arrests.append((P.gid[A["who"][m]], A["day"][m]))
        m = in_cohort[J["who"]]
        released = np.where(J["released_at"] == NULL_DAY, w.d1, J["released_at"] // 1440)
        self.bookings.append((P.gid[J["who"][m]], J["day"][m], (released - J["day"] + 1)[m]))
        y, mo, _ = _ymd(R["day"])
        for year, month, kind in zip(y.tolist(), mo.tolist(), R["type"].tolist()):
            key = (f"{year:04d}-{month:02d}", kind)
            self.referral_months[key] = self.referral_months.get(key, 0) + 1

    def outcomes(self) -> dict:
        """True aggregates per cohort and window W, as marts.outcomes defines them:
        before = [index-W, index), after = (index, index+W], bookings by booking date, a booking's
        jail days = (release date, or the data end, - booking date) + 1."""
        index = {p["gid"]: _day(date.fromisoformat(p["index_date"])) for p in self.persons}
        cohort = {p["gid"]: p["cohort"] for p in self.persons}
        a_gid = np.concatenate([g for g, _ in self.arrests])
        a_day = np.concatenate([d for _, d in self.arrests])
        b_gid = np.concatenate([g for g, _, _ in self.bookings])
        b_day = np.concatenate([d for _, d, _ in self.bookings])
        b_len = np.concatenate([x for _, _, x in self.bookings])
        a_index = np.array([index[g] for g in a_gid.tolist()], dtype=np.int64)
        b_index = np.array([index[g] for g in b_gid.tolist()], dtype=np.int64)
        a_cohort = _obj(cohort[g] for g in a_gid.tolist())
        b_cohort = _obj(cohort[g] for g in b_gid.tolist())
        out = {}
        for name in ("lead", "comparison"):
            out[name] = {}
            n_people = sum(p["cohort"] == name for p in self.persons)
            for W in self.w.windows:
                ab = (a_cohort == name) & (a_day >= a_index - W) & (a_day < a_index)
                aa = (a_cohort == name) & (a_day > a_index) & (a_day <= a_index + W)
                bb = (b_cohort == name) & (b_day >= b_index - W) & (b_day < b_index)
                ba = (b_cohort == name) & (b_day > b_index) & (b_day <= b_index + W)
                out[name][str(W)] = {
                    "n_people": n_people,
                    "arrests_before": int(ab.sum()), "arrests_after": int(aa.sum()),
                    "bookings_before": int(bb.sum()), "bookings_after": int(ba.sum()),
                    "jail_days_before": int(b_len[bb].sum()), "jail_days_after": int(b_len[ba].sum()),
                    "any_rearrest_after": len(set(a_gid[aa].tolist())),
                }
        return out

    def referrals(self) -> dict:
        w = self.w
        months = []
        y, m = _date(w.p0).year, _date(w.p0).month
        while (y, m) <= (_date(w.p1).year, _date(w.p1).month):
            months.append(f"{y:04d}-{m:02d}")
            y, m = (y + 1, 1) if m == 12 else (y, m + 1)
        months += sorted({k[0] for k in self.referral_months} - set(months))
        by_month = {mo: {t: self.referral_months.get((mo, t), 0) for t in REFERRAL_TYPES} for mo in months}
        return {"total": sum(self.referral_months.values()), "by_month": by_month}


def _odds_ratio(outcomes: dict, window: str) -> float | None:
    def odds(c):
        k, n = outcomes[c][window]["any_rearrest_after"], outcomes[c][window]["n_people"]
        return k / (n - k) if 0 < k < n else None
    lead, comparison = odds("lead"), odds("comparison")
    return round(lead / comparison, 4) if lead and comparison else None


def _population_averaged_slope(at_referral: float, per_month: float, sd: float,
                                months: tuple[int, int] = (-1, 18)) -> float:
    """The slope a marginal (GEE) logistic model of the outcome on months since referral estimates.

    A random intercept flattens the population's curve: the share at month t is the average of
    expit(a + b*t + u) over u ~ N(0, sd), computed here by Gauss-Hermite quadrature, and the
    logistic line fitted to those shares at months -1..18, equally weighted (Newton steps on the
    score equations of a logistic fit), has this slope.
    """
    nodes, weights = np.polynomial.hermite_e.hermegauss(60)
    weights = weights / weights.sum()
    t = np.arange(months[0], months[1] + 1, dtype=float)
    share = (weights[None, :] / (1 + np.exp(-(at_referral + per_month * t[:, None]
                                               + sd * nodes[None, :])))).sum(axis=1)
    x = np.column_stack([np.ones_like(t), t])
    beta = np.zeros(2)
    for _ in range(50):
        p = 1 / (1 + np.exp(-x @ beta))
        beta += np.linalg.solve(x.T @ (x * (p * (1 - p))[:, None]), x.T @ (share - p))
    return float(beta[1])


def _life_outcomes() -> dict:
    """The planted assessment model and housing-arrests link, as truth.json states them."""
    return {
        "months": f"months since the first LEAD referral, in {DAYS_PER_MONTH}-day months "
                  "(assessment date - index date) / 30.4375",
        "model": "logit P(status at an assessment) = at_referral + per_month*months + u, u ~ N(0, "
                 "person_intercept_sd) drawn once per person and outcome, independently; statuses "
                 "at different assessments are independent given u",
        "outcomes": {
            "housed": "housing_status transitional or permanent",
            "employed": "employment_status part_time or full_time",
            "income": "income_source employment, benefits or both",
        },
        "log_odds_at_referral": {k: a for k, (a, _) in LIFE_LOGIT.items()},
        "log_odds_per_month": {k: b for k, (_, b) in LIFE_LOGIT.items()},
        "odds_ratio_per_month": {k: round(float(np.exp(b)), 6) for k, (_, b) in LIFE_LOGIT.items()},
        "person_intercept_sd": LIFE_PERSON_SD,
        "population_averaged_log_odds_per_month": {
            k: round(_population_averaged_slope(a, b, LIFE_PERSON_SD), 6) for k, (a, b) in LIFE_LOGIT.items()},
        "contacts_log_odds_per_contact": {k: CONTACTS_LOG_ODDS for k in LIFE_LOGIT},
        "unknown_statuses": "recorded 'unknown' at random (4% per status), whatever the true status",
        "housed_arrest_rate_ratio": HOUSED_ARREST_RATE_RATIO,
        "housed_effect_days": HOUSED_EFFECT_DAYS,
        "housed_arrests_model": "an assessment finding the person housed multiplies their arrest hazard "
                                "by housed_arrest_rate_ratio on each of the housed_effect_days days after "
                                "it; effects of successive housed assessments multiply. In the 365 days "
                                "after index the participant's number of arrests is the re-arrest model's "
                                "and only their days follow the hazard; after that, background arrests "
                                "are thinned by it. So the ratio is within-person: arrests in the "
                                f"{HOUSED_EFFECT_DAYS} days after an assessment on housed at it, with the "
                                "person as a fixed (conditional Poisson) or random effect and months since "
                                "referral, estimate it; a marginal model without the person does not",
        "employed_arrest_rate_ratio": 1.0,
        "income_arrest_rate_ratio": 1.0,
    }


def _write_answers(w: _World, answers_dir: Path, truth: _Truth, outcomes: dict, files: dict) -> None:
    persons = _AtomicCsv(answers_dir / "persons.csv",
                         ["true_person_id", "cohort", "index_date", "sex", "race", "ethnicity",
                          "age_at_index", "prior_arrests_365"])
    people = sorted(truth.persons, key=lambda p: p["gid"])
    persons.write_columns([
        [f"T{p['gid'] + 1:0{w.tid_width}d}" for p in people], *[[p[k] for p in people] for k in (
            "cohort", "index_date", "sex", "race", "ethnicity", "age_at_index", "prior_arrests_365")]])
    persons.commit()

    doc = {
        "seed": w.seed,
        "people": w.people,
        "data_start": DATA_START.isoformat(),
        "data_end": DATA_END.isoformat(),
        "program_start": _date(w.p0).isoformat(),
        "program_end": _date(w.p1).isoformat(),
        "windows_days": list(w.windows),
        "planted": {
            "odds_ratio_lead_any_rearrest_365": ODDS_RATIO_LEAD,
            "model": "logit P(any arrest in (index, index+365]) = intercept + any_prior_365*[prior arrests "
                     "in the 365 days before index > 0] + age_per_decade*(age_at_index-35)/10 "
                     "+ male*[sex=M] + lead*[cohort=lead]",
            "coefficients": {"intercept": round(w.intercept, 6),
                             **{k: round(v, 6) for k, v in MODEL.items()}},
            "target_comparison_rearrest_365": TARGET_COMPARISON_REARREST,
            "life_outcomes": _life_outcomes(),
        },
        "counts": {
            "lead": w.lead, "comparison": w.comparison, "none": w.people - w.lead - w.comparison,
            "rows": files,
        },
        "outcomes": outcomes,
        "observed_unadjusted_odds_ratio": {W: _odds_ratio(outcomes, W) for W in map(str, w.windows)},
        "referrals": truth.referrals(),
    }
    out = answers_dir / "truth.json"
    with atomic_write(out, text=True, tmp=out.with_name(out.name + ".part")) as f:
        json.dump(doc, f, indent=2)
        f.write("\n")
