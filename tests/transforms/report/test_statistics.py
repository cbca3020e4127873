"""The report's odds ratios: Woolf's interval and the logistic-regression adjustment."""

from __future__ import annotations

import math

import numpy as np
import pytest

from transforms.report.statistics import adjusted_odds_ratio, fit_logistic, odds_ratio_woolf


def test_odds_ratio_woolf_hand_example():
    # OR = (20*30)/(10*15) = 4; SE(log OR) = sqrt(1/20 + 1/10 + 1/15 + 1/30) = 0.5;
    # CI = 4 * exp(-/+ 1.96 * 0.5) = 4 * (0.375311, 2.664456)
    ratio, low, high = odds_ratio_woolf(20, 10, 15, 30, z=1.96)
    assert ratio == pytest.approx(4.0)
    assert low == pytest.approx(1.501244, abs=1e-5)
    assert high == pytest.approx(10.657825, abs=1e-5)
    with pytest.raises(ValueError):
        odds_ratio_woolf(0, 10, 15, 30)


def test_logistic_regression_with_one_indicator_reproduces_woolf():
    # With only an intercept and the group indicator, the MLE odds ratio is the 2x2
    # odds ratio and its standard error is Woolf's.
    a, b, c, d = 20, 10, 15, 30
    group = [1] * (a + b) + [0] * (c + d)
    outcome = [1] * a + [0] * b + [1] * c + [0] * d
    X = np.column_stack([np.ones(len(group)), group])
    fit = fit_logistic(X, np.array(outcome))
    assert fit.converged
    assert math.exp(fit.coef[1]) == pytest.approx(4.0, rel=1e-8)
    assert fit.se[1] == pytest.approx(0.5, rel=1e-6)


def test_adjusted_odds_ratio_solves_the_score_equations():
    rng = np.random.default_rng(7)
    n = 400
    lead = rng.integers(0, 2, n)
    prior = rng.poisson(1.0, n)
    age = rng.integers(18, 65, n).astype(float)
    sex = rng.choice(["M", "F"], n, p=[0.7, 0.3])
    logit = -0.5 - 0.7 * lead + 0.4 * prior - 0.01 * (age - 40) + 0.3 * (sex == "F")
    y = (rng.random(n) < 1 / (1 + np.exp(-logit))).astype(int)

    ratio, low, high, used = adjusted_odds_ratio(list(lead), list(y), list(prior), list(age), list(sex))
    assert used == n and low < ratio < high
    X = np.column_stack([np.ones(n), lead, prior, age, sex == "F"]).astype(float)
    fit = fit_logistic(X, y)
    p = 1 / (1 + np.exp(-X @ fit.coef))
    assert np.abs(X.T @ (y - p)).max() < 1e-6
    assert ratio == pytest.approx(math.exp(fit.coef[1]))
    # Missing age or sex drops the person; no variation in the outcome gives no estimate.
    assert adjusted_odds_ratio(list(lead), list(y), list(prior), [None] + list(age[1:]),
                               list(sex))[3] == n - 1
    assert adjusted_odds_ratio(list(lead), [0] * n, list(prior), list(age), list(sex)) is None
