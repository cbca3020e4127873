"""What happens to people: arrests, bookings, prosecutor cases, LEAD referrals and treatment."""

from __future__ import annotations

import math

import numpy as np

from synthetic.arrays import _expand, _obj, _pick, _seq
from synthetic.life import _Life
from synthetic.parameters import (
    BOOKED_SHARE, CHARGES_P, CLIENT_SOURCES, COMPARISON, CONSENT, CONTACTS_PER_DAY, DECISION_P,
    DECISION_P_LEAD, DECISIONS, DISPOSITION_P, DISPOSITIONS, EXIT_REASONS, EXTRA_BOOKINGS, EXTRA_CASES,
    FOLLOW_UP_DAYS, HOME_PRECINCT_SHARE, LEAD, NONE, NULL_DAY, OTHER_CLIENTS, PROSECUTOR_SHARE,
    REFERRAL_CATEGORY, REFERRAL_TYPES, SECOND_REFERRAL_SHARE, SERVICE_TYPES,
)
from synthetic.people import _People
from synthetic.world import _World


def _housed_days(L: _Life, who: np.ndarray) -> np.ndarray:
    """Days 1..FOLLOW_UP_DAYS after index for the after-index arrests of participants, drawn with
    density proportional to their arrest-hazard multiplier (lower while housed)."""
    days = np.arange(1, FOLLOW_UP_DAYS + 1)
    weight = L.table[:, days]
    cumulative = np.cumsum(weight, axis=1)
    row = L.row[who]
    # One increasing scale over all rows: row r's days occupy (base[r], base[r] + total[r]].
    base = np.concatenate([[0.0], np.cumsum(cumulative[:, -1])[:-1]])
    target = base[row] + L.rng.random(len(who)) * cumulative[row, -1]
    position = np.searchsorted((cumulative + base[:, None]).ravel(), target, side="right")
    return days[np.clip(position - row * FOLLOW_UP_DAYS, 0, FOLLOW_UP_DAYS - 1)]


def _arrests(w: _World, rng: np.random.Generator, P: _People, L: _Life) -> dict:
    """Arrests (one entry each, sorted by date) and their charges.

    The participants' arrests after index are where being housed acts: the planted number in the
    follow-up year (``P.after``, from the re-arrest model) is kept and only placed by the hazard
    multiplier, and background arrests past that year are thinned by it.
    """
    n, total = P.n, w.d1 - w.d0 + 1
    cohort = P.cohort != NONE
    index = np.where(cohort, P.index, 0)
    # Background arrests avoid the year either side of a cohort person's index date, where the
    # prior and outcome arrests below are placed; so their counts are exactly as drawn.
    band_start = np.where(cohort, index - FOLLOW_UP_DAYS, w.d1 + 1)
    band = np.where(cohort, 2 * FOLLOW_UP_DAYS + 1, 0)
    before_band = band_start - w.d0
    outside = total - band
    count = rng.poisson(P.rate * outside / total)
    who_bg = np.repeat(np.arange(n), count)
    u = np.floor(rng.random(len(who_bg)) * outside[who_bg]).astype(np.int64)
    after_band = band_start[who_bg] + band[who_bg] + (u - before_band[who_bg])
    day_bg = np.where(u < before_band[who_bg], w.d0 + u, after_band)
    kept = L.rng.random(len(who_bg)) < L.multiplier(who_bg, day_bg, P.index)
    who_bg, day_bg = who_bg[kept], day_bg[kept]

    who_prior = np.repeat(np.arange(n), P.prior)
    day_prior = P.index[who_prior] - rng.integers(1, FOLLOW_UP_DAYS + 1, len(who_prior))
    who_after = np.repeat(np.arange(n), P.after)
    day_after = P.index[who_after] + rng.integers(1, FOLLOW_UP_DAYS + 1, len(who_after))
    placed = L.row[who_after] >= 0
    day_after[placed] = P.index[who_after[placed]] + _housed_days(L, who_after[placed])
    who_index = np.flatnonzero(P.cohort == COMPARISON)

    who = np.concatenate([who_bg, who_prior, who_after, who_index])
    day = np.concatenate([day_bg, day_prior, day_after, P.index[who_index]])
    is_index = np.zeros(len(who), dtype=bool)
    is_index[len(who) - len(who_index):] = True
    order = np.lexsort((who, day))
    who, day, is_index = who[order], day[order], is_index[order]
    na = len(who)

    precinct = np.where(is_index | (rng.random(na) < HOME_PRECINCT_SHARE), P.home[who],
                        rng.choice(len(w.precincts), na, p=w.precinct_p))
    n_charges = rng.choice(len(CHARGES_P), size=na, p=CHARGES_P) + 1
    arrest_of = np.repeat(np.arange(na), n_charges)
    seq = _seq(n_charges)
    code = rng.choice(len(w.offenses.codes), size=len(arrest_of), p=w.code_p)
    lead_charge = is_index[arrest_of] & (seq == 1)
    code[lead_charge] = rng.choice(w.eligible_codes, size=int(lead_charge.sum()), p=w.eligible_p)
    # The cohort rule: only comparison people, from their index date on, have LEAD-eligible
    # arrests in comparison precincts inside the program window.
    restricted = (w.is_comparison_precinct[precinct] & (day >= w.p0) & (day <= w.p1)
                  & ~((P.cohort[who] == COMPARISON) & (day >= P.index[who])))
    fix = restricted[arrest_of] & w.offenses.eligible[code]
    code[fix] = rng.choice(w.other_codes, size=int(fix.sum()), p=w.other_p)

    return {"who": who, "day": day, "precinct": precinct, "n_charges": n_charges,
            "first_charge": np.cumsum(n_charges) - n_charges, "code": code, "seq": seq,
            "id": w.record_ids("arrest", na)}


