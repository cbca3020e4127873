"""The published LEAD report: one self-contained HTML file plus one CSV per table.

Only aggregates leave the warehouse: every table here is computed from marts
and ops, and no person-level row is ever written out. Counts from 1 to 10 are
suppressed (shown as "<11") because small cells can identify people in a
program this size, and complementary suppression (``protect``) hides further
cells wherever a published total would let a suppressed count be worked back
by subtraction — within a table and across linked tables (months, quarters,
whole period). Values derived from a hidden count (per-person means, shares,
odds ratios and their intervals) are withheld with it, and rates resting on
fewer than 20 events are flagged as unstable. Tables drawn from treatment
records carry the 42 CFR Part 2 re-disclosure notice in the HTML and as the
last line of their CSV. The HTML carries its CSS and charts inline so it can be
emailed or archived as one file and opened without network access.
"""

from __future__ import annotations

import base64
import html
import io
import math
import shutil
from dataclasses import dataclass, field
from datetime import date, datetime
from pathlib import Path

import numpy as np
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from scipy.special import expit

from connectors.contracts import load_contracts
from connectors.exports import write_csv
from leadhub.errors import LeadHubError
from leadhub.settings import Settings
from leadhub.warehouse import connect

SMALL_CELL_MAX = 10
SUPPRESSED = "<11"          # a count from 1 to SMALL_CELL_MAX
WITHHELD = "suppressed"     # a derived value that would reveal such a count
NOT_APPLICABLE = "n/a"    # not "-": a leading minus is escaped in CSVs
Z_95 = 1.959963984540054
RE_ARREST_WINDOW = 365

# 42 CFR 2.32(a)(2), the short form allowed on every disclosure of Part 2 records.
PART2_NOTICE = "42 CFR part 2 prohibits unauthorized use or disclosure of these records."  # as in dictionary.py
TREATMENT = "treatment"

REFERRAL_TYPES = ("arrest_diversion", "social_contact", "community")
COHORT_LABELS = {"lead": "LEAD", "comparison": "Comparison"}
MEASURES = (("arrests", "Arrests"), ("bookings", "Jail bookings"), ("jail_days", "Jail days"),
            ("felony_charges", "Felony charges"), ("misdemeanor_charges", "Misdemeanor charges"))
OFFENSE_TYPES = ("person", "property", "drug", "public_order", "other")
UNSTABLE_EVENTS = 20       # rates on fewer events are flagged as unstable


# ---------------------------------------------------------------- statistics

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


# ---------------------------------------------------------------- suppression

def is_small(n: int | None) -> bool:
    return n is not None and 1 <= n <= SMALL_CELL_MAX


def count_cell(n: int) -> str:
    """A published count: 1 to 10 become "<11"; zero is shown."""
    return SUPPRESSED if is_small(n) else str(int(n))


def derived_cell(value: float | None, counts: tuple[int, ...], fmt: str = "{:.2f}") -> str:
    """A value computed from counts: withheld when any of those counts is suppressed."""
    if any(is_small(n) for n in counts):
        return WITHHELD
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return NOT_APPLICABLE
    return fmt.format(value)


def _part_cell(part: int, whole: int) -> str:
    """A count published beside its total: withheld when the remainder is suppressed."""
    if is_small(part):
        return SUPPRESSED
    return WITHHELD if is_small(whole - part) else str(int(part))


# ---------------------------------------------------------------- tables

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


@dataclass
class ReportContext:
    latest_received: date | None          # the newest accepted delivery, any extract
    generated_at: datetime
    settings: dict = field(default_factory=dict)
    coverage: list = field(default_factory=list)     # [Coverage], per extract
    demo_note: str | None = None          # only for the synthetic demo data


def _fetch(con, sql: str, params: list | None = None) -> list[dict]:
    cur = con.execute(sql, params or [])
    names = [d[0] for d in cur.description]
    return [dict(zip(names, row)) for row in cur.fetchall()]


def _months(first: date, last: date) -> list[date]:
    months, m = [], first.replace(day=1)
    while m <= last:
        months.append(m)
        m = date(m.year + (m.month == 12), m.month % 12 + 1, 1)
    return months


# ---------------------------------------------------------------- complementary suppression

TOTAL = "Total"


def protect(counts: dict, equations: list[list]) -> set:
    """The cells to hide: counts from 1 to 10, plus enough others that none can be worked out.

    ``equations`` lists groups of published cells whose parts add up to the
    last member (a row and its total, a column and its total, three months and
    their quarter, or two cells known to be equal). If exactly one member of a
    group is hidden, the others give it away by subtraction, so a second member
    is hidden too: the smallest non-zero part if there is one, else the
    smallest part, else the total. Repeated until no group has exactly one
    hidden member. This stops derivation from any single row, column or
    total; it does not claim to stop every combination of several equations.
    """
    hidden = {k for k, n in counts.items() if is_small(n)}
    changed = True
    while changed:
        changed = False
        for members in equations:
            inside = [k for k in members if k in hidden]
            if len(inside) != 1:
                continue
            total = members[-1]
            candidates = [k for k in members if k not in hidden]
            if not candidates:
                continue
            pick = min(candidates, key=lambda k: (k == total, counts[k] == 0, counts[k], str(k)))
            hidden.add(pick)
            changed = True
    return hidden


