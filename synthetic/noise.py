"""How each agency writes people down: typos, nicknames, placeholders, relatives' and blank dates."""

from __future__ import annotations

import re
from datetime import date

import numpy as np

from leadhub.core.contracts import Contract
from synthetic.arrays import _ascii, _day, _map, _obj, _ymd
from synthetic.parameters import (
    AGENCY_STYLE, DUPLICATE_AGENCIES, DUPLICATE_ID_SHARE, NULL_DAY, PLACEHOLDER_FIRST,
    PLACEHOLDER_FIRST_BY_SEX, PLACEHOLDER_LAST, RETYPED_SHARE, VARIANT_RATES,
)
from synthetic.people import _People
from synthetic.world import _World


_LETTERS = "abcdefghijklmnopqrstuvwxyz"


def _typo(s: str, op: int, where: float, letter: int) -> str:
    """One keying error: substitution, transposition, deletion or insertion."""
    if len(s) < 3:
        return s
    i = int(where * len(s))
    c = _LETTERS[letter]
    if s[min(i, len(s) - 1)].isupper():
        c = c.upper()
    if op == 0:
        return s[:i] + (c if c.lower() != s[i].lower() else _LETTERS[(letter + 1) % 26]) + s[i + 1:]
    if op == 1:
        i = min(i, len(s) - 2)
        return s[:i] + s[i + 1] + s[i] + s[i + 2:]
    if op == 2:
        return s[:i] + s[i + 1:]
    return s[:i] + c + s[i:]


def _reformat(s: str, kind: int) -> str:
    """Meaningless spelling differences: punctuation dropped, all caps, lower case, stray spaces."""
    if kind == 0:
        return re.sub(r"['\-. ]", "", s) or s
    if kind == 1:
        return s.upper()
    if kind == 2:
        return s.lower()
    return s.replace(" ", "  ") if " " in s else s + " "


def _spell(rng: np.random.Generator, P: _People, who: np.ndarray) -> dict[str, np.ndarray]:
    """How one record of each person in ``who`` was typed, before the agency's own conventions."""
    n = len(who)
    first, last, dob = P.first[who].copy(), P.last[who].copy(), P.dob[who].copy()
    u = rng.random((8, n))
    r = VARIANT_RATES

    m = (u[0] < r["nickname"]) & P.nick[who].astype(bool)       # None is False
    first[m] = P.nick[who[m]]
    m = (u[1] < r["middle_initial"]) & P.middle[who].astype(bool)
    first[m] = first[m] + " " + P.middle[who[m]]
    for i in np.flatnonzero((u[2] < r["compound"]) & P.compound[who]):
        a, b = P.last[who[i]].split("-", 1)
        last[i] = (f"{a} {b}", a, b)[int(u[3][i] * 3)]

    typo = np.flatnonzero(u[4] < r["typo"])
    ops, where, letters = rng.integers(0, 4, len(typo)), rng.random(len(typo)), rng.integers(0, 26, len(typo))
    on_first = rng.random(len(typo)) < 0.5
    for i, op, x, c, f in zip(typo, ops, where, letters, on_first):
        if f:
            first[i] = _typo(first[i], op, x, c)
        else:
            last[i] = _typo(last[i], op, x, c)

    fmt = np.flatnonzero(u[5] < r["format"])
    kinds, on_first = rng.integers(0, 4, len(fmt)), rng.random(len(fmt)) < 0.3
    for i, k, f in zip(fmt, kinds, on_first):
        if f:
            first[i] = _reformat(first[i], k)
        else:
            last[i] = _reformat(last[i], k)

    m = u[6] < r["swap_names"]
    first[m], last[m] = last[m], first[m].copy()

    relative = P.relative[who]
    m = (rng.random(n) < r["household_dob"]) & (relative >= 0)
    dob[m] = P.dob[relative[m]]

    swap = np.flatnonzero(u[7] < r["swap_dob"])
    if len(swap):
        y, mo, d = _ymd(dob[swap])
        ok = (d <= 12) & (d != mo)
        dob[swap[ok]] = [_day(date(a, b, c)) for a, b, c in zip(y[ok].tolist(), d[ok].tolist(),
                                                                mo[ok].tolist())]

    # Placeholders last: they replace whatever was typed.
    v = rng.random((4, n))
    m = v[0] < r["initial_only"]
    first[m] = [f[0] for f in first[m]]
    m = np.flatnonzero(v[1] < r["placeholder_first"])
    # Drawn from PLACEHOLDER_FIRST plus one more choice, 'Baby Boy/Girl' by sex ('Unknown' for X).
    k = (v[2][m] * (len(PLACEHOLDER_FIRST) + 1)).astype(np.int64)
    pool = _obj(PLACEHOLDER_FIRST + ("",))[k]
    baby = k == len(PLACEHOLDER_FIRST)
    pool[baby] = [PLACEHOLDER_FIRST_BY_SEX.get(x, PLACEHOLDER_FIRST[0]) for x in P.sex[who[m[baby]]]]
    first[m] = pool
    m = v[3] < r["placeholder_last"]
    last[m] = _obj(PLACEHOLDER_LAST)[rng.integers(0, len(PLACEHOLDER_LAST), int(m.sum()))]

    ssn = P.ssn[who].copy()
    ssn[rng.random(n) < r["ssn_missing"]] = None
    return {"first_name": first, "last_name": last, "dob": dob, "ssn": ssn,
            "address": P.address[who].copy(), "phone": P.phone[who].copy(),
            "dob_missing": rng.random(n) < r["dob_missing"]}