def _bookings(w: _World, rng: np.random.Generator, P: _People, A: dict) -> dict:
    """Jail bookings: most arrests, same day; plus warrant and other-agency bookings."""
    na = len(A["who"])
    booked = np.flatnonzero(rng.random(na) < BOOKED_SHARE)
    n_extra = int(rng.binomial(len(booked), EXTRA_BOOKINGS))
    arrests_per_person = np.bincount(A["who"], minlength=P.n) + 0.5
    who_extra = rng.choice(P.n, size=n_extra, p=arrests_per_person / arrests_per_person.sum())
    day_extra = rng.integers(w.d0, w.d1 + 1, n_extra)
    day_extra = np.where(day_extra == P.index[who_extra], day_extra + 1, day_extra)
    n_extra_charges = rng.choice(2, size=n_extra, p=(0.7, 0.3)) + 1
    extra_code = rng.choice(len(w.offenses.codes), size=int(n_extra_charges.sum()), p=w.warrant_p)

    who = np.concatenate([A["who"][booked], who_extra])
    day = np.concatenate([A["day"][booked], day_extra])
    arrest = np.concatenate([booked, np.full(n_extra, -1)])
    n_charges = np.concatenate([A["n_charges"][booked], n_extra_charges])
    code_pool = np.concatenate([A["code"], extra_code])
    code_start = np.concatenate([A["first_charge"][booked],
                                 len(A["code"]) + np.cumsum(n_extra_charges) - n_extra_charges])
    nb = len(who)
    booked_at = day * 1440 + rng.integers(0, 1440, nb)

    r = rng.random(nb)
    stay = np.where(r < 0.45, 0, np.where(r < 0.85, np.minimum(rng.geometric(0.15, nb), 30),
                                           np.minimum(31 + rng.exponential(25, nb).astype(np.int64), 120)))
    released_at = booked_at + stay * 1440 + rng.integers(60, 601, nb)
    late = released_at // 1440 > w.d1
    recent = day > w.d1 - 30
    # Only people booked in the last 30 days may still be in custody when the data ends.
    released_at = np.where(late & ~recent, w.d1 * 1440 + rng.integers(8 * 60, 18 * 60, nb), released_at)
    released_at = np.where(late & recent, NULL_DAY, released_at)

    order = np.lexsort((who, booked_at))
    who, day, arrest, n_charges, code_start, booked_at, released_at = (
        x[order] for x in (who, day, arrest, n_charges, code_start, booked_at, released_at))
    return {"who": who, "day": day, "booked_at": booked_at, "released_at": released_at,
            "arrest": arrest, "n_charges": n_charges, "code": code_pool[_expand(code_start, n_charges)],
            "seq": _seq(n_charges), "id": w.record_ids("booking", nb)}


