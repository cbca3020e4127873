"""Models of housing, employment and income after referral, and of arrests after an assessment
that found a participant housed or employed; fitted with statsmodels on the life-outcome marts.

Two models of each outcome on months since referral, because they answer different questions:

* within-person (conditional logistic regression, person fixed effects): how one participant's
  odds change month by month. Each person is compared only with themselves, so whatever differs
  between people and stays put (history, health, how they were doing before) drops out. This is
  the "within-person" change the LEAD evaluations describe.
* population-averaged (GEE logistic, exchangeable working correlation within person, robust
  sandwich errors): how the odds across all participants change. When people differ, this is
  smaller than the within-person change (odds ratios nearer 1), by design, not by error.

Both use only months with an assessment made in them: a month whose status was carried forward
repeats an earlier observation and adds no information. Later arrests are a within-person
(conditional) Poisson model of arrests per day after referral on how many assessments in the 91
days before the day found the participant housed, and employed, with each month since referral
its own baseline: each participant's days after housed assessments against their own other days,
so people who are arrested more often, and are housed less often, do not make housing look
protective. The interval arithmetic is ``statistics.Z_95``; the fits are statsmodels'.
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass

import numpy as np
import pandas as pd

from transforms.report.statistics import Z_95

OUTCOMES = (("housed", "Housed (transitional or permanent)"),
            ("employed", "Employed (part or full time)"),
            ("income_or_benefits", "Legitimate income or benefits"))
# Must match transforms/sql/85_marts_life_outcomes.sql (tests hold them together).
CARRY_FORWARD_MONTHS = 2
STATUS_MAX_DAYS = 91
FIRST_MONTH, LAST_MONTH = -1, 18
MIN_PEOPLE = 10          # fewer people with a usable month: no model
WITHIN, AVERAGE = "within", "average"
KINDS = {WITHIN: "Within-person (conditional logistic)",
         AVERAGE: "Population-averaged (GEE logistic)"}


@dataclass(frozen=True)
class Estimate:
    """One term's log-scale coefficient and standard error; ratio and 95% interval from them."""
    term: str
    coef: float
    se: float

    @property
    def ratio(self) -> float:
        return math.exp(self.coef)

    @property
    def low(self) -> float:
        return math.exp(self.coef - Z_95 * self.se)

    @property
    def high(self) -> float:
        return math.exp(self.coef + Z_95 * self.se)

    def covers(self, coef: float) -> bool:
        """Whether the 95% interval contains ``coef`` (on the log scale)."""
        return self.coef - Z_95 * self.se <= coef <= self.coef + Z_95 * self.se


@dataclass(frozen=True)
class Fit:
    """One model: what it explains, what it used, and its estimates (empty when not estimable)."""
    outcome: str
    kind: str
    terms: tuple[str, ...]
    people: int
    months: int              # person-months used (logistic) or person-days (Poisson)
    events: int              # months with the outcome (logistic) or arrests (Poisson)
    non_events: int          # months without the outcome (logistic); 0 for the Poisson model
    estimates: dict[str, Estimate]
    reason: str = ""         # why there are no estimates

    @property
    def estimated(self) -> bool:
        return bool(self.estimates)


def load_panel(con) -> pd.DataFrame:
    """The months of marts.life_status_monthly with an assessment made in them, in order."""
    outcomes = ", ".join(f"{name}::DOUBLE AS {name}" for name, _ in OUTCOMES)   # NULL stays NaN
    return con.execute(f"""SELECT person_key, month_since_referral, contacts, {outcomes}
        FROM marts.life_status_monthly WHERE carried_months = 0
        ORDER BY person_key, month_since_referral""").df()


def load_periods(con) -> pd.DataFrame:
    """marts.life_arrest_periods, in order."""
    return con.execute("""SELECT person_key, month_since_referral, housed_recent, employed_recent,
            days, arrests
        FROM marts.life_arrest_periods WHERE days > 0
        ORDER BY person_key, month_since_referral, housed_recent, employed_recent""").df()


def _quietly(fit):
    """Run ``fit``; a convergence or singular-information warning becomes the reason for no fit."""
    from statsmodels.tools.sm_exceptions import ConvergenceWarning, HessianInversionWarning, ModelWarning

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ModelWarning)        # people whose status never changes
        warnings.simplefilter("error", ConvergenceWarning)
        warnings.simplefilter("error", HessianInversionWarning)
        warnings.simplefilter("error", RuntimeWarning)
        try:
            return fit()
        except (ConvergenceWarning, HessianInversionWarning, RuntimeWarning,
                np.linalg.LinAlgError, ValueError) as e:
            return f"the model did not converge ({type(e).__name__})"


