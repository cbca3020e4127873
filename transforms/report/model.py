"""What every part of the report shares: the published ``Table``, the cohort
vocabulary and the query helper.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date

RE_ARREST_WINDOW = 365
TREATMENT = "treatment"

REFERRAL_TYPES = ("arrest_diversion", "social_contact", "community")
COHORT_LABELS = {"lead": "LEAD", "comparison": "Comparison"}
MEASURES = (("arrests", "Arrests"), ("bookings", "Jail bookings"), ("jail_days", "Jail days"),
            ("felony_charges", "Felony charges"), ("misdemeanor_charges", "Misdemeanor charges"))


@dataclass
class Table:
    """One published table: its CSV name, the rows as displayed, and its sources."""
    name: str
    title: str
    header: list[str]
    rows: list[list[str]]
    sources: frozenset[str]
    note: str = ""
    chart_png: str | None = None


def fetch_dicts(con, sql: str, params: list | None = None) -> list[dict]:
    cur = con.execute(sql, params or [])
    names = [d[0] for d in cur.description]
    return [dict(zip(names, row)) for row in cur.fetchall()]


def month_starts(first: date, last: date) -> list[date]:
    months, m = [], first.replace(day=1)
    while m <= last:
        months.append(m)
        m = date(m.year + (m.month == 12), m.month % 12 + 1, 1)
    return months


def quarter_label(d: date) -> str:
    return f"{d.year}-Q{(d.month - 1) // 3 + 1}"