def _cases(w: _World, rng: np.random.Generator, P: _People, A: dict) -> dict:
    """Prosecutor referrals: most arrests a few days later, plus some cases without an arrest."""
    na = len(A["who"])
    referred = np.flatnonzero(rng.random(na) < PROSECUTOR_SHARE)
    ref_day = A["day"][referred] + rng.integers(1, 11, len(referred))
    keep = ref_day <= w.d1
    referred, ref_day = referred[keep], ref_day[keep]
    n_extra = int(rng.binomial(len(referred), EXTRA_CASES))
    arrests_per_person = np.bincount(A["who"], minlength=P.n) + 0.5
    who_extra = rng.choice(P.n, size=n_extra, p=arrests_per_person / arrests_per_person.sum())
    n_extra_charges = rng.choice(2, size=n_extra, p=(0.8, 0.2)) + 1
    extra_code = rng.choice(len(w.offenses.codes), size=int(n_extra_charges.sum()), p=w.code_p)

    who = np.concatenate([A["who"][referred], who_extra])
    day = np.concatenate([ref_day, rng.integers(w.d0, w.d1 + 1, n_extra)])
    arrest = np.concatenate([referred, np.full(n_extra, -1)])
    n_charges = np.concatenate([A["n_charges"][referred], n_extra_charges])
    code_start = np.concatenate([A["first_charge"][referred],
                                 len(A["code"]) + np.cumsum(n_extra_charges) - n_extra_charges])
    order = np.lexsort((who, day))
    who, day, arrest, n_charges, code_start = (x[order] for x in (who, day, arrest, n_charges, code_start))
    nc = len(who)
    case_of = np.repeat(np.arange(nc), n_charges)
    code = np.concatenate([A["code"], extra_code])[_expand(code_start, n_charges)]

    lead_after = (P.cohort[who] == LEAD) & (day > P.index[who])
    p = np.where(lead_after[case_of, None], DECISION_P_LEAD, DECISION_P)
    decision = np.minimum((rng.random(len(case_of))[:, None] > np.cumsum(p, axis=1)).sum(axis=1),
                          len(DECISIONS) - 1)
    decided_on = (day + rng.integers(0, 46, nc))[case_of]
    decision = np.where(decided_on > w.d1, DECISIONS.index("pending"), decision)
    pending = decision == DECISIONS.index("pending")
    filed = decision == DECISIONS.index("filed")
    disposition = rng.choice(len(DISPOSITIONS), size=len(case_of), p=DISPOSITION_P)
    disposed_on = decided_on + rng.integers(14, 401, len(case_of))
    disposition = np.where(disposed_on > w.d1, DISPOSITIONS.index("pending"), disposition)
    disposition_pending = disposition == DISPOSITIONS.index("pending")
    return {
        "who": who, "day": day, "arrest": arrest, "n_charges": n_charges, "code": code,
        "seq": _seq(n_charges), "id": w.record_ids("case", nc),
        "decision": _obj(DECISIONS)[decision],
        "decision_date": np.where(pending, NULL_DAY, decided_on),
        "disposition": np.where(filed, _obj(DISPOSITIONS)[disposition], None),
        "disposition_date": np.where(filed & ~disposition_pending, disposed_on, NULL_DAY),
    }


