"""Odds ratios and their intervals: Woolf's interval and a logistic-regression adjustment."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from scipy.special import expit

Z_95 = 1.959963984540054


def odds_ratio_woolf(a: int, b: int, c: int, d: int, z: float = Z_95) -> tuple[float, float, float]:
    """Odds ratio of the 2x2 table [[a, b], [c, d]] with Woolf's (log) confidence interval.

    Rows are the groups compared (first row in the numerator), columns are
    outcome yes / no. Woolf's interval is undefined when a cell is zero.
    """
    if min(a, b, c, d) <= 0:
        raise ValueError("the Woolf interval needs every cell of the 2x2 table above zero")
    log_or = math.log(a * d / (b * c))
    se = math.sqrt(1 / a + 1 / b + 1 / c + 1 / d)
    return math.exp(log_or), math.exp(log_or - z * se), math.exp(log_or + z * se)


@dataclass(frozen=True)
class LogisticFit:
    coef: np.ndarray
    se: np.ndarray
    converged: bool
    iterations: int


def fit_logistic(X: np.ndarray, y: np.ndarray, max_iter: int = 50, tol: float = 1e-10) -> LogisticFit:
    """Maximum-likelihood logistic regression by iteratively reweighted least squares.

    X must already hold the intercept column. Convergence is judged on the
    relative change in deviance (as R's glm does), so a covariate with
    separated data cannot stall the fit of the others; standard errors come
    from the inverse Fisher information at the estimate.
    """
    X = np.asarray(X, dtype=float)
    y = np.asarray(y, dtype=float)
    beta = np.zeros(X.shape[1])
    deviance = math.inf
    converged = False
    iteration = 0
    for iteration in range(1, max_iter + 1):
        p = expit(X @ beta)
        w = np.clip(p * (1 - p), 1e-12, None)
        information = X.T @ (X * w[:, None])
        beta = beta + np.linalg.solve(information, X.T @ (y - p))
        p = np.clip(expit(X @ beta), 1e-15, 1 - 1e-15)
        new_deviance = -2 * float(np.sum(y * np.log(p) + (1 - y) * np.log(1 - p)))
        if abs(new_deviance - deviance) / (abs(new_deviance) + 0.1) < tol:
            converged = True
            break
        deviance = new_deviance
    p = expit(X @ beta)
    information = X.T @ (X * (p * (1 - p))[:, None])
    se = np.sqrt(np.diag(np.linalg.inv(information)))
    return LogisticFit(coef=beta, se=se, converged=converged, iterations=iteration)


def adjusted_odds_ratio(lead: list[int], outcome: list[int], prior_arrests: list[int],
                        age: list[float | None], sex: list[str | None],
                        z: float = Z_95) -> tuple[float, float, float, int] | None:
    """LEAD vs comparison odds ratio adjusted for prior arrests, age and sex.

    Complete cases only; sex enters as indicators against the most common
    value. Returns (odds ratio, low, high, people used), or None when the
    model cannot be estimated (too few people, no variation, no convergence).
    """
    keep = [i for i in range(len(lead)) if age[i] is not None and sex[i] is not None]
    if len(keep) < 10:
        return None
    sexes = [sex[i] for i in keep]
    levels = sorted(set(sexes), key=lambda s: (-sexes.count(s), s))
    columns = [np.ones(len(keep)),
               np.array([lead[i] for i in keep], dtype=float),
               np.array([prior_arrests[i] for i in keep], dtype=float),
               np.array([age[i] for i in keep], dtype=float)]
    columns += [np.array([s == level for s in sexes], dtype=float) for level in levels[1:]]
    y = np.array([outcome[i] for i in keep], dtype=float)
    if len(set(y)) < 2 or len(set(columns[1])) < 2:
        return None
    try:
        fit = fit_logistic(np.column_stack(columns), y)
    except np.linalg.LinAlgError:
        return None
    b, se = fit.coef[1], fit.se[1]
    if not (fit.converged and math.isfinite(b) and math.isfinite(se)):
        return None
    return math.exp(b), math.exp(b - z * se), math.exp(b + z * se), len(keep)