class Cells:
    """Every published count of a group of linked tables, and how they add up.

    Tables register their cells and equations here; ``resolve`` decides once
    for all of them what is hidden, so a cell cannot be recovered through a
    total published in another table of the group.
    """

    def __init__(self) -> None:
        self.counts: dict = {}
        self.equations: list[list] = []
        self.hidden: set | None = None

    def grid(self, name: str, rows: list, columns: list, values: dict,
             row_totals: bool = True, column_totals: bool = True) -> None:
        """Cells (name, row, column) with optional (name, row, TOTAL) and (name, TOTAL, column)."""
        for r in rows:
            for c in columns:
                self.counts[(name, r, c)] = int(values.get((r, c), 0))
        if row_totals:
            for r in rows:
                self.counts[(name, r, TOTAL)] = sum(self.counts[(name, r, c)] for c in columns)
                self.equations.append([(name, r, c) for c in columns] + [(name, r, TOTAL)])
        if column_totals:
            for c in columns + ([TOTAL] if row_totals else []):
                self.counts[(name, TOTAL, c)] = sum(self.counts[(name, r, c)] for r in rows)
                self.equations.append([(name, r, c) for r in rows] + [(name, TOTAL, c)])
            if row_totals:
                self.equations.append([(name, TOTAL, c) for c in columns] + [(name, TOTAL, TOTAL)])

    def sums_to(self, parts: list, total) -> None:
        self.equations.append(list(parts) + [total])

    def resolve(self) -> set:
        self.hidden = protect(self.counts, self.equations)
        return self.hidden

    def is_hidden(self, cell) -> bool:
        if self.hidden is None:
            self.resolve()
        return cell in self.hidden

    def show(self, cell) -> str:
        """"<11" for a small count, "suppressed" for a complementary one, else the count."""
        n = self.counts[cell]
        if is_small(n):
            return SUPPRESSED
        return WITHHELD if self.is_hidden(cell) else str(n)


def rate_cell(value: float | None, events: int, hidden: bool, fmt: str = "{:.2f}") -> tuple[str, bool]:
    """A rate and whether it is unstable: withheld with its counts, flagged under 20 events."""
    if hidden:
        return WITHHELD, False
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return NOT_APPLICABLE, False
    return fmt.format(value), events < UNSTABLE_EVENTS


def _quarter(d: date) -> str:
    return f"{d.year}-Q{(d.month - 1) // 3 + 1}"


def _line_chart(title: str, labels: list[str], series: dict[str, list[str]], ylabel: str) -> str:
    """Lines of published values; hidden values are gaps, so the chart reveals nothing more.

    The legend sits outside the plot, to the right, so it can never cover a point.
    """
    fig = Figure(figsize=(8, 3.4), layout="constrained")
    ax = fig.add_subplot()
    for name, values in series.items():
        ax.plot(range(len(labels)), [int(v) if v.isdigit() else math.nan for v in values],
                marker="o", label=name)
    step = max(1, math.ceil(len(labels) / 12))
    ax.set_xticks(range(0, len(labels), step), labels[::step], rotation=45, ha="right",
                  rotation_mode="anchor", fontsize=8)
    ax.tick_params(axis="y", labelsize=8)
    ax.set_ylabel(ylabel)
    ax.set_ylim(bottom=0)
    if len(series) > 1:
        fig.legend(loc="outside right upper", frameon=False, fontsize=8)
    ax.set_title(title, fontsize=10)
    return _png(fig)


def _grid_rows(cells: Cells, name: str, rows: list, labels: list[str], columns: list,
               totals_row: bool = True) -> list[list[str]]:
    out = [[label] + [cells.show((name, r, c)) for c in columns + [TOTAL]]
           for r, label in zip(rows, labels)]
    if totals_row:
        out.append([TOTAL] + [cells.show((name, TOTAL, c)) for c in columns + [TOTAL]])
    return out


# ---------------------------------------------------------------- tables

def referral_tables(con) -> list[Table]:
    """Referrals by door per month, per quarter, and by precinct over the whole period.

    Monthly counts are mostly small in a program this size, so the quarterly
    and whole-period views carry the usable numbers. All three are protected
    together: the months of a quarter add up to the quarter, the quarters to
    the period totals of the precinct table.
    """
    rows = _fetch(con, """SELECT month, referral_type, precinct, sum(referrals)::BIGINT AS n
                          FROM marts.referrals_monthly GROUP BY ALL ORDER BY ALL""")
    types = list(REFERRAL_TYPES) + sorted({r["referral_type"] for r in rows} - set(REFERRAL_TYPES))
    months = _months(min(r["month"] for r in rows), max(r["month"] for r in rows)) if rows else []
    quarters = sorted({_quarter(m) for m in months})
    precincts = sorted({r["precinct"] for r in rows})
    by_month, by_quarter, by_precinct = {}, {}, {}
    for r in rows:
        key_t = r["referral_type"]
        by_month[(r["month"], key_t)] = by_month.get((r["month"], key_t), 0) + r["n"]
        q = _quarter(r["month"])
        by_quarter[(q, key_t)] = by_quarter.get((q, key_t), 0) + r["n"]
        by_precinct[(r["precinct"], key_t)] = by_precinct.get((r["precinct"], key_t), 0) + r["n"]

    cells = Cells()
    cells.grid("month", months, types, by_month, column_totals=False)
    cells.grid("quarter", quarters, types, by_quarter, column_totals=False)
    cells.grid("precinct", precincts, types, by_precinct)
    for q in quarters:
        in_q = [m for m in months if _quarter(m) == q]
        for t in types + [TOTAL]:
            cells.sums_to([("month", m, t) for m in in_q], ("quarter", q, t))
    for t in types + [TOTAL]:
        cells.sums_to([("quarter", q, t) for q in quarters], ("precinct", TOTAL, t))
    cells.resolve()

    note = ("Referrals counted by referral date, linked to a person or not. \"<11\": 1 to 10 "
            "referrals; \"suppressed\": withheld so that no small count can be worked out from "
            "the totals here or in the other referral tables.")
    monthly = Table(
        name="referrals_monthly", title="LEAD referrals per month, by referral type",
        header=["Month"] + types + [TOTAL],
        rows=[[m.strftime("%Y-%m")] + [cells.show(("month", m, t)) for t in types + [TOTAL]]
              for m in months],
        sources=frozenset({"police"}),
        note=note + " Most monthly counts are small: see the quarterly and whole-period tables.")
    quarterly = Table(
        name="referrals_quarterly", title="LEAD referrals per quarter, by referral type",
        header=["Quarter"] + types + [TOTAL],
        rows=[[q] + [cells.show(("quarter", q, t)) for t in types + [TOTAL]] for q in quarters],
        sources=frozenset({"police"}), note=note)
    if quarters:
        quarterly.chart_png = _line_chart(
            "Referrals per quarter (gaps: suppressed counts)", quarters,
            {t: [cells.show(("quarter", q, t)) for q in quarters] for t in types}, "Referrals")
    period = Table(
        name="referrals_by_precinct",
        title="LEAD referrals over the whole period, by precinct and referral type",
        header=["Precinct"] + types + [TOTAL],
        rows=_grid_rows(cells, "precinct", precincts, precincts, types),
        sources=frozenset({"police"}),
        note=note + (f" Period: {months[0]:%Y-%m} to {months[-1]:%Y-%m}." if months else ""))
    return [monthly, quarterly, period]


