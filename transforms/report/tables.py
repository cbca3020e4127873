"""The SQL that builds each published table from marts and ops, in report order.

Only aggregates: no person-level row is ever returned.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from transforms.report.charts import line_chart, outcomes_chart
from transforms.report.coverage import Coverage, data_coverage, lineage_table
from transforms.report.life_tables import life_outcome_tables
from transforms.report.model import (COHORT_LABELS, MEASURES, RE_ARREST_WINDOW,
                                     REFERRAL_TYPES, Table, fetch_dicts, month_starts, quarter_label)
from transforms.report.statistics import adjusted_odds_ratio, odds_ratio_woolf
from transforms.report.suppression import (NOT_APPLICABLE, TOTAL, UNSTABLE_EVENTS, WITHHELD, Cells,
                                           part_cell, count_cell, derived_cell, is_small, rate_cell,
                                           small_cell_max, suppressed_label)


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
    rows = fetch_dicts(con, """SELECT month, referral_type, precinct, sum(referrals)::BIGINT AS n
                          FROM marts.referrals_monthly GROUP BY ALL ORDER BY ALL""")
    types = list(REFERRAL_TYPES) + sorted({r["referral_type"] for r in rows} - set(REFERRAL_TYPES))
    months = month_starts(min(r["month"] for r in rows), max(r["month"] for r in rows)) if rows else []
    quarters = sorted({quarter_label(m) for m in months})
    precincts = sorted({r["precinct"] for r in rows})
    by_month, by_quarter, by_precinct = {}, {}, {}
    for r in rows:
        key_t = r["referral_type"]
        by_month[(r["month"], key_t)] = by_month.get((r["month"], key_t), 0) + r["n"]
        q = quarter_label(r["month"])
        by_quarter[(q, key_t)] = by_quarter.get((q, key_t), 0) + r["n"]
        by_precinct[(r["precinct"], key_t)] = by_precinct.get((r["precinct"], key_t), 0) + r["n"]

    cells = Cells()
    cells.grid("month", months, types, by_month, column_totals=False)
    cells.grid("quarter", quarters, types, by_quarter, column_totals=False)
    cells.grid("precinct", precincts, types, by_precinct)
    for q in quarters:
        in_q = [m for m in months if quarter_label(m) == q]
        for t in types + [TOTAL]:
            cells.sums_to([("month", m, t) for m in in_q], ("quarter", q, t))
    for t in types + [TOTAL]:
        cells.sums_to([("quarter", q, t) for q in quarters], ("precinct", TOTAL, t))
    cells.resolve()

    note = (f"Referrals counted by referral date, linked to a person or not. \"{suppressed_label()}\": "
            f"1 to {small_cell_max()} referrals; \"suppressed\": withheld so that no small count can be "
            "worked out from the totals here or in the other referral tables.")
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
        quarterly.chart_png = line_chart(
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
    summary = fetch_dicts(con, "SELECT * FROM marts.outcomes_summary ORDER BY window_days, cohort DESC")
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
                count_cell(n), part_cell(s["n_followup_complete"], n),
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
        table.chart_png = outcomes_chart(summary)
    return table


CONTACT_BINS = ((0, 7, "0 to 7 days"), (8, 30, "8 to 30 days"), (31, 90, "31 to 90 days"),
                (91, None, "More than 90 days"))


def first_contact_table(con) -> Table:
    """Days from first referral to the first case-management contact, LEAD participants."""
    people = fetch_dicts(con, "SELECT days_to_first_contact AS days FROM marts.first_contact")
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
    rows = fetch_dicts(con, """SELECT month, sum(active_episodes)::BIGINT AS n
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
        table.chart_png = line_chart("Open case-management episodes per month "
                                      "(gaps: suppressed months)",
                                      [r[0] for r in shown], {"open episodes": [r[1] for r in shown]},
                                      "Episodes")
    return table


