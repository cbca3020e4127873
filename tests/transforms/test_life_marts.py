"""The life-outcome marts (transforms/sql/85_marts_life_outcomes.sql) on a hand-worked warehouse."""

from __future__ import annotations

from datetime import date

from transforms.report.life_outcomes import CARRY_FORWARD_MONTHS, STATUS_MAX_DAYS


def assess(wh, person: str, on: date, housing: str, employment: str, income: str) -> None:
    wh.add("treatment_assessments", assessment_id=f"V{on:%m%d}{person}",
           person_token=f"tok-treatment-{person}", assessment_date=on, housing_status=housing,
           employment_status=employment, income_source=income)


def build(wh):
    """Three LEAD participants; c has revoked consent, so none of c's records reach a person.

    a: referred 2023-01-10; months since referral start on the 10th (m=-1 from 2022-12-10).
       assessed 01-10 (reports on 01-09: month -1) street, unemployed, none;
                02-15 (02-14: month 1) transitional, part_time, employment;
                06-01 (05-31: month 4) permanent, full_time, both.
    b: referred 2023-01-20; months start on the 20th.
       assessed 01-05 (month -1) shelter, unemployed, benefits;
                01-25 (month 0) street, unknown, benefits.
    c: referred 2023-02-01; assessed 02-10, but without consent: no person.
    The latest assessment is 2023-06-01, so a month is followed when it ends by then: months
    -1..3 for everyone (a's month 4 runs to 06-09, b's to 06-19, c's to 06-30).
    """
    for person, on in (("a", date(2023, 1, 10)), ("b", date(2023, 1, 20)), ("c", date(2023, 2, 1))):
        wh.referral(person, on)
    wh.client("a", "active")
    wh.client("b", "active")
    wh.client("c", "revoked")
    assess(wh, "a", date(2023, 1, 10), "street", "unemployed", "none")
    assess(wh, "a", date(2023, 2, 15), "transitional", "part_time", "employment")
    assess(wh, "a", date(2023, 6, 1), "permanent", "full_time", "both")
    assess(wh, "b", date(2023, 1, 5), "shelter", "unemployed", "benefits")
    assess(wh, "b", date(2023, 1, 25), "street", "unknown", "benefits")
    assess(wh, "c", date(2023, 2, 10), "permanent", "full_time", "employment")
    wh.contact("a", date(2023, 1, 12))
    wh.contact("a", date(2023, 1, 20))
    wh.contact("a", date(2023, 1, 15), service_type="housing")     # not case management
    wh.contact("b", date(2023, 2, 25))
    wh.contact("c", date(2023, 2, 12))                             # no consent: no person
    wh.arrest("a", date(2023, 3, 1))
    wh.arrest("z", date(2023, 12, 1))        # someone else: the arrest data runs to December
    wh.run()


def test_monthly_status_carries_an_assessment_forward_two_months(warehouse):
    build(warehouse)
    rows = warehouse.rows("""SELECT person_key, month_since_referral AS m, carried_months, housing_status,
                                    housed, employed, income_or_benefits, contacts, arrests
                             FROM marts.life_status_monthly ORDER BY ALL""")
    got = {(r["person_key"], r["m"]): (r["carried_months"], r["housing_status"], r["housed"],
                                        r["employed"], r["income_or_benefits"], r["contacts"], r["arrests"])
           for r in rows}
    assert got == {
        ("pk-a", -1): (0, "street", False, False, False, 0, 0),
        ("pk-a", 0): (1, "street", False, False, False, 2, 0),           # two case-management contacts
        ("pk-a", 1): (0, "transitional", True, True, True, 0, 1),        # arrested 03-01
        ("pk-a", 2): (1, "transitional", True, True, True, 0, 0),
        ("pk-a", 3): (2, "transitional", True, True, True, 0, 0),
        ("pk-b", -1): (0, "shelter", False, False, True, 0, 0),
        ("pk-b", 0): (0, "street", False, None, True, 0, 0),             # employment unknown
        ("pk-b", 1): (1, "street", False, None, True, 1, 0),
        ("pk-b", 2): (2, "street", False, None, True, 0, 0),
        ("pk-b", 3): (None, None, None, None, None, 0, 0),               # 3 months old: missing
        **{("pk-c", m): (None, None, None, None, None, 0, 0) for m in range(-1, 4)},
    }
    # The report's methods quote the window the SQL applies.
    assert max(r["carried_months"] or 0 for r in rows) == CARRY_FORWARD_MONTHS