def outcomes_table(con) -> Table:
    """Arrests, bookings, jail days and charges before vs after the index date, per cohort and window."""
    summary = _fetch(con, "SELECT * FROM marts.outcomes_summary ORDER BY window_days, cohort DESC")
    rows = []
    for s in summary:
        n = s["n_people"]
        for measure, label in MEASURES:
            before, after = s[f"{measure}_before_sum"], s[f"{measure}_after_sum"]
            rate_before, unstable_before = rate_cell(s[f"{measure}_before_mean"], before,
                                                     is_small(n) or is_small(before))
            rate_after, unstable_after = rate_cell(s[f"{measure}_after_mean"], after,
                                                   is_small(n) or is_small(after))
            flags = [w for w, f in (("before", unstable_before), ("after", unstable_after)) if f]
            rows.append([
                f"{s['window_days']} days", label, COHORT_LABELS.get(s["cohort"], s["cohort"]),
                count_cell(n), _part_cell(s["n_followup_complete"], n),
                count_cell(before), count_cell(after), rate_before, rate_after, ", ".join(flags),
            ])
    table = Table(
        name="outcomes", title="Outcomes before and after the index date, LEAD vs comparison",
        header=["Window", "Measure", "Cohort", "People", "People with full follow-up",
                "Total before", "Total after", "Per person before", "Per person after",
                "Unstable rates (under 20 events)"],
        rows=rows, sources=frozenset({"police", "jail", "prosecutor"}),
        note="Before = [index - window, index); after = (index, index + window]; events on the "
             "index day are in neither. Felony and misdemeanor charges are charges referred to "
             "the prosecutor (whatever the charging decision), by referral date. \"Full "
             "follow-up\": the whole after-window ends on or before the latest arrest date in "
             "the data; the others are counted as observed. A per-person rate resting on fewer "
             f"than {UNSTABLE_EVENTS} events is flagged as unstable.")
    if summary:
        table.chart_png = _outcomes_chart(summary)
    return table


CONTACT_BINS = ((0, 7, "0 to 7 days"), (8, 30, "8 to 30 days"), (31, 90, "31 to 90 days"),
                (91, None, "More than 90 days"))


def first_contact_table(con) -> Table:
    """Days from first referral to the first case-management contact, LEAD participants."""
    people = _fetch(con, "SELECT days_to_first_contact AS days FROM marts.first_contact")
    counts = {}
    for low, high, label in CONTACT_BINS:
        counts[(label, "n")] = sum(1 for p in people if p["days"] is not None and p["days"] >= low
                                   and (high is None or p["days"] <= high))
    none_label = "No case-management contact recorded"
    counts[(none_label, "n")] = sum(1 for p in people if p["days"] is None)
    labels = [label for _, _, label in CONTACT_BINS] + [none_label]
    cells = Cells()
    cells.grid("contact", labels, ["n"], counts, row_totals=False)
    cells.resolve()
    total = cells.counts[("contact", TOTAL, "n")]
    rows = []
    for label in labels:
        n = cells.counts[("contact", label, "n")]
        hidden = cells.is_hidden(("contact", label, "n")) or cells.is_hidden(("contact", TOTAL, "n"))
        share, unstable = rate_cell(n / total if total else None, n, hidden, "{:.1%}")
        rows.append([label, cells.show(("contact", label, "n")), share, "yes" if unstable else ""])
    rows.append(["LEAD participants", cells.show(("contact", TOTAL, "n")), "" if not total else "100.0%", ""])
    contacted = sorted(p["days"] for p in people if p["days"] is not None)
    median = (f"{float(np.median(contacted)):.0f} days" if contacted and not is_small(len(contacted))
              else (WITHHELD if contacted else NOT_APPLICABLE))
    return Table(
        name="time_to_first_contact",
        title="Time from referral to first case-management contact, LEAD participants",
        header=["Days to first contact", "People", "Share of participants",
                "Unstable (under 20 events)"],
        rows=rows, sources=frozenset({"police", "treatment"}),
        note=f"From the first LEAD referral to the first case-management service contact on or "
             f"after it. Median among participants with a contact: {median}. Contacts of "
             f"clients who have not consented to sharing (42 CFR Part 2) cannot be linked, so "
             f"they appear under \"no contact recorded\".")


def caseload_table(con) -> Table:
    """Case-management episodes open in each month (all referral sources)."""
    rows = _fetch(con, """SELECT month, sum(active_episodes)::BIGINT AS n
                          FROM marts.caseload_monthly GROUP BY month ORDER BY month""")
    shown = [[r["month"].strftime("%Y-%m"), count_cell(r["n"])] for r in rows]
    table = Table(
        name="caseload_monthly", title="Active case-management caseload per month",
        header=["Month", "Open episodes"], rows=shown, sources=frozenset({"treatment"}),
        note="Episodes open at any time in the month (intake on or before its last day, no exit "
             "before its first day), whatever the referral source and whether or not the client "
             "consented to linkage. Months are not added up: one episode counts in every month "
             "it is open.")
    if rows:
        table.chart_png = _line_chart("Open case-management episodes per month "
                                      "(gaps: suppressed months)",
                                      [r[0] for r in shown], {"open episodes": [r[1] for r in shown]},
                                      "Episodes")
    return table