def services_table(con) -> Table:
    """Service contacts per quarter by service type, with totals."""
    rows = fetch_dicts(con, """SELECT month, service_type, sum(contacts)::BIGINT AS n
                          FROM marts.services_monthly GROUP BY ALL ORDER BY ALL""")
    quarters = sorted({quarter_label(r["month"]) for r in rows})
    types = sorted({r["service_type"] for r in rows})
    values: dict = {}
    for r in rows:
        key_ = (quarter_label(r["month"]), r["service_type"])
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


JC_OFFENSE_TYPES = ("Person Offenses", "Property Offenses", "Public Order Offenses", "Drug Offenses",
                    "Other Offenses", "Unknown Offenses")
JC_BIOLOGICAL_SEX = ("Male Biological Sex", "Female Biological Sex", "Unknown Biological Sex")
ARREST_BREAKDOWNS = (("offense_type", "offense type", JC_OFFENSE_TYPES),
                     ("race_ethnicity", "race/ethnicity", ()), ("biological_sex", "biological sex", JC_BIOLOGICAL_SEX))
# The report's names of the arrest tables (kept from before the marts followed the definitions).
ARREST_TABLE_NAMES = {"offense_type": "arrests_offense_type", "race_ethnicity": "arrests_race",
                      "biological_sex": "arrests_sex"}
CASE_MEASURES = (("PROSECUTION_CASES REFERRED", "Referred"), ("PROSECUTION_CASES_DECLINED", "Declined"),
                 ("PROSECUTION_CASES_DIVERTED", "Diverted/deferred"),
                 ("PROSECUTION_CASES_PROSECUTED", "Prosecuted"), ("PROSECUTION_CASES_DISPOSED", "Disposed"))
JAIL_MEASURES = (("JAILS_TOTAL_ADMISSIONS", "Admissions"), ("JAILS_TOTAL_RELEASES", "Releases"),
                 ("JAILS_READMISSIONS", "Readmissions"))


def justice_counts_tables(con) -> list[Table]:
    """The Justice Counts marts per year: arrests by offense type, race/ethnicity and biological
    sex; prosecution cases by metric; jail admissions, releases, readmissions and population.

    The marts are monthly and hold the Publisher's labels (transforms/sql/
    75_marts_justice_counts.sql); the report sums them per year, where counts are large
    enough to show. The bulk-upload files (leadhub justice-counts) carry the months.
    """
    arrests = fetch_dicts(con, """SELECT year, offense_type, race_ethnicity, biological_sex, arrests
                                  FROM marts.jc_arrests WHERE year IS NOT NULL""")
    years = sorted({r["year"] for r in arrests})
    cells = Cells()
    tables = []
    for column, label, preferred in ARREST_BREAKDOWNS:
        found = sorted({r[column] for r in arrests})
        values_ = [v for v in preferred if v in found] + [v for v in found if v not in preferred]
        counts: dict = {}
        for r in arrests:
            counts[(r["year"], r[column])] = counts.get((r["year"], r[column]), 0) + r["arrests"]
        name = ARREST_TABLE_NAMES[column]
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
                 note="Police arrests by arrest date (metric LAW_ENFORCEMENT_ARRESTS); an arrest counts "
                      "once, under the offense type of its most serious charge ranked person > property "
                      "> public order > drug > other > unknown; race/ethnicity and biological sex as "
                      "recorded on the arrest.")
           for name, label, values_ in tables]

    cases = fetch_dicts(con, """SELECT year, metric, sum(cases)::BIGINT AS n FROM marts.jc_cases
                                WHERE year IS NOT NULL GROUP BY ALL""")
    case_counts = {(r["year"], r["metric"]): r["n"] for r in cases}
    out.append(Table(
        name="jc_prosecutor_cases", title="Prosecution cases per year, by metric (Justice Counts)",
        header=["Year", *(label for _, label in CASE_MEASURES)],
        rows=[[str(y), *(count_cell(case_counts.get((y, m), 0)) for m, _ in CASE_MEASURES)]
              for y in sorted({r["year"] for r in cases})],
        sources=frozenset({"prosecutor"}),
        note="Each column is its own Justice Counts metric, dated by its own event, and they do not "
             "add up: referred by referral date; declined (every charge declined) by the last "
             "decision date; diverted/deferred (any charge diverted, before or after filing) and "
             "prosecuted (any charge filed) by the first such decision; disposed by the last "
             "disposition date, or by diversion for a case diverted and never filed."))

    jail = fetch_dicts(con, """SELECT year, month, metric, sum(value)::BIGINT AS n FROM marts.jc_jail
                               WHERE year IS NOT NULL GROUP BY ALL""")
    jail_counts: dict = {}
    for r in jail:
        key_ = (r["year"], r["metric"])
        if r["metric"] == "JAILS_TOTAL_POPULATION":
            if r["month"] == 12:
                jail_counts[key_] = r["n"]
        else:
            jail_counts[key_] = jail_counts.get(key_, 0) + r["n"]
    out.append(Table(
        name="jc_jail", title="Jail admissions, releases, readmissions and population per year (Justice Counts)",
        header=["Year", *(label for _, label in JAIL_MEASURES), "Population on 31 December"],
        rows=[[str(y), *(count_cell(jail_counts.get((y, m), 0)) for m, _ in JAIL_MEASURES),
               count_cell(jail_counts[(y, "JAILS_TOTAL_POPULATION")])
               if (y, "JAILS_TOTAL_POPULATION") in jail_counts else NOT_APPLICABLE]
              for y in sorted({r["year"] for r in jail})],
        sources=frozenset({"jail"}),
        note="Admissions: bookings by booking date. Releases: by release date. Readmissions: "
             "bookings of a person incarcerated at any time in the 365 days before (bookings that "
             "could not be linked to a person are never readmissions). Population: people in "
             f"custody at the end of 31 December ({NOT_APPLICABLE} when the extract does not reach "
             "past it). The columns are separate counts and are not added up."))
    return out


