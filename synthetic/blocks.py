"""One block of people turned into rows per contract, with the true person behind each row."""

from __future__ import annotations

import numpy as np

from synthetic.events import _arrests, _bookings, _cases, _referrals, _treatment
from synthetic.life import _assessment_rows, _life
from synthetic.noise import _blank_dobs, _duplicates, _identities, _recorded
from synthetic.parameters import VARIANT_RATES
from synthetic.people import _People, _people
from synthetic.world import _World


def _ids_or_none(ids: np.ndarray, position: np.ndarray) -> np.ndarray:
    """ids[position], and None where position is -1 (a booking or case with no arrest)."""
    out = np.full(len(position), None, dtype=object)
    out[position >= 0] = ids[position[position >= 0]]
    return out


def _block(w: _World, b: int, g0: int, n: int) -> tuple[dict, _People, dict]:
    """Generate block ``b``: the ``n`` people from global number ``g0``, drawing from the block's own
    random stream; returns rows per contract, the people, and the events."""
    rng = np.random.default_rng([w.seed, 1, b])
    P = _people(w, rng, g0, n)
    L = _life(np.random.default_rng([w.seed, 3, b]), P, w.d1)
    A = _arrests(w, rng, P, L)
    J = _bookings(w, rng, P, A)
    K = _cases(w, rng, P, A)
    R = _referrals(w, rng, P)
    T = _treatment(w, rng, P)
    off = w.offenses

    police_who = np.concatenate([R["who"], A["who"]])
    dup = _duplicates(rng, P, {"police": police_who, "jail": J["who"], "prosecutor": K["who"]})
    police = _identities(w, rng, P, "police", police_who, np.concatenate([R["day"], A["day"]]),
                         dup["police"])
    jail = _identities(w, rng, P, "jail", J["who"], J["day"], dup["jail"])
    prosecutor = _identities(w, rng, P, "prosecutor", K["who"], K["day"], dup["prosecutor"])
    treatment = _identities(w, rng, P, "treatment", T["who"], T["intake"], np.zeros(P.n, dtype=bool))
    nr = len(R["who"])
    referral_ident = {k: v[:nr] for k, v in police.items()}
    arrest_ident = {k: v[nr:] for k, v in police.items()}

    def per_charge(ident: dict, n_charges: np.ndarray) -> dict:
        return {k: np.repeat(v, n_charges) for k, v in ident.items()}

    def demographics(who: np.ndarray) -> dict:
        return {"sex": P.sex[who], "race": _recorded(rng, P.race[who], VARIANT_RATES["race_unknown"]),
                "ethnicity": _recorded(rng, P.ethnicity[who], VARIANT_RATES["ethnicity_unknown"])}

    rows = {}
    rows["police_referrals"] = (referral_ident, {
        "referral_id": R["id"], **demographics(R["who"]), "referral_date": R["day"],
        "referral_type": R["type"], "offense_category": R["category"],
        "precinct": w.precincts[R["precinct"]], "officer_id": R["officer"]}, R["who"])

    arrest_of = np.repeat(np.arange(len(A["who"])), A["n_charges"])
    arrest_demo = {k: v[arrest_of] for k, v in demographics(A["who"]).items()}
    rows["police_arrests"] = (per_charge(arrest_ident, A["n_charges"]), {
        "arrest_id": A["id"][arrest_of], "charge_seq": A["seq"], **arrest_demo,
        "arrest_date": A["day"][arrest_of], "precinct": w.precincts[A["precinct"]][arrest_of],
        "offense_code": off.codes[A["code"]], "severity": off.severity[A["code"]]}, A["who"][arrest_of])

    booking_of = np.repeat(np.arange(len(J["who"])), J["n_charges"])
    arrest_id = _ids_or_none(A["id"], J["arrest"])
    booking_demo = {k: v[booking_of] for k, v in demographics(J["who"]).items()}
    rows["jail_bookings"] = (per_charge(jail, J["n_charges"]), {
        "booking_id": J["id"][booking_of], "charge_seq": J["seq"], **booking_demo,
        "booking_ts": J["booked_at"][booking_of], "release_ts": J["released_at"][booking_of],
        "arrest_id": arrest_id[booking_of], "offense_code": off.codes[J["code"]],
        "severity": off.severity[J["code"]]}, J["who"][booking_of])

    case_of = np.repeat(np.arange(len(K["who"])), K["n_charges"])
    case_arrest = _ids_or_none(A["id"], K["arrest"])
    rows["prosecutor_cases"] = (per_charge(prosecutor, K["n_charges"]), {
        "case_id": K["id"][case_of], "charge_seq": K["seq"], "arrest_id": case_arrest[case_of],
        "referral_date": K["day"][case_of], "offense_code": off.codes[K["code"]],
        "severity": off.severity[K["code"]], "decision": K["decision"],
        "decision_date": K["decision_date"], "disposition": K["disposition"],
        "disposition_date": K["disposition_date"]}, K["who"][case_of])

    rows["treatment_clients"] = (treatment, {
        "sex": P.sex[T["who"]], "consent_status": T["consent"], "consent_date": T["consent_day"]}, T["who"])
    rows["treatment_episodes"] = ({"agency_person_id": treatment["agency_person_id"]}, {
        "episode_id": T["episode_id"], "intake_date": T["intake"], "referral_source": T["source"],
        "exit_date": T["exit"], "exit_reason": T["exit_reason"]}, T["who"])
    ce = T["contact_episode"]
    rows["treatment_contacts"] = ({"agency_person_id": treatment["agency_person_id"][ce]}, {
        "contact_id": T["contact_id"], "contact_date": T["contact_day"], "service_type": T["service"]},
        T["who"][ce])
    client_of = np.full(P.n, None, dtype=object)
    client_of[T["who"]] = treatment["agency_person_id"]
    V = _assessment_rows(L, lambda k: w.record_ids("assessment", k))
    rows["treatment_assessments"] = ({"agency_person_id": client_of[V["who"]]}, {
        "assessment_id": V["id"], "assessment_date": V["day"], "housing_status": V["housing_status"],
        "employment_status": V["employment_status"], "income_source": V["income_source"]}, V["who"])
    for name, (ident, plain, who) in rows.items():
        rows[name] = (_blank_dobs(w.contracts[name], ident), plain, who)
    return rows, P, {"arrests": A, "bookings": J, "referrals": R, "life": L}