def services_table(con) -> Table:
    """Service contacts per quarter by service type, with totals."""
    rows = _fetch(con, """SELECT month, service_type, sum(contacts)::BIGINT AS n
                          FROM marts.services_monthly GROUP BY ALL ORDER BY ALL""")
    quarters = sorted({_quarter(r["month"]) for r in rows})
    types = sorted({r["service_type"] for r in rows})
    values: dict = {}
    for r in rows:
        key_ = (_quarter(r["month"]), r["service_type"])
        values[key_] = values.get(key_, 0) + r["n"]
    cells = Cells()
    cells.grid("services", quarters, types, values)
    cells.resolve()
    return Table(
        name="services_quarterly", title="Services delivered per quarter, by service type",
        header=["Quarter"] + types + [TOTAL],
        rows=_grid_rows(cells, "services", quarters, quarters, types),
        sources=frozenset({"treatment"}),
        note="Service contacts recorded by the case-management provider, by contact date, "
             "consented clients or not.")


ARREST_BREAKDOWNS = (("offense_type", "offense type", OFFENSE_TYPES),
                     ("race", "race", ()), ("sex", "sex", ()))


def justice_counts_tables(con) -> list[Table]:
    """Justice Counts-aligned annual counts: arrests by offense type, race and sex; cases; jail."""
    arrests = _fetch(con, "SELECT year, offense_type, race, sex, arrests FROM marts.jc_arrests")
    years = sorted({r["year"] for r in arrests})
    cells = Cells()
    tables = []
    for column, label, preferred in ARREST_BREAKDOWNS:
        found = sorted({r[column] for r in arrests})
        values_ = list(preferred) + [v for v in found if v not in preferred]
        counts: dict = {}
        for r in arrests:
            counts[(r["year"], r[column])] = counts.get((r["year"], r[column]), 0) + r["arrests"]
        name = f"arrests_{column}"
        cells.grid(name, years, values_, counts)
        tables.append((name, label, values_))
    # The three tables share their yearly and overall totals.
    first = tables[0][0]
    for name, _, _ in tables[1:]:
        for y in years + [TOTAL]:
            cells.sums_to([(name, y, TOTAL)], (first, y, TOTAL))
    cells.resolve()
    out = [Table(name=f"jc_{name}", title=f"Arrests per year by {label} (Justice Counts)",
                 header=["Year", *values_, TOTAL],
                 rows=_grid_rows(cells, name, years, [str(y) for y in years], values_),
                 sources=frozenset({"police"}),
                 note="Police arrests by arrest date; an arrest counts once, under the offense "
                      "type of its most serious charge; race and sex as recorded on the arrest.")
           for name, label, values_ in tables]

    cases = _fetch(con, "SELECT year, outcome, cases FROM marts.jc_cases")
    case_years = sorted({r["year"] for r in cases})
    outcomes = ["declined", "diverted", "prosecuted", "pending"]
    case_cells = Cells()
    case_cells.grid("cases", case_years, outcomes,
                    {(r["year"], r["outcome"]): r["cases"] for r in cases})
    case_cells.resolve()
    case_rows = _grid_rows(case_cells, "cases", case_years, [str(y) for y in case_years], outcomes)
    out.append(Table(
        name="jc_prosecutor_cases", title="Cases referred to the prosecutor per year, by decision "
                                          "(Justice Counts)",
        header=["Year", "Declined", "Diverted", "Prosecuted", "Pending", "Referred"],
        rows=case_rows, sources=frozenset({"prosecutor"}),
        note="A case counts once, in the year it was referred: prosecuted when any charge was "
             "filed, else diverted when any charge was diverted, else declined when every charge "
             "was declined, else pending. Referred = all cases."))

    jail = _fetch(con, "SELECT * FROM marts.jc_jail ORDER BY year")
    out.append(Table(
        name="jc_jail", title="Jail admissions, releases and readmissions per year (Justice Counts)",
        header=["Year", "Admissions", "Releases", "Readmissions within 365 days"],
        rows=[[str(r["year"]), count_cell(r["admissions"]), count_cell(r["releases"]),
               count_cell(r["readmissions_365"])] for r in jail],
        sources=frozenset({"jail"}),
        note="Admissions: bookings by booking date. Releases: by release date. Readmission: a "
             "booking within 365 days after the same person's previous release (bookings that "
             "could not be linked to a person are never readmissions). The columns are separate "
             "counts and are not added up."))
    return out


def equity_tables(con) -> list[Table]:
    """Race and ethnicity of people referred vs people arrested for the same offense types."""
    rows = _fetch(con, "SELECT population, race, ethnicity, people FROM marts.equity")
    populations = ["referred", "arrested"]
    out = []
    for column, label in (("race", "Race"), ("ethnicity", "Ethnicity")):
        groups = sorted({r[column] for r in rows}, key=lambda g: (g == "UNKNOWN", g))
        counts: dict = {}
        for r in rows:
            counts[(r[column], r["population"])] = counts.get((r[column], r["population"]), 0) + r["people"]
        cells = Cells()
        cells.grid(column, groups, populations, counts, row_totals=False)
        cells.resolve()
        table_rows = []
        for g in groups + [TOTAL]:
            line, flags = [g], []
            for p in populations:
                cell, total = (column, g, p), (column, TOTAL, p)
                n, whole = cells.counts[cell], cells.counts[total]
                share, unstable = rate_cell(n / whole if whole else None, n,
                                            cells.is_hidden(cell) or cells.is_hidden(total), "{:.1%}")
                line += [cells.show(cell), share]
                if unstable:
                    flags.append(p)
            table_rows.append(line + [", ".join(flags)])
        out.append(Table(
            name=f"equity_{column}",
            title=f"{label} of people referred to LEAD vs people arrested for the same offense types",
            header=[label, "Referred", "Share of referred", "Arrested", "Share of arrested",
                    "Unstable shares (under 20 people)"],
            rows=table_rows, sources=frozenset({"police"}),
            note="Program window only. Referred: people with a LEAD referral, as recorded on their "
                 "first referral. Arrested: people arrested for an offense type that referrals "
                 "name, as recorded on their first such arrest, referred or not. Only people "
                 "linked across records are counted."))
    return out


