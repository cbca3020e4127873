"""True people of one block: names, nicknames, SSNs, addresses, households and twins, cohort draws."""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache

import numpy as np
from nicknames import NickNamer

from synthetic.arrays import _age, _obj, _pick, _zipf
from synthetic.parameters import (
    AREA_CODES, ARREST_SPREAD, COMPARISON, COMPOUND_SURNAME, EXTRA_REARRESTS_MEAN, FEMALE_NAMES,
    HISPANIC_SHARE, HISPANIC_SURNAMES, HOMELESS_SHARE, HOUSEHOLD_SHARE, LEAD, MALE_NAMES, MEAN_ARRESTS,
    MIDDLE_INITIAL_SHARE, MIDDLE_INITIALS, NONE, NULL_DAY, PHONE_SHARE, PRIOR_ARRESTS_P, RACE_P, SEX_P,
    SHELTER_SHARE, SHELTERS, SSN_SPACE, STREET_DIRECTIONS, STREET_SUFFIXES, STREETS, SURNAMES,
    TWIN_SHARE,
)
from synthetic.world import _draw_dob, _draw_index, _logit, _World


@cache
def _nicknames() -> dict[str, tuple[str, ...]]:
    """Given name -> its nicknames in the ``nicknames`` dataset, title-cased and sorted (so a
    draw by index is the same on every machine). Names the dataset does not know have none."""
    namer = NickNamer()
    out = {}
    for name in set(MALE_NAMES) | set(FEMALE_NAMES):
        nicks = sorted(n.title() for n in namer.nicknames_of(name) if n.lower() != name.lower())
        if nicks:
            out[name] = tuple(nicks)
    return out


def _draw_nicknames(rng: np.random.Generator, first: np.ndarray) -> np.ndarray:
    """Each person's one nickname (None when the dataset has none for the given name)."""
    table = _nicknames()
    u = rng.random(len(first))
    out = np.full(len(first), None, dtype=object)
    for i, name in enumerate(first.tolist()):
        nicks = table.get(name)
        if nicks:
            out[i] = nicks[int(u[i] * len(nicks))]
    return out


@dataclass
class _People:
    gid: np.ndarray            # global person number (0-based); true_person_id is T + gid + 1
    cohort: np.ndarray
    sex: np.ndarray
    race: np.ndarray
    ethnicity: np.ndarray
    dob: np.ndarray
    first: np.ndarray
    nick: np.ndarray           # nickname or None
    relative: np.ndarray       # index (in the block) of the relative living with them, or -1
    middle: np.ndarray         # middle initial or None
    last: np.ndarray
    compound: np.ndarray       # bool: surname is 'A-B'
    ssn: np.ndarray            # nine digits
    address: np.ndarray        # None for people without a fixed address
    phone: np.ndarray
    home: np.ndarray           # usual precinct (index into World.precincts)
    rate: np.ndarray           # expected background arrests over the data period
    index: np.ndarray          # index day, NULL_DAY for cohort none
    age_at_index: np.ndarray
    prior: np.ndarray          # arrests in the 365 days before index
    after: np.ndarray          # arrests in the 365 days after index

    @property
    def n(self) -> int:
        return len(self.gid)


def _names(rng: np.random.Generator, sex: np.ndarray, hispanic: np.ndarray) -> tuple:
    n = len(sex)
    male, female = _obj(MALE_NAMES), _obj(FEMALE_NAMES)
    as_male = (sex == "M") | ((sex == "X") & (rng.random(n) < 0.5))
    first = np.where(as_male, male[rng.choice(len(male), n, p=_zipf(len(male)))],
                     female[rng.choice(len(female), n, p=_zipf(len(female)))])
    general, hisp = _obj(SURNAMES), _obj(HISPANIC_SURNAMES)
    from_hisp = hispanic & (rng.random(n) < 0.8)

    def surname():
        return np.where(from_hisp, hisp[rng.choice(len(hisp), n, p=_zipf(len(hisp)))],
                        general[rng.choice(len(general), n, p=_zipf(len(general)))])
    last, second = surname(), surname()
    compound = (rng.random(n) < np.where(hispanic, COMPOUND_SURNAME["hispanic"], COMPOUND_SURNAME["other"]))
    compound &= last != second
    last = np.where(compound, last + "-" + second, last)
    middle = np.where(rng.random(n) < MIDDLE_INITIAL_SHARE,
                      _obj(MIDDLE_INITIALS)[rng.integers(0, len(MIDDLE_INITIALS), n)], None)
    return first.astype(object), middle.astype(object), last.astype(object), compound