def _estimates(result, terms: tuple[str, ...]) -> dict[str, Estimate] | str:
    if isinstance(result, str):
        return result
    if getattr(result, "converged", True) is False:
        return "the model did not converge"
    params, bse = pd.Series(result.params), pd.Series(result.bse)
    out = {}
    for term in terms:
        coef, se = float(params[term]), float(bse[term])
        if not (math.isfinite(coef) and math.isfinite(se) and se > 0):
            return "the model gave no finite estimate"
        out[term] = Estimate(term, coef, se)
    return out


def fit_trend(panel: pd.DataFrame, outcome: str, kind: str = WITHIN, with_contacts: bool = False) -> Fit:
    """Logistic model of ``outcome`` on months since referral (and case-management contacts in
    the month): within-person (conditional logit) or population-averaged (GEE)."""
    import statsmodels.api as sm
    from statsmodels.discrete.conditional_models import ConditionalLogit

    terms = ("month_since_referral",) + (("contacts",) if with_contacts else ())
    data = panel.dropna(subset=[outcome])
    y = data[outcome].to_numpy(dtype=float)
    events = int(y.sum())
    fit = dict(outcome=outcome, kind=kind, terms=terms, people=int(data["person_key"].nunique()),
               months=len(data), events=events, non_events=len(data) - events)
    if fit["people"] < MIN_PEOPLE:
        return Fit(**fit, estimates={}, reason=f"fewer than {MIN_PEOPLE} people with a known status")
    if events == 0 or events == len(data):
        return Fit(**fit, estimates={}, reason="the outcome does not vary")
    X = data[list(terms)].astype(float)
    groups = data["person_key"].to_numpy()
    if kind == WITHIN:
        result = _quietly(lambda: ConditionalLogit(y, X, groups=groups).fit())
    else:
        result = _quietly(lambda: sm.GEE(y, sm.add_constant(X, has_constant="add"), groups=groups,
                                         family=sm.families.Binomial(),
                                         cov_struct=sm.cov_struct.Exchangeable()).fit())
    estimates = _estimates(result, terms)
    if isinstance(estimates, str):
        return Fit(**fit, estimates={}, reason=estimates)
    return Fit(**fit, estimates=estimates)


def fit_arrests(periods: pd.DataFrame) -> Fit:
    """Within-person (conditional) Poisson model of arrests per day on the number of assessments in
    the 91 days before that found the participant housed, and employed; each month since referral
    its own baseline, days as exposure. Newton steps: with a baseline per month, BFGS often stops
    short of its tolerance."""
    from statsmodels.discrete.conditional_models import ConditionalPoisson

    terms = ("housed_recent", "employed_recent")
    # A month since referral in which nobody was arrested has a baseline of minus infinity: its
    # days say nothing about the ratios (dropping them is that limit of the fit) and would stop
    # the fit from converging.
    data = periods[periods.groupby("month_since_referral")["arrests"].transform("sum") > 0]
    y = data["arrests"].to_numpy(dtype=float)
    fit = dict(outcome="arrests", kind=WITHIN, terms=terms, people=int(data["person_key"].nunique()),
               months=int(data["days"].sum()), events=int(y.sum()), non_events=0)
    if fit["people"] < MIN_PEOPLE:
        return Fit(**fit, estimates={}, reason=f"fewer than {MIN_PEOPLE} people with an assessment")
    if fit["events"] == 0:
        return Fit(**fit, estimates={}, reason="no arrests")
    if any(data[t].nunique() < 2 for t in terms):
        return Fit(**fit, estimates={}, reason="housing or employment does not vary")
    months = pd.get_dummies(data["month_since_referral"], prefix="month", drop_first=True, dtype=float)
    X = pd.concat([data[list(terms)].astype(float), months], axis=1)
    groups, offset = data["person_key"].to_numpy(), np.log(data["days"].to_numpy(dtype=float))
    estimates = _estimates(_quietly(lambda: ConditionalPoisson(y, X, groups=groups, offset=offset)
                                    .fit(method="newton")), terms)
    if isinstance(estimates, str):
        return Fit(**fit, estimates={}, reason=estimates)
    return Fit(**fit, estimates=estimates)


@dataclass(frozen=True)
class LifeModels:
    trend: dict[tuple[str, str], Fit]       # (outcome, kind): months since referral only
    contacts: dict[tuple[str, str], Fit]    # (outcome, kind): months since referral and contacts
    arrests: Fit


def life_models(con) -> LifeModels:
    """Every model the report shows, from the marts on ``con``."""
    panel = load_panel(con)
    return LifeModels(
        trend={(o, k): fit_trend(panel, o, k) for o, _ in OUTCOMES for k in KINDS},
        contacts={(o, k): fit_trend(panel, o, k, with_contacts=True) for o, _ in OUTCOMES for k in KINDS},
        arrests=fit_arrests(load_periods(con)))