def _outcomes_chart(summary: list[dict]) -> str:
    """Per-person means before vs after; suppressed values are left out and marked "s".

    One row of panels per measure and one column per window, so every panel is wide enough
    for its title and its two cohort labels; one legend above all panels, outside them.
    """
    windows = sorted({s["window_days"] for s in summary})
    fig = Figure(figsize=(4.2 * len(windows) + 0.4, 1.9 * len(MEASURES) + 0.6), layout="constrained")
    axes = fig.subplots(len(MEASURES), len(windows), squeeze=False)
    for j, window in enumerate(windows):
        groups = [s for s in summary if s["window_days"] == window]
        for i, (measure, label) in enumerate(MEASURES):
            ax = axes[i][j]
            for k, (when, color) in enumerate((("before", "#9aa9bd"), ("after", "#2f5d8c"))):
                xs = [g + (k - 0.5) * 0.4 for g in range(len(groups))]
                shown = [derived_cell(s[f"{measure}_{when}_mean"],
                                      (s["n_people"], s[f"{measure}_{when}_sum"])) for s in groups]
                heights = [0.0 if v in (WITHHELD, NOT_APPLICABLE) else float(v) for v in shown]
                ax.bar(xs, heights, width=0.38, color=color, label=f"{when} the index date")
                for x, v in zip(xs, shown):
                    if v == WITHHELD:
                        ax.text(x, 0, "s", ha="center", va="bottom", fontsize=8)
            ax.set_xticks(range(len(groups)),
                          [COHORT_LABELS.get(s["cohort"], s["cohort"]) for s in groups], fontsize=8)
            ax.set_xlim(-0.6, len(groups) - 0.4)
            ax.tick_params(axis="y", labelsize=8)
            ax.margins(y=0.15)
            ax.set_title(f"{label} per person, {window} days", fontsize=9)
    handles, labels = axes[0][0].get_legend_handles_labels()
    handles.append(Line2D([], [], linestyle="none", marker="$s$", color="black"))
    labels.append("suppressed (not drawn)")
    fig.legend(handles, labels, loc="outside upper center", ncols=3, frameon=False, fontsize=8)
    return _png(fig)


@dataclass(frozen=True)
class RearrestEstimates:
    """The 2x2 counts of any re-arrest within 365 days and the odds ratios drawn from them."""
    a: int                         # LEAD, re-arrested
    b: int                         # LEAD, not re-arrested
    c: int                         # comparison, re-arrested
    d: int                         # comparison, not re-arrested
    unadjusted: tuple[float, float, float] | None
    adjusted: tuple[float, float, float, int] | None

    @property
    def withheld(self) -> bool:
        """Any cell of the 2x2 table is suppressed, so no ratio may be published."""
        return any(is_small(x) for x in (self.a, self.b, self.c, self.d))


def rearrest_estimates(con) -> RearrestEstimates:
    people = _fetch(con, """
        SELECT o.cohort, o.any_rearrest_after::INTEGER AS rearrest, c.prior_arrests_365,
               c.age_at_index, c.sex
        FROM marts.outcomes o JOIN marts.cohort c USING (person_key)
        WHERE o.window_days = ?""", [RE_ARREST_WINDOW])
    cells = {(cohort, r): sum(1 for p in people if p["cohort"] == cohort and p["rearrest"] == r)
             for cohort in ("lead", "comparison") for r in (1, 0)}
    a, b, c, d = cells["lead", 1], cells["lead", 0], cells["comparison", 1], cells["comparison", 0]
    try:
        unadjusted = odds_ratio_woolf(a, b, c, d)
    except ValueError:
        unadjusted = None
    adjusted = adjusted_odds_ratio(
        [int(p["cohort"] == "lead") for p in people], [p["rearrest"] for p in people],
        [p["prior_arrests_365"] for p in people], [p["age_at_index"] for p in people],
        [p["sex"] for p in people])
    return RearrestEstimates(a, b, c, d, unadjusted, adjusted)


def rearrest_tables(con) -> list[Table]:
    """The 2x2 table of any re-arrest within 365 days and the LEAD vs comparison odds ratio."""
    est = rearrest_estimates(con)
    a, b, c, d = est.a, est.b, est.c, est.d

    counts = Table(
        name="rearrest_2x2", title=f"Any re-arrest within {RE_ARREST_WINDOW} days after the index date",
        header=["Cohort", "People", "Re-arrested", "Not re-arrested", "Share re-arrested",
                "Unstable (under 20 events)"],
        rows=[[COHORT_LABELS[k], count_cell(yes + no),
               _part_cell(yes, yes + no), _part_cell(no, yes + no),
               derived_cell(yes / (yes + no) if yes + no else None, (yes, no), "{:.1%}"),
               "yes" if yes + no and not any(is_small(x) for x in (yes, no))
               and yes < UNSTABLE_EVENTS else ""]
              for k, yes, no in (("lead", a, b), ("comparison", c, d))],
        sources=frozenset({"police"}))

    def estimate_row(label: str, result: tuple | None, n: int, why: str) -> list[str]:
        if est.withheld:
            return [label, WITHHELD, WITHHELD, WITHHELD, WITHHELD]
        if result is None:
            return [label, NOT_APPLICABLE, NOT_APPLICABLE, NOT_APPLICABLE, why]
        ratio, low, high = result
        return [label, f"{ratio:.2f}", f"{low:.2f}", f"{high:.2f}", str(n)]

    adjusted = est.adjusted
    odds = Table(
        name="rearrest_odds_ratio",
        title=f"Odds ratio of any re-arrest within {RE_ARREST_WINDOW} days, LEAD vs comparison",
        header=["Model", "Odds ratio", "95% CI low", "95% CI high", "People"],
        rows=[estimate_row("Unadjusted (Woolf interval)", est.unadjusted, a + b + c + d,
                           "not estimable: a cell of the 2x2 table is zero"),
              estimate_row("Adjusted for prior arrests (365 days), age and sex (logistic regression)",
                           adjusted[:3] if adjusted else None, adjusted[3] if adjusted else 0,
                           "not estimable: too few people or the model did not converge")],
        sources=frozenset({"police"}),
        note="An odds ratio below 1 means lower odds of re-arrest for LEAD participants. The "
             "cohorts are not randomized; the adjusted model accounts only for the listed "
             "covariates (complete cases). Estimates are withheld when any cell of the 2x2 "
             "table is suppressed, because the ratio and its interval would reveal it.")
    return [counts, odds]