def equity_tables(con) -> list[Table]:
    """Race and ethnicity of people referred vs people arrested for the same offense types."""
    rows = fetch_dicts(con, "SELECT population, race, ethnicity, people FROM marts.equity")
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
    people = fetch_dicts(con, """
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
               part_cell(yes, yes + no), part_cell(no, yes + no),
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


# The Justice Counts marts: their tables are a purpose of their own in the agreements.
JUSTICE_COUNTS_MARTS = ("jc_arrests", "jc_cases", "jc_jail")
# Each builder, in report order, with the marts it reads. A snapshot leaves out the marts built
# from an agency whose agreement does not permit evaluation; their tables are left out with them.
BUILDERS = (
    (("referrals_monthly",), referral_tables),
    (("first_contact",), first_contact_table),
    (("caseload_monthly",), caseload_table),
    (("services_monthly",), services_table),
    (("outcomes_summary",), outcomes_table),
    (("outcomes", "cohort"), rearrest_tables),
    (JUSTICE_COUNTS_MARTS, justice_counts_tables),
    (("equity",), equity_tables),
    (("life_outcomes_monthly", "life_status_monthly", "life_arrest_periods"), life_outcome_tables),
)


def marts_present(con) -> set[str]:
    return {t for (t,) in con.execute("SELECT table_name FROM duckdb_tables() "
                                      "WHERE database_name = current_database() AND schema_name = 'marts'")
            .fetchall()}


def build_tables(con, coverage: list[Coverage] | None = None, withheld: frozenset[str] = frozenset()) -> list[Table]:
    """Every published table whose marts the source holds and are not ``withheld``, in report order."""
    present = marts_present(con) - withheld
    tables: list[Table] = []
    for marts, builder in BUILDERS:
        if set(marts) <= present:
            built = builder(con)
            tables.extend(built if isinstance(built, list) else [built])
    return [*tables, lineage_table(data_coverage(con) if coverage is None else coverage)]
