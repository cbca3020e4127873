"""Models of housing, employment and income after referral, and of arrests after an assessment
that found a participant housed or employed; fitted with statsmodels on the life-outcome marts.

Two models of each outcome on months since referral, because they answer different questions:

* within-person (conditional logistic regression, person fixed effects): how one participant's
  odds change month by month. Each person is compared only with themselves, so whatever differs
  between people and stays put (history, health, how they were doing before) drops out. This is
  the "within-person" change the LEAD evaluations describe.
* population-averaged (GEE logistic, exchangeable working correlation within person, robust
  sandwich errors with Mancl and DeRouen's small-sample correction): how the odds across all
  participants change. When people differ, this is smaller than the within-person change (odds
  ratios nearer 1), by design, not by error.

Both use only months with an assessment made in them: a month whose status was carried forward
repeats an earlier observation and adds no information. Later arrests are a within-person
(conditional) Poisson model of arrests per day after referral on how many assessments in the 91
days before the day found the participant housed, and employed, with each month since referral
its own baseline: each participant's days after housed assessments against their own other days,
so people who are arrested more often, and are housed less often, do not make housing look
protective. The interval arithmetic is ``statistics.Z_95``; the fits are statsmodels'.

Every interval is clustered by person. The conditional models' own (model-based) errors hold only
if a person's months are independent once their level is accounted for: statuses that persist
from one assessment to the next, arrests that come in bursts, or a person whose arrest rate
changes over follow-up in their own way (more than the shared month baselines allow) make them
too narrow. The sandwich built from each person's score of the conditional likelihood (the
statsmodels fit's information as bread) stays valid under any such dependence within a person,
with only the people taken as independent; for the Poisson model this is the fixed-effects
Poisson estimator that needs nothing but the mean to be right (Wooldridge, 1999). The factor
G/(G-1), G the people who add to the fit, is the usual small-sample correction of that sandwich.
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


def clustered_cov(bread: np.ndarray, scores: np.ndarray) -> np.ndarray:
    """Sandwich covariance clustered by person: ``bread`` is the model-based covariance (the
    inverse information), ``scores`` one row per person (their summed score at the estimate)."""
    groups = len(scores)
    meat = scores.T @ scores * groups / (groups - 1)
    return bread @ meat @ bread


def _robust(result, scores, names: list[str]):
    """``result`` with clustered standard errors, as (params, bse) Series; a reason string passes."""
    if isinstance(result, str):
        return result
    if getattr(result, "converged", True) is False:
        return "the model did not converge"
    params = np.asarray(result.params, dtype=float)
    cov = clustered_cov(np.asarray(result.cov_params(), dtype=float), scores(result, params))
    with np.errstate(invalid="ignore"):
        bse = np.sqrt(np.diag(cov))
    return pd.Series(params, index=names), pd.Series(bse, index=names)


def _estimates(result, terms: tuple[str, ...]) -> dict[str, Estimate] | str:
    if isinstance(result, str):
        return result
    if isinstance(result, tuple):
        params, bse = result
    elif getattr(result, "converged", True) is False:
        return "the model did not converge"
    else:
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
        result = _robust(_quietly(lambda: ConditionalLogit(y, X, groups=groups).fit()), lambda r, b: np.array(
            [r.model.score_grp(g, b) for g in range(r.n_groups)]), list(terms))
    else:
        # Mancl and DeRouen's correction: the plain sandwich is too small with a few hundred people.
        result = _quietly(lambda: sm.GEE(y, sm.add_constant(X, has_constant="add"), groups=groups,
                                         family=sm.families.Binomial(),
                                         cov_struct=sm.cov_struct.Exchangeable())
                          .fit(cov_type="bias_reduced"))
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
    result = _quietly(lambda: ConditionalPoisson(y, X, groups=groups, offset=offset).fit(method="newton"))
    estimates = _estimates(_robust(result, lambda r, b: poisson_scores(X.to_numpy(), y, offset, groups, b),
                                   list(X.columns)), terms)
    if isinstance(estimates, str):
        return Fit(**fit, estimates={}, reason=estimates)
    return Fit(**fit, estimates=estimates)


def poisson_scores(X: np.ndarray, y: np.ndarray, offset: np.ndarray, groups: np.ndarray,
                   params: np.ndarray) -> np.ndarray:
    """Each person's score of the conditional Poisson likelihood at ``params``: given their
    arrests n, sum over their periods of x * (y - n * the period's share of their expected
    arrests). statsmodels' ConditionalPoisson gives only the total; people whose arrests are the
    same in every period are left out, as statsmodels leaves them out of the fit."""
    eta = X @ params + offset
    out = []
    for rows in pd.Series(np.arange(len(y))).groupby(groups, sort=False).indices.values():
        if np.std(y[rows]) == 0:
            continue
        share = np.exp(eta[rows] - eta[rows].max())
        share /= share.sum()
        out.append(X[rows].T @ (y[rows] - y[rows].sum() * share))
    return np.array(out)


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