# ---------------------------------------------------------------- synthetic demo data

TRUTH_FILE = "truth.json"


def planted_effect(settings: Settings) -> dict | None:
    """The effect planted in the synthetic demo data, or None when the data is not the demo.

    Only the demo generator writes ``<data dir>/answers/truth.json``; the report reads two
    numbers from it to label itself as demo output, and computes nothing from it.
    """
    import json

    path = Path(settings.answers_dir) / TRUTH_FILE
    if not path.is_file():
        return None
    truth = json.loads(path.read_text(encoding="utf-8"))
    planted = (truth.get("planted") or {}).get(f"odds_ratio_lead_any_rearrest_{RE_ARREST_WINDOW}")
    if planted is None:
        return None
    true_unadjusted = (truth.get("observed_unadjusted_odds_ratio") or {}).get(str(RE_ARREST_WINDOW))
    return {"planted": float(planted),
            "true_unadjusted": float(true_unadjusted) if true_unadjusted is not None else None}


def planted_effect_text(est: RearrestEstimates, effect: dict) -> str:
    """One paragraph: the planted odds ratio, the report's estimate and interval, and whether
    the interval covers it."""
    planted = effect["planted"]
    text = (f"Synthetic demo data: the generator planted an odds ratio of {planted:.2f} for any "
            f"re-arrest within {RE_ARREST_WINDOW} days, LEAD vs comparison, adjusted for prior "
            f"arrests, age and sex. ")
    if est.withheld:
        return text + "This report's estimate is withheld (small cells), so it cannot be compared."
    if est.adjusted is None:
        text += "This report's adjusted model could not be estimated. "
    else:
        ratio, low, high, _ = est.adjusted
        covers = "covers" if low <= planted <= high else "does not cover"
        text += (f"This report's adjusted estimate is {ratio:.2f} (95% CI {low:.2f} to "
                 f"{high:.2f}), an interval that {covers} it. ")
    if est.unadjusted is not None:
        text += (f"The unadjusted estimate, {est.unadjusted[0]:.2f}, compares cohorts that differ "
                 f"in prior arrests, age and sex")
        if effect.get("true_unadjusted") is not None:
            text += (f"; counted on the true people, without linkage errors, it would be "
                     f"{effect['true_unadjusted']:.2f}")
        text += "."
    return text.strip()


def planted_effect_line(settings: Settings) -> str | None:
    """What ``leadhub demo`` prints after the report: the planted effect against the estimate.

    None when the data is not the demo's or nothing has been built yet.
    """
    effect = planted_effect(settings)
    source = _report_source(settings)
    if effect is None or source is None:
        return None
    with connect(source, read_only=True) as con:
        if not _has_marts(con):
            return None
        return planted_effect_text(rearrest_estimates(con), effect)


# ---------------------------------------------------------------- what the data covers

@dataclass(frozen=True)
class Coverage:
    """One extract: the months its events span and its latest accepted delivery."""
    extract: str
    first_month: date | None
    last_month: date | None
    batches: int
    latest_received: datetime | None


PERIOD_COLUMNS = ("source", "period_first_month", "period_last_month")


def _periods(con) -> dict[str, tuple[date | None, date | None]]:
    """{extract: (first month, last month)} of the events of its current rows.

    The published snapshot holds them in ``ops.snapshot_info``, taken from the exact dates
    before the snapshot's own dates were coarsened; on the warehouse itself the same query
    runs over the current rows. A snapshot from before these columns existed has none.
    """
    from transforms.publish import _snapshot_info_sql

    columns = {r["column_name"] for r in _fetch(con, """SELECT column_name FROM duckdb_columns()
        WHERE schema_name = 'ops' AND table_name = 'snapshot_info'""")}
    current = _fetch(con, "SELECT 1 FROM duckdb_views() WHERE schema_name = 'current' LIMIT 1")
    if columns:
        if not set(PERIOD_COLUMNS) <= columns:
            return {}
        source = "ops.snapshot_info"
    elif current:
        source = f"({_snapshot_info_sql()})"
    else:
        return {}
    return {r["source"]: (r["period_first_month"], r["period_last_month"])
            for r in _fetch(con, f"SELECT {', '.join(PERIOD_COLUMNS)} FROM {source} AS s")}


def data_coverage(con) -> list[Coverage]:
    """Per extract: first and last month of its events, batches loaded, latest receipt."""
    periods = _periods(con)
    received = {r["contract"]: r for r in _fetch(con, """
        SELECT contract, count(*) AS batches, max(received_at) AS latest_received
        FROM ops.batches GROUP BY contract""")}
    out = []
    for name in load_contracts():
        first, last = periods.get(name, (None, None))
        r = received.get(name)
        out.append(Coverage(name, first, last, r["batches"] if r else 0,
                            r["latest_received"] if r else None))
    return out


def lineage_table(coverage: list[Coverage]) -> Table:
    """Per extract: the period its events cover, the batches loaded and the latest receipt."""
    rows = [[c.extract,
             f"{c.first_month:%Y-%m}" if c.first_month else NOT_APPLICABLE,
             f"{c.last_month:%Y-%m}" if c.last_month else NOT_APPLICABLE,
             str(c.batches),
             c.latest_received.strftime("%Y-%m-%d %H:%M") if c.latest_received else "none received"]
            for c in coverage]
    return Table(name="batch_lineage",
                 title="Data lineage: period covered and deliveries loaded, per extract",
                 header=["Extract", "First month of events", "Last month of events", "Batches",
                         "Latest received"],
                 rows=rows, sources=frozenset(),
                 note="Months of the events in the extract's current rows, by the date each "
                      "row is about (referral, arrest, booking, case referral, consent, intake "
                      "or contact date). Latest received: when the newest accepted delivery of "
                      "the extract arrived.")