def _styled(agency: str, spelled: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Apply an agency's fixed conventions to spelled records."""
    style = AGENCY_STYLE[agency]
    out = dict(spelled)

    def name(upper: bool):
        def fn(s: str) -> str:
            if style["ascii"]:
                s = _ascii(s)
            if upper:
                s = s.upper().replace("'", "")   # e.g. O'BRIEN keyed as OBRIEN
            return s
        return fn
    out["first_name"] = _map(spelled["first_name"], name(style["upper_first"]))
    out["last_name"] = _map(spelled["last_name"], name(style["upper_last"]))
    if style["ssn_dashes"]:
        out["ssn"] = _map(spelled["ssn"], lambda s: f"{s[:3]}-{s[3:5]}-{s[5:]}")
    address = spelled["address"].copy()
    address[~address.astype(bool)] = style["homeless"]
    out["address"] = _map(address, str.upper) if style["upper_address"] else address
    return out


def _identities(w: _World, rng: np.random.Generator, P: _People, agency: str, who: np.ndarray,
                day: np.ndarray, duplicate: np.ndarray) -> dict[str, np.ndarray]:
    """Per record: the agency's person number and how it wrote the person's identifiers.

    Each person the agency has seen gets one number (two for people in ``duplicate``, registered
    twice) and a master record; most records copy the master spelling, some were retyped.
    """
    people = np.unique(who)
    twice = people[duplicate[people]]
    registered = np.concatenate([people, twice])
    ids = w.person_ids_for(agency, len(registered))
    reg = np.searchsorted(people, who)
    if len(twice):
        rows = np.flatnonzero(duplicate[who])
        rows = rows[np.lexsort((day[rows], who[rows]))]
        use_second = rng.random(len(rows)) < 0.5
        starts = np.flatnonzero(np.r_[True, who[rows][1:] != who[rows][:-1]])
        ends = np.r_[starts[1:], len(rows)] - 1
        use_second[starts] = False                      # the first record made the first number
        none_second = ~np.logical_or.reduceat(use_second, starts)
        use_second[ends[none_second]] = True            # and a later one made the second
        reg[rows[use_second]] = len(people) + np.searchsorted(twice, who[rows[use_second]])

    master = _spell(rng, P, registered)
    record = {k: v[reg] for k, v in master.items()}
    retyped = np.flatnonzero(rng.random(len(who)) < RETYPED_SHARE)
    fresh = _spell(rng, P, who[retyped])
    for k in record:
        record[k][retyped] = fresh[k]
    out = _styled(agency, record)
    out["agency_person_id"] = ids[reg]
    return out


def _recorded(rng: np.random.Generator, values: np.ndarray, rate: float) -> np.ndarray:
    """A demographic as an agency recorded it: sometimes UNKNOWN."""
    out = values.copy()
    out[rng.random(len(out)) < rate] = "UNKNOWN"
    return out


def _duplicates(rng: np.random.Generator, P: _People, who_by_agency: dict[str, np.ndarray]) -> dict:
    """Who is registered twice, and where: one agency among those with 2+ of their records."""
    counts = np.stack([np.bincount(who_by_agency[a], minlength=P.n) for a in DUPLICATE_AGENCIES], axis=1)
    possible = counts >= 2
    twice = possible.any(axis=1) & (rng.random(P.n) < DUPLICATE_ID_SHARE)
    choice = np.argmax(np.where(possible, rng.random(possible.shape), -1), axis=1)
    return {a: twice & (choice == k) for k, a in enumerate(DUPLICATE_AGENCIES)}


def _blank_dobs(contract: Contract, ident: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Birth dates left blank, in the extracts whose contract lets them be (others require one)."""
    column = contract.role("dob")
    if column is None or not column.nullable or "dob_missing" not in ident:
        return ident
    return {**ident, "dob": np.where(ident["dob_missing"], NULL_DAY, ident["dob"])}
