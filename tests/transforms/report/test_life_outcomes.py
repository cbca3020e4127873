"""The life-outcome models recover planted effects, and their tables are protected like the others."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from transforms.report.life_outcomes import (AVERAGE, WITHIN, Fit, LifeModels, fit_arrests, fit_trend,
                                             poisson_scores)
from transforms.report.life_tables import model_tables, share_tables
from transforms.report.suppression import WITHHELD


def panel(people: int = 200, slope: float = 0.15, sd: float = 1.0, seed: int = 4) -> pd.DataFrame:
    """Monthly statuses, months -1..18: logit P(housed) = -1.5 + slope*month + u, u ~ N(0, sd),
    independent given u; contacts drawn apart from everything (no effect)."""
    rng = np.random.default_rng(seed)
    months = np.arange(-1, 19)
    u = rng.normal(0, sd, people)
    logit = -1.5 + slope * months[None, :] + u[:, None]
    housed = rng.random(logit.shape) < 1 / (1 + np.exp(-logit))
    return pd.DataFrame({
        "person_key": np.repeat([f"pk-{i}" for i in range(people)], len(months)),
        "month_since_referral": np.tile(months, people),
        "contacts": rng.poisson(2.0, housed.size),
        "housed": housed.ravel().astype(float)})


@pytest.fixture(scope="module")
def fits() -> dict[str, Fit]:
    """The three fits on one 200-person panel (each fit takes a few seconds)."""
    data = panel()
    return {"within": fit_trend(data, "housed", WITHIN), "average": fit_trend(data, "housed", AVERAGE),
            "contacts": fit_trend(data, "housed", WITHIN, with_contacts=True)}


def test_within_person_model_recovers_a_strong_planted_slope(fits):
    fit = fits["within"]
    e = fit.estimates["month_since_referral"]
    # Planted: 0.15 log-odds per month (odds x1.16 a month); the interval must hold it and not 0.
    assert e.covers(0.15)
    assert not e.covers(0.0)
    assert 1.12 < e.ratio < 1.20
    assert (fit.people, fit.months) == (200, 200 * 20)


def test_population_averaged_slope_is_flatter_when_people_differ(fits):
    within = fits["within"].estimates["month_since_referral"]
    average = fits["average"].estimates["month_since_referral"]
    # With a person SD of 1 the population's curve is flatter than each person's (roughly
    # 0.15 / sqrt(1 + 0.346) = 0.13 near the middle): the GEE interval does not reach 0.15.
    assert average.coef < within.coef
    assert not average.covers(0.15)
    assert 0.09 < average.coef < 0.14


def test_contacts_without_an_effect_get_an_interval_around_none(fits):
    fit = fits["contacts"]
    assert fit.estimates["contacts"].covers(0.0)
    assert fit.estimates["month_since_referral"].covers(0.15)


def arrest_periods(seed: int = 9) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    rows = []
    for i in range(300):
        rate = rng.gamma(1.0, 0.004)          # people differ a lot in how often they are arrested
        for month in range(19):
            housed = int(rng.integers(0, 3))
            employed = int(rng.integers(0, 2))
            rows.append((f"pk-{i}", month, housed, employed, 30,
                         rng.poisson(30 * rate * 0.5 ** housed)))
    return pd.DataFrame(rows, columns=["person_key", "month_since_referral", "housed_recent",
                                       "employed_recent", "days", "arrests"])


def test_arrest_model_recovers_a_planted_rate_ratio():
    fit = fit_arrests(arrest_periods())
    # Planted: each housed assessment halves the rate (log 0.5 = -0.69); employment does nothing.
    assert fit.estimates["housed_recent"].covers(math.log(0.5))
    assert not fit.estimates["housed_recent"].covers(0.0)
    assert fit.estimates["employed_recent"].covers(0.0)


def test_a_month_without_any_arrest_does_not_stop_the_arrest_model():
    periods = arrest_periods()
    periods.loc[periods["month_since_referral"] == 13, "arrests"] = 0
    fit = fit_arrests(periods)
    assert fit.estimated, fit.reason
    assert fit.estimates["housed_recent"].covers(math.log(0.5))
    # The month's 300 people x 30 days are left out of the person-days used.
    assert fit.months == 300 * 30 * 18


def repeated(data: pd.DataFrame, times: int) -> pd.DataFrame:
    """Every row of each person ``times`` times: the same information, more rows."""
    return pd.concat([data] * times).sort_values(["person_key", "month_since_referral"], kind="stable")


@pytest.mark.filterwarnings("ignore:Dropped")      # people never arrested: no information
def test_person_scores_add_up_to_the_conditional_poisson_score():
    from statsmodels.discrete.conditional_models import ConditionalPoisson

    periods = arrest_periods().head(19 * 40)
    X = periods[["housed_recent", "employed_recent"]].to_numpy(dtype=float)
    y, groups = periods["arrests"].to_numpy(dtype=float), periods["person_key"].to_numpy()
    offset = np.log(periods["days"].to_numpy(dtype=float))
    at = np.array([-0.3, 0.2])
    ours = poisson_scores(X, y, offset, groups, at)
    # One row per person whose arrests vary; together, statsmodels' total score at the same point.
    assert len(ours) == sum(periods.groupby("person_key")["arrests"].std() > 0)
    total = ConditionalPoisson(y, X, groups=groups, offset=offset).score(at)
    assert np.allclose(ours.sum(axis=0), total)


def test_arrest_intervals_do_not_narrow_when_every_period_is_repeated():
    once, thrice = fit_arrests(arrest_periods()), fit_arrests(repeated(arrest_periods(), 3))
    # Three copies of each period: the conditional log-likelihood is 3 x the original plus a
    # constant, so the same estimates; the information triples (model-based SE / sqrt 3) but so
    # does each person's score (meat x 9), and the interval clustered by person is unchanged:
    # (1/3) x 9 x (1/3) = 1.
    for term in ("housed_recent", "employed_recent"):
        a, b = once.estimates[term], thrice.estimates[term]
        assert b.coef == pytest.approx(a.coef, abs=1e-6)
        assert b.se == pytest.approx(a.se, rel=1e-3)


def test_within_person_interval_does_not_narrow_when_every_month_is_repeated():
    data = panel(people=100, seed=5)
    once = fit_trend(data, "housed", WITHIN).estimates["month_since_referral"]
    twice = fit_trend(repeated(data, 2), "housed", WITHIN).estimates["month_since_referral"]
    # Two copies of each month add nothing. The model-based SE would fall by about 1/sqrt 2
    # (0.0105 to 0.0070 when this was written); clustered by person it stays (0.0108), within
    # what the changed conditional likelihood moves it.
    assert 0.9 < twice.se / once.se < 1.15


def test_too_few_people_is_not_estimable():
    fit = fit_trend(panel(people=6), "housed", WITHIN)
    assert not fit.estimated and "fewer than 10 people" in fit.reason


def month_row(m, participants, housing_known, housed, contacts=40, contacted=30):
    return {"month_since_referral": m, "participants": participants, "housing_known": housing_known,
            "housed": housed, "employment_known": housing_known, "employed": 40,
            "income_known": housing_known, "income_or_benefits": 50, "contacts": contacts,
            "people_contacted": contacted}


def test_share_table_suppresses_small_cells_within_each_month():
    rows = [month_row(-1, 100, 80, 30), month_row(0, 100, 95, 30), month_row(1, 100, 80, 5)]
    shares, contacts = share_tables(rows)
    by_month = {r[0]: r for r in shares.rows}
    # Month before referral: nothing small; 30 of 80 housed = 37.5%.
    assert by_month["Month before referral"][2:5] == ["80", "30", "37.5%"]
    # Month 0: 5 participants with unknown housing (100 - 95) would follow from 100 and 95, so
    # 95 (not the total) is hidden; then 30 housed of the hidden 95 is hidden too (the smaller
    # part), or it would give the hidden 95 away with the 65 not housed... and the share with them.
    assert by_month["Month 0"][1:5] == ["100", WITHHELD, WITHHELD, WITHHELD]
    # Month 1: 5 housed is shown as <11 and its share withheld.
    assert by_month["Month 1"][2:5] == ["80", "<11", WITHHELD]
    assert "treatment" in shares.sources and "treatment" in contacts.sources
    assert shares.chart_png
    assert [r[1] for r in contacts.rows] == ["100", "100", "100"]


def fit_with(people, events, non_events) -> Fit:
    from transforms.report.life_outcomes import Estimate

    return Fit("housed", WITHIN, ("month_since_referral",), people, events + non_events, events,
               non_events, {"month_since_referral": Estimate("month_since_referral", 0.1, 0.02)})


@pytest.mark.parametrize("people, events, non_events, shown", [
    (200, 500, 900, "1.105"),          # exp(0.1)
    (200, 7, 900, WITHHELD),           # 7 months with the outcome: a suppressed count
    (200, 500, 4, WITHHELD),
    (9, 500, 900, WITHHELD),
])
def test_model_estimates_resting_on_a_small_count_are_withheld(people, events, non_events, shown):
    fit = fit_with(people, events, non_events)
    models = LifeModels(trend={(o, k): fit for o in ("housed", "employed", "income_or_benefits")
                               for k in (WITHIN, AVERAGE)},
                        contacts={(o, k): fit for o in ("housed", "employed", "income_or_benefits")
                                  for k in (WITHIN, AVERAGE)},
                        arrests=Fit("arrests", WITHIN, ("housed_recent", "employed_recent"), 200,
                                    5000, 15, 0, {}, reason="no arrests"))
    odds, arrests = model_tables(models)
    assert odds.rows[0][3] == shown
    if shown == WITHHELD:
        assert odds.rows[0][5] == WITHHELD and "withheld" in odds.rows[0][-1]
        assert odds.rows[0][6] == ""
    else:
        # exp(0.1 * 18) = 6.05; the interval exp((0.1 -+ 1.96 * 0.02) * 18) = exp(1.094), exp(2.506)
        assert odds.rows[0][6] == "6.05 (2.99 to 12.25)"
    assert arrests.rows[0][1] == "n/a" and "not estimable" in arrests.rows[0][-1]


def test_methods_say_what_the_life_outcome_models_assume():
    from datetime import datetime

    from transforms.report.render import ReportContext, render_html

    html = render_html(share_tables([month_row(-1, 100, 80, 30)]), ReportContext(None, datetime(2024, 2, 1)))
    methods = html[html.index('id="life-outcomes"'):]
    methods = methods[:methods.index("</li>")]
    for said in ("up to 2 months", "exchangeable working correlation", "robust (sandwich)",
                 "conditional logistic regression", "missing months", "in the 91 days before",
                 "an association, not", "clustered by person", "Mancl and DeRouen"):
        assert said in methods, said
