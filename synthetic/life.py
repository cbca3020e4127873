"""Case managers' assessments of LEAD participants, and how being housed lowers their arrests.

Every participant is assessed from about a month before referral to 18 months after; each
assessment finds the person housed, employed and with income or benefits or not, by the planted
logistic model in ``parameters`` (``LIFE_LOGIT``, a random intercept per person). The days after
an assessment that found the person housed carry a lower arrest hazard (``HOUSED_ARREST_RATE_RATIO``):
``_Life.multiplier`` gives it per person and day, and ``events._arrests`` uses it to place the
participants' arrests. All draws here come from the block's own ``life`` stream, so the rest of the
county is drawn exactly as before.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from synthetic.arrays import _pick
from synthetic.parameters import (
    ASSESS_FIRST_DAYS, ASSESS_GAP_DAYS, ASSESS_SKIP_SHARE, ASSESS_UNTIL_DAYS, DAYS_PER_MONTH,
    DUPLICATE_ASSESSMENT_SHARE, EMPLOYMENT_STATUS, HOUSED_ARREST_RATE_RATIO, HOUSED_EFFECT_DAYS,
    HOUSING_STATUS, INCOME_WITH_WORK, LEAD, LIFE_LOGIT, LIFE_PERSON_SD, UNKNOWN_STATUS_SHARE,
)
from synthetic.people import _People

# Days after the index day the multiplier table covers; past it nobody has an assessment left.
SPAN_DAYS = ASSESS_UNTIL_DAYS + HOUSED_EFFECT_DAYS + 1


@dataclass
class _Life:
    """The participants' assessments (one entry each, sorted by person then day) and statuses."""
    rng: np.random.Generator
    who: np.ndarray            # person (index in the block)
    day: np.ndarray
    months: np.ndarray         # months since referral (DAYS_PER_MONTH days), may be negative
    housed: np.ndarray         # bool: the true statuses
    employed: np.ndarray
    income: np.ndarray
    row: np.ndarray            # per person of the block: row in ``table``, -1 for non-participants
    table: np.ndarray          # (participants, SPAN_DAYS): hazard multiplier on index day + offset

    def multiplier(self, who: np.ndarray, day: np.ndarray, index: np.ndarray) -> np.ndarray:
        """The arrest-hazard multiplier of each (person, day); 1 outside the participants' table."""
        out = np.ones(len(who))
        at = np.flatnonzero(self.row[who] >= 0)
        row, offset = self.row[who[at]], day[at] - index[who[at]]
        m = (offset >= 0) & (offset < SPAN_DAYS)
        out[at[m]] = self.table[row[m], offset[m]]
        return out


def _assessment_days(rng: np.random.Generator, index: np.ndarray,
                     last_day: int) -> tuple[np.ndarray, np.ndarray]:
    """(participant, day) of every assessment: irregular, about monthly, some months skipped,
    none after ``last_day`` (the data end: those have not happened yet)."""
    n = len(index)
    most = int(ASSESS_UNTIL_DAYS / 14) + 3
    mean, sd = ASSESS_GAP_DAYS
    gap = np.maximum(np.round(rng.normal(mean, sd, (n, most))), 14)
    gap += np.where(rng.random((n, most)) < ASSESS_SKIP_SHARE, np.round(rng.normal(mean, sd, (n, most))), 0)
    first = -rng.integers(ASSESS_FIRST_DAYS[0], ASSESS_FIRST_DAYS[1] + 1, n)
    offset = first[:, None] + np.concatenate([np.zeros((n, 1)), np.cumsum(gap, axis=1)[:, :-1]], axis=1)
    keep = (offset <= ASSESS_UNTIL_DAYS) & (index[:, None] + offset <= last_day)
    who = np.repeat(np.arange(n), keep.sum(axis=1))
    return who, index[who] + offset[keep].astype(np.int64)


def _multiplier_table(who: np.ndarray, offset: np.ndarray, housed: np.ndarray, n: int) -> np.ndarray:
    """Per participant and day after index: HOUSED_ARREST_RATE_RATIO to the power of the number of
    assessments in the HOUSED_EFFECT_DAYS before that day (not on it) that found the person housed."""
    lo = -ASSESS_FIRST_DAYS[1] - 1                      # earliest assessment offset, less one
    width = SPAN_DAYS + HOUSED_EFFECT_DAYS - lo + 2
    steps = np.zeros((n, width))
    np.add.at(steps, (who[housed], offset[housed] + 1 - lo), 1.0)
    np.add.at(steps, (who[housed], offset[housed] + 1 + HOUSED_EFFECT_DAYS - lo), -1.0)
    housed_before = np.cumsum(steps, axis=1)[:, -lo:SPAN_DAYS - lo]
    return HOUSED_ARREST_RATE_RATIO ** np.rint(housed_before)


def _life(rng: np.random.Generator, P: _People, last_day: int) -> _Life:
    """The block's participants' assessments up to ``last_day``, their true statuses, and their
    arrest multipliers."""
    lead = np.flatnonzero(P.cohort == LEAD)
    k, day = _assessment_days(rng, P.index[lead], last_day)
    months = (day - P.index[lead][k]) / DAYS_PER_MONTH
    status = {}
    for name, (at_referral, per_month) in LIFE_LOGIT.items():
        person = rng.normal(0.0, LIFE_PERSON_SD, len(lead))
        p = 1 / (1 + np.exp(-(at_referral + per_month * months + person[k])))
        status[name] = rng.random(len(k)) < p
    row = np.full(P.n, -1, dtype=np.int64)
    row[lead] = np.arange(len(lead))
    table = _multiplier_table(k, day - P.index[lead][k], status["housed"], len(lead))
    return _Life(rng=rng, who=lead[k], day=day, months=months, housed=status["housed"],
                 employed=status["employed"], income=status["income"], row=row, table=table)


def _written(rng: np.random.Generator, yes: np.ndarray, sides: tuple[dict, dict]) -> np.ndarray:
    n = len(yes)
    return np.where(yes, _pick(rng, sides[0], n), _pick(rng, sides[1], n))


def _assessment_rows(L: _Life, ids) -> dict:
    """The rows the provider delivers: statuses as written (some 'unknown'), a few entered twice.

    ``ids(n)`` gives n new assessment numbers. Returns who, day and the three status columns,
    in day order.
    """
    rng = L.rng
    n = len(L.who)
    income = np.where(L.income, np.where(L.employed, _pick(rng, INCOME_WITH_WORK, n), "benefits"), "none")
    columns = {"housing_status": _written(rng, L.housed, HOUSING_STATUS),
               "employment_status": _written(rng, L.employed, EMPLOYMENT_STATUS),
               "income_source": income.astype(object)}
    for values in columns.values():
        values[rng.random(n) < UNKNOWN_STATUS_SHARE] = "unknown"
    twice = np.flatnonzero(rng.random(n) < DUPLICATE_ASSESSMENT_SHARE)
    take = np.sort(np.concatenate([np.arange(n), twice]), kind="stable")
    order = take[np.lexsort((L.who[take], L.day[take]))]
    return {"who": L.who[order], "day": L.day[order], "id": ids(len(order)),
            **{name: values[order] for name, values in columns.items()}}