def _referrals(w: _World, rng: np.random.Generator, P: _People) -> dict:
    """LEAD referrals: the first on the index date, sometimes a second later in the window."""
    lead = np.flatnonzero(P.cohort == LEAD)
    second = lead[rng.random(len(lead)) < SECOND_REFERRAL_SHARE]
    second_day = P.index[second] + rng.integers(14, 301, len(second))
    second, second_day = second[second_day <= w.p1], second_day[second_day <= w.p1]
    who = np.concatenate([lead, second])
    day = np.concatenate([P.index[lead], second_day])
    order = np.lexsort((who, day))
    who, day = who[order], day[order]
    nr = len(who)
    kind = _pick(rng, REFERRAL_TYPES, nr)
    category = np.empty(nr, dtype=object)
    for t, p in REFERRAL_CATEGORY.items():
        m = kind == t
        category[m] = _pick(rng, p, int(m.sum()))
    precinct = np.where(rng.random(nr) < 0.85, P.home[who], rng.choice(w.lead_precincts, nr))
    return {"who": who, "day": day, "type": kind, "category": category, "precinct": precinct,
            "officer": w.officers[rng.integers(0, len(w.officers), nr)], "id": w.record_ids("referral", nr)}


def _treatment(w: _World, rng: np.random.Generator, P: _People) -> dict:
    """Every LEAD participant becomes a case-management client; a few others come on their own."""
    lead = P.cohort == LEAD
    who = np.flatnonzero(lead | ((P.cohort == NONE) & (rng.random(P.n) < OTHER_CLIENTS)))
    n = len(who)
    is_lead = lead[who]
    wait = np.clip(np.round(rng.lognormal(math.log(14), 0.6, n)), 3, 60).astype(np.int64)
    intake = np.where(is_lead, P.index[who] + wait, rng.integers(w.d0, w.d1 - 30, n))
    source = np.where(is_lead, "lead", _pick(rng, CLIENT_SOURCES, n)).astype(object)
    exit_day = intake + 30 + rng.exponential(420, n).astype(np.int64)
    exited = exit_day <= w.d1
    exit_reason = np.where(exited, _pick(rng, EXIT_REASONS, n), None)
    order = np.lexsort((who, intake))
    who, intake, source, exit_day, exited, exit_reason = (
        x[order] for x in (who, intake, source, exit_day, exited, exit_reason))

    consent = _pick(rng, CONSENT, n)
    consent_day = intake.copy()
    revoked = consent == "revoked"
    consent_day[revoked] = intake[revoked] + rng.integers(30, 400, int(revoked.sum()))
    expired = consent == "expired"
    consent_day[expired] = intake[expired] + 365
    too_late = (revoked | expired) & (consent_day > w.d1)   # not happened yet: still active
    consent[too_late], consent_day[too_late] = "active", intake[too_late]

    open_until = np.where(exited, exit_day, w.d1)
    engagement = rng.gamma(2.0, 0.5, n)
    n_contacts = rng.poisson(CONTACTS_PER_DAY * engagement * (open_until - intake + 1))
    episode_of = np.repeat(np.arange(n), n_contacts)
    span = (open_until - intake + 1)[episode_of]
    contact_day = intake[episode_of] + np.floor(rng.random(len(episode_of)) * span).astype(np.int64)
    corder = np.lexsort((episode_of, contact_day))
    episode_of, contact_day = episode_of[corder], contact_day[corder]
    return {
        "who": who, "intake": intake, "source": source, "exit": np.where(exited, exit_day, NULL_DAY),
        "exit_reason": exit_reason, "consent": consent, "consent_day": consent_day,
        "episode_id": w.record_ids("episode", n),
        "contact_episode": episode_of, "contact_day": contact_day,
        "service": _pick(rng, SERVICE_TYPES, len(episode_of)),
        "contact_id": w.record_ids("contact", len(episode_of)),
    }
