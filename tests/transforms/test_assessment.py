"""core.assessment: case managers' assessments, joined to a person only under active consent."""

from __future__ import annotations

from datetime import date

from expectations.build_checks import ASSESSMENT_CLIENT_KNOWN, build_checks
from tests.transforms.conftest import token


def _assessment(w, person: str, on: date, housing: str, employment: str = "unemployed",
                income: str = "none") -> str:
    aid = f"V{next(w.ids):07d}"
    w.add("treatment_assessments", assessment_id=aid, person_token=token("treatment", person),
          assessment_date=on, housing_status=housing, employment_status=employment, income_source=income)
    return aid


def test_assessments_carry_a_person_only_under_active_consent(warehouse):
    w = warehouse
    w.client("yes", "active")
    w.client("no", "revoked", link=True)      # a stale link must not leak the records
    w.client("never", "none")
    yes = _assessment(w, "yes", date(2022, 2, 1), "permanent", "part_time", "both")
    no = _assessment(w, "no", date(2022, 2, 1), "street")
    never = _assessment(w, "never", date(2022, 2, 2), "shelter")
    w.run()
    rows = {r["assessment_id"]: r for r in w.rows("SELECT * FROM core.assessment")}
    assert set(rows) == {yes, no, never}
    assert rows[yes] == {"assessment_id": yes, "person_key": "pk-yes", "assessment_date": date(2022, 2, 1),
                         "housing_status": "permanent", "employment_status": "part_time",
                         "income_source": "both"}
    assert rows[no]["person_key"] is None and rows[never]["person_key"] is None
    assert rows[no]["housing_status"] == "street"      # counted in aggregates, tied to nobody


def test_build_check_counts_assessments_of_clients_the_provider_never_listed(warehouse):
    w = warehouse
    w.client("yes", "active")
    w.client("no", "revoked")
    _assessment(w, "yes", date(2022, 2, 1), "street")
    _assessment(w, "no", date(2022, 2, 1), "street")     # listed, without consent: known
    _assessment(w, "ghost", date(2022, 3, 1), "shelter")  # in no clients delivery
    w.run()
    [result] = [r for r in build_checks(w.con) if r["expectation"] == ASSESSMENT_CLIENT_KNOWN]
    # 3 assessments, 1 of a client missing from core.consent
    assert (result["contract"], result["success"]) == ("core.assessment", False)
    assert result["observed"] == "unexpected 1 of 3 rows, 33.3%"