def test_shares_by_month_since_referral(warehouse):
    build(warehouse)
    rows = warehouse.rows("SELECT * FROM marts.life_outcomes_monthly ORDER BY month_since_referral")
    # Per month, from the statuses above (c is followed but never known):
    #   m  participants  housing known/housed  employment known/employed  income known/yes  contacts/people
    #  -1  3             2 / 0 (street, shelter)   2 / 0                  2 / 1 (b benefits)  0 / 0
    #   0  3             2 / 0                     1 / 0 (b unknown)      2 / 1               2 / 1
    #   1  3             2 / 1 (a transitional)    1 / 1                  2 / 2               1 / 1
    #   2  3             2 / 1                     1 / 1                  2 / 2               0 / 0
    #   3  3             1 / 1 (b missing)         1 / 1                  1 / 1               0 / 0
    expected = [(-1, 3, 2, 0, 2, 0, 2, 1, 0, 0), (0, 3, 2, 0, 1, 0, 2, 1, 2, 1),
                (1, 3, 2, 1, 1, 1, 2, 2, 1, 1), (2, 3, 2, 1, 1, 1, 2, 2, 0, 0),
                (3, 3, 1, 1, 1, 1, 1, 1, 0, 0)]
    assert [tuple(r.values()) for r in rows] == expected
    assert list(rows[0]) == ["month_since_referral", "participants", "housing_known", "housed",
                             "employment_known", "employed", "income_known", "income_or_benefits",
                             "contacts", "people_contacted"]


def test_arrest_periods_count_housed_assessments_of_the_91_days_before(warehouse):
    build(warehouse)
    rows = warehouse.rows("""SELECT person_key, month_since_referral AS m, housed_recent, employed_recent,
                                    days, arrests FROM marts.life_arrest_periods ORDER BY ALL""")
    # Days after referral to 2023-06-01 (the latest assessment; arrests run later). a's 02-15
    # assessment (housed, employed) counts from 02-16 for 91 days, to 05-17; the 06-01 one from
    # 06-02, after the end. a's months start on the 10th: month 1 has 02-10..02-15 (6 days) without
    # and 02-16..03-09 (22 days, the 03-01 arrest) with; month 4 has 05-10..05-17 (8) with and
    # 05-18..06-01 (15) without. b (months from the 20th) has no housed or employed assessment;
    # c has no assessment with a person and is left out.
    assert STATUS_MAX_DAYS == 91
    assert [tuple(r.values()) for r in rows] == [
        ("pk-a", 0, 0, 0, 30, 0),                       # 01-11..02-09
        ("pk-a", 1, 0, 0, 6, 0), ("pk-a", 1, 1, 1, 22, 1),
        ("pk-a", 2, 1, 1, 31, 0),
        ("pk-a", 3, 1, 1, 30, 0),
        ("pk-a", 4, 0, 0, 15, 0), ("pk-a", 4, 1, 1, 8, 0),
        ("pk-b", 0, 0, 0, 30, 0), ("pk-b", 1, 0, 0, 28, 0), ("pk-b", 2, 0, 0, 31, 0),
        ("pk-b", 3, 0, 0, 30, 0), ("pk-b", 4, 0, 0, 13, 0),
    ]


def test_marts_are_empty_without_assessments(warehouse):
    warehouse.referral("a", date(2023, 1, 10))
    warehouse.arrest("a", date(2023, 3, 1))
    warehouse.run()
    for table in ("life_status_monthly", "life_outcomes_monthly", "life_arrest_periods"):
        assert warehouse.rows(f"SELECT count(*) AS n FROM marts.{table}") == [{"n": 0}]