def build_tables(con, coverage: list[Coverage] | None = None) -> list[Table]:
    """Every published table, in report order."""
    return [*referral_tables(con), first_contact_table(con), caseload_table(con),
            services_table(con), outcomes_table(con), *rearrest_tables(con),
            *justice_counts_tables(con), *equity_tables(con),
            lineage_table(data_coverage(con) if coverage is None else coverage)]


def _png(fig: Figure) -> str:
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=96, bbox_inches="tight")
    return base64.b64encode(buffer.getvalue()).decode("ascii")


# ---------------------------------------------------------------- rendering

CSS = """
body { font-family: Georgia, 'Times New Roman', serif; max-width: 960px; margin: 2em auto;
       padding: 0 1em; color: #1d1d1d; line-height: 1.45; }
h1 { font-size: 1.6em; margin-bottom: .2em; } h2 { font-size: 1.2em; margin-top: 2em; }
.meta { color: #555; } .note { font-size: .9em; color: #444; }
table { border-collapse: collapse; margin: .8em 0; font-size: .9em; }
th, td { border: 1px solid #bbb; padding: .25em .6em; text-align: right; }
th { background: #eef1f5; } td:first-child, th:first-child { text-align: left; }
img { max-width: 100%; } .notice { border: 2px solid #8c2f2f; padding: .6em 1em; }
footer { margin-top: 3em; font-size: .85em; color: #444; border-top: 1px solid #ccc; }
"""


def needs_part2_notice(tables: list[Table]) -> bool:
    """Part 2 requires the re-disclosure notice on anything drawn from treatment records."""
    return any(TREATMENT in t.sources for t in tables)