def _ssns(w: _World, gid: np.ndarray) -> np.ndarray:
    """Distinct, valid-looking SSNs: a scrambled person number spread over areas, groups, serials."""
    a, b = w.ssn_scramble
    v = (gid.astype(object) * a + b) % SSN_SPACE     # Python ints: a * gid can exceed int64
    v = np.array(v.tolist(), dtype=np.int64)
    area = v // (99 * 9999)
    area = np.where(area < 665, area + 1, area + 2)  # skip 000 and 666
    group = (v // 9999) % 99 + 1
    serial = v % 9999 + 1
    return _obj(f"{x:03d}{y:02d}{z:04d}" for x, y, z in zip(area.tolist(), group.tolist(), serial.tolist()))


def _addresses(rng: np.random.Generator, n: int) -> tuple[np.ndarray, np.ndarray]:
    """(address or None, housed flag); shelters are shared by many people, as in life."""
    kind = rng.choice(3, size=n, p=(1 - HOMELESS_SHARE - SHELTER_SHARE, HOMELESS_SHARE, SHELTER_SHARE))
    number = rng.integers(100, 20000, n)
    street = rng.integers(0, len(STREETS), n)
    suffix = rng.integers(0, len(STREET_SUFFIXES), n)
    direction = rng.integers(0, len(STREET_DIRECTIONS), n)
    apt = np.where(rng.random(n) < 0.25, rng.integers(1, 400, n), 0)
    shelter = rng.integers(0, len(SHELTERS), n)
    out = np.empty(n, dtype=object)
    for i in range(n):
        if kind[i] == 0:
            unit = f" Apt {apt[i]}" if apt[i] else ""
            out[i] = (f"{number[i]} {STREET_DIRECTIONS[direction[i]]}{STREETS[street[i]]} "
                      f"{STREET_SUFFIXES[suffix[i]]}{unit}")
        elif kind[i] == 2:
            out[i] = SHELTERS[shelter[i]]
    return out, kind == 0


def _people(w: _World, rng: np.random.Generator, g0: int, n: int) -> _People:
    gid = np.arange(g0, g0 + n, dtype=np.int64)
    cohort = w.cohort[g0:g0 + n].copy()
    sex = _pick(rng, SEX_P, n)
    race = _pick(rng, RACE_P, n)
    hispanic = rng.random(n) < HISPANIC_SHARE
    dob = _draw_dob(rng, n)
    first, middle, last, compound = _names(rng, sex, hispanic)
    address, housed = _addresses(rng, n)
    phone = _obj(f"{AREA_CODES[a]}-{x}-{y:04d}" for a, x, y in zip(
        rng.integers(0, len(AREA_CODES), n), rng.integers(200, 1000, n), rng.integers(0, 10000, n)))
    phone[rng.random(n) >= PHONE_SHARE] = None

    # Households: a relative shares the surname, address (and often the phone), never the given name.
    pairs = int(round(n * HOUSEHOLD_SHARE / 2))
    candidates = np.flatnonzero(housed)
    pairs = min(pairs, len(candidates) // 2)
    chosen = rng.permutation(candidates)[:2 * pairs]
    heads, relatives = chosen[:pairs], chosen[pairs:]
    relative = np.full(n, -1, dtype=np.int64)
    relative[heads], relative[relatives] = relatives, heads
    twin = rng.random(pairs)
    for h, r, t in zip(heads, relatives, twin):
        last[r], compound[r], address[r] = last[h], compound[h], address[h]
        race[r], hispanic[r] = race[h], hispanic[h]
        if t < 0.5:
            phone[r] = phone[h]
        if t < TWIN_SHARE:
            dob[r] = dob[h]
        pool = MALE_NAMES if sex[r] == "M" else FEMALE_NAMES
        k = int(t * 1e6)
        while first[r] == first[h]:
            first[r] = pool[k % len(pool)]
            k += 7
    ethnicity = np.where(hispanic, "HISPANIC", "NON_HISPANIC").astype(object)

    home = np.where(cohort == LEAD, rng.choice(w.lead_precincts, n),
                    np.where(cohort == COMPARISON, rng.choice(w.comparison_precincts, n),
                             rng.choice(len(w.precincts), n, p=w.precinct_p)))
    rate = rng.gamma(ARREST_SPREAD, MEAN_ARRESTS / ARREST_SPREAD, n)

    index = np.where(cohort != NONE, _draw_index(rng, w, cohort), NULL_DAY)
    in_cohort = cohort != NONE
    age = np.zeros(n, dtype=np.int64)
    age[in_cohort] = _age(dob[in_cohort], index[in_cohort])
    prior = np.zeros(n, dtype=np.int64)
    for c in (LEAD, COMPARISON):
        m = cohort == c
        prior[m] = rng.choice(5, size=int(m.sum()), p=PRIOR_ARRESTS_P[c])
    p = 1 / (1 + np.exp(-_logit(w.intercept, prior, age, sex == "M", cohort == LEAD)))
    any_after = in_cohort & (rng.random(n) < p)
    after = np.where(any_after, 1 + rng.poisson(EXTRA_REARRESTS_MEAN, n), 0)

    nick = _draw_nicknames(rng, first)
    return _People(gid=gid, cohort=cohort, sex=sex, race=race, ethnicity=ethnicity, dob=dob,
                   first=first, nick=nick, relative=relative, middle=middle, last=last,
                   compound=compound,
                   ssn=_ssns(w, gid), address=address, phone=phone, home=home, rate=rate,
                   index=index, age_at_index=age, prior=prior, after=after)