def _html_table(t: Table) -> str:
    head = "".join(f"<th>{html.escape(h)}</th>" for h in t.header)
    body = "".join("<tr>" + "".join(f"<td>{html.escape(c)}</td>" for c in row) + "</tr>"
                   for row in t.rows)
    if not t.rows:
        body = f'<tr><td colspan="{len(t.header)}">No data yet.</td></tr>'
    parts = [f'<section class="report-table" id="{t.name}"><h2>{html.escape(t.title)}</h2>']
    if TREATMENT in t.sources:
        parts.append(f'<p class="notice part2">{html.escape(PART2_NOTICE)}</p>')
    parts.append(f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>")
    if t.note:
        parts.append(f'<p class="note">{html.escape(t.note)}</p>')
    if t.chart_png:
        parts.append(f'<img alt="{html.escape(t.title)}" src="data:image/png;base64,{t.chart_png}">')
    parts.append("</section>")
    return "\n".join(parts)


def _methods(ctx: ReportContext) -> str:
    s = ctx.settings
    precincts = html.escape(", ".join(s.get("comparison_precincts") or []))
    items = [
        "<b>LEAD cohort</b>: every person with a police LEAD referral; the index date is the "
        "first referral date.",
        f"<b>Comparison cohort</b>: people never referred to LEAD who had an arrest with a "
        f"LEAD-eligible charge in a comparison precinct ({precincts}) "
        f"between {s.get('program_start')} and {s.get('program_end')}; the index date is the first "
        f"such arrest. A person who meets both definitions is counted as LEAD.",
        "<b>Windows</b>: for a window of W days, \"before\" is [index &minus; W, index) and "
        "\"after\" is (index, index + W]; events on the index day count in neither.",
        "<b>Arrests</b>: distinct police arrests by arrest date. <b>Bookings</b>: distinct jail "
        "bookings by booking date. <b>Jail days</b>: calendar days from booking date to release "
        "date, both included, summed over those bookings; people still in custody are counted up "
        "to the latest booking or release date in the jail data.",
        "<b>Re-arrest</b>: at least one arrest in the after-window. The odds ratio compares the "
        "odds of re-arrest within 365 days, LEAD vs comparison, with Woolf's 95% interval; the "
        "adjusted estimate is a logistic regression on cohort, prior arrests in the 365 days "
        "before the index date, age at the index date and sex.",
        "<b>People</b> are linked across agencies on pseudonymized identifiers; no names, "
        "identifiers or pseudonyms appear in this report. Treatment records are used for a "
        "person only while their 42 CFR Part 2 consent is active.",
        f"<b>Small cells</b>: counts from 1 to {SMALL_CELL_MAX} are shown as "
        f"\"{html.escape(SUPPRESSED)}\"; counts, means, shares and ratios that would reveal such "
        f"a count are shown as \"{WITHHELD}\". Complementary suppression: wherever a row, a "
        f"column, or a group of months and its quarter has a published total, at least two of "
        f"its cells are hidden or none, so no hidden count follows by subtraction.",
        f"<b>Unstable rates</b>: rates, means and shares resting on fewer than {UNSTABLE_EVENTS} "
        f"events are flagged; they can change a lot with one more or one fewer event.",
        "<b>Felony and misdemeanor charges</b>: charges the police referred to the prosecutor, by "
        "referral date, whatever the charging decision.",
        "<b>Justice Counts</b>: annual counts follow the Justice Counts metric definitions where "
        "the extracts allow: arrests by offense type (person, property, drug, public order, other) "
        "of the most serious charge, race and sex; prosecutor cases referred, declined, diverted "
        "and prosecuted; jail admissions, releases and readmissions within 365 days of release.",
        "<b>Engagement</b>: time to first contact, caseload and services come from the "
        "case-management provider's records (42 CFR Part 2); see the notice on those tables.",
        f"Cohort definitions: transforms/evaluation.yaml version {s.get('version')}.",
    ]
    return "<h2>Methods</h2><ul>" + "".join(f"<li>{i}</li>" for i in items) + "</ul>"


def _period_html(ctx: ReportContext) -> tuple[str, str]:
    """(title suffix, sentence): the months the events cover and when data was last received."""
    spans = [c for c in ctx.coverage if c.first_month and c.last_month]
    received = ctx.latest_received.isoformat() if ctx.latest_received else None
    if not spans:
        return ("no data received" if received is None else f"data received {received}",
                "No events yet." + (f" Latest delivery received {received}." if received else
                                    " No data received."))
    first = min(c.first_month for c in spans)
    last = max(c.last_month for c in spans)
    sentence = f"Events from {first:%Y-%m} to {last:%Y-%m}"
    earliest = min(spans, key=lambda c: (c.last_month, c.extract))
    if earliest.last_month < last:
        sentence += (f"; the extracts end in different months, the earliest "
                     f"({html.escape(earliest.extract)}) in {earliest.last_month:%Y-%m}")
    sentence += (f" (each extract's period and latest delivery are in the "
                 f'<a href="#batch_lineage">data lineage table</a>). '
                 f"Latest delivery received {received or 'never'}.")
    return f"events {first:%Y-%m} to {last:%Y-%m}", sentence


def render_html(tables: list[Table], ctx: ReportContext) -> str:
    """The whole report as one HTML string: inline CSS and images, no external resources."""
    title_period, period = _period_html(ctx)
    notice = (f'<p class="notice"><b>Notice:</b> {html.escape(PART2_NOTICE)}</p>'
              if needs_part2_notice(tables) else "")
    demo = (f'<p class="notice demo"><b>Demo data, not a real county.</b> '
            f'{html.escape(ctx.demo_note)}</p>' if ctx.demo_note else "")
    body = "\n".join(_html_table(t) for t in tables)
    return f"""<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>LEAD evaluation report, {title_period}</title>
<style>{CSS}</style>
</head>
<body>
<h1>LEAD evaluation report</h1>
<p class="meta">{period} Generated {ctx.generated_at.strftime("%Y-%m-%d %H:%M")}.</p>
{demo}
{notice}
{body}
{_methods(ctx)}
<footer><p>Small-cell protection: counts from 1 to {SMALL_CELL_MAX} are shown as
"{html.escape(SUPPRESSED)}"; values that would reveal them are shown as "{WITHHELD}".
Person-level tables are never published.</p></footer>
</body>
</html>
"""


def csv_rows(table: Table) -> list[list[str]]:
    """The CSV body: the rows, then the Part 2 notice as a last line when treatment records were used.

    The notice travels inside the file because a CSV is easily sent on alone;
    its first cell starts with "Notice:" so a reader can drop it.
    """
    rows = [list(r) for r in table.rows]
    if TREATMENT in table.sources:
        rows.append([f"Notice: {PART2_NOTICE}"] + [""] * (len(table.header) - 1))
    return rows


def _write_csv(path: Path, table: Table) -> None:
    """Through the shared exporter, which escapes cells a spreadsheet would run as formulas."""
    write_csv(path, table.header, csv_rows(table))


def _replace_dir(source: Path, target: Path) -> None:
    """Put a finished folder in place, so readers never see a half-written report.

    The previous folder is renamed aside (atomic) before it is deleted: a run
    killed while deleting leaves a partial folder only under the hidden ``.old``
    name, never under ``target``.
    """
    old = target.with_name(f".{target.name}.old")
    if old.exists():
        shutil.rmtree(old)
    if target.exists():
        target.rename(old)
    source.rename(target)
    shutil.rmtree(old, ignore_errors=True)


def _report_source(settings: Settings) -> Path | None:
    """The published snapshot when there is one, else the warehouse, else None."""
    from transforms.publish import snapshot_path

    for source in (snapshot_path(settings), Path(settings.warehouse_path)):
        if source.is_file():
            return source
    return None


def _has_marts(con) -> bool:
    return bool(con.execute("""SELECT count(*) FROM duckdb_tables()
        WHERE schema_name = 'marts' AND table_name = 'outcomes_summary'""").fetchone()[0])


def write_report(settings: Settings, today: date | None = None) -> dict[str, str]:
    """Write reports/lead_report_<date>/ (HTML + CSVs) and refresh reports/latest/.

    Returns {'html': path, '<table name>': csv path, ...} for the dated folder.

    Reads the published snapshot when there is one: it holds exactly the last
    committed build (marts and the batches they were built from agree), and a
    reader of the snapshot never holds up a load. Without a snapshot (a
    warehouse built before publication existed) it reads the warehouse itself.
    """
    source = _report_source(settings)
    if source is None:
        raise LeadHubError(f"no warehouse at {settings.warehouse_path}; run ingest and build first")
    effect = planted_effect(settings)
    with connect(source, read_only=True) as con:
        if not _has_marts(con):
            raise LeadHubError("the warehouse has no marts yet; run build before report")
        coverage = data_coverage(con)
        tables = build_tables(con, coverage)
        as_of = con.execute("SELECT max(received_at)::DATE FROM ops.batches").fetchone()[0]
        evaluation = _fetch(con, "SELECT * FROM core.evaluation_settings")
        demo_note = planted_effect_text(rearrest_estimates(con), effect) if effect else None
    ctx = ReportContext(latest_received=as_of, generated_at=datetime.now(),
                        settings=evaluation[0] if evaluation else {}, coverage=coverage,
                        demo_note=demo_note)

    reports = Path(settings.reports_dir)
    reports.mkdir(parents=True, exist_ok=True)
    name = f"lead_report_{(today or date.today()).isoformat()}"
    staging = reports / f".{name}.partial"
    if staging.exists():
        shutil.rmtree(staging)
    staging.mkdir()
    (staging / "lead_report.html").write_text(render_html(tables, ctx), encoding="utf-8")
    for t in tables:
        _write_csv(staging / f"{t.name}.csv", t)
    if needs_part2_notice(tables):
        (staging / "PART2_NOTICE.txt").write_text(PART2_NOTICE + "\n", encoding="utf-8")

    final = reports / name
    latest_staging = reports / ".latest.partial"
    if latest_staging.exists():
        shutil.rmtree(latest_staging)
    shutil.copytree(staging, latest_staging)
    _replace_dir(staging, final)
    _replace_dir(latest_staging, reports / "latest")

    paths = {"html": str(final / "lead_report.html")}
    paths.update({t.name: str(final / f"{t.name}.csv") for t in tables})
    return paths
