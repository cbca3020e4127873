"""The published report: files, numbers, suppression in the tables, the page and its charts.

The suppression and statistics functions on their own: tests/transforms/report/."""

from __future__ import annotations

import csv
import math
import shutil
from datetime import date, datetime, timedelta
from pathlib import Path

import duckdb
import numpy as np
import pytest

from transforms.report import (NOT_APPLICABLE, PART2_NOTICE, SUPPRESSED, WITHHELD, RearrestEstimates,
                               ReportContext, Table, count_cell, planted_effect, planted_effect_line,
                               planted_effect_text, render_html, write_report)

REPORT_DAY = date(2024, 2, 1)
MEASURE_LABELS = {"Arrests": "arrests", "Jail bookings": "bookings", "Jail days": "jail_days",
                  "Felony charges": "felony_charges", "Misdemeanor charges": "misdemeanor_charges"}
TABLES = {"referrals_monthly", "referrals_quarterly", "referrals_by_precinct", "time_to_first_contact",
          "caseload_monthly", "services_quarterly", "outcomes", "rearrest_2x2", "rearrest_odds_ratio",
          "jc_arrests_offense_type", "jc_arrests_race", "jc_arrests_sex", "jc_prosecutor_cases",
          "jc_jail", "equity_race", "equity_ethnicity", "life_outcomes_monthly", "life_contacts_monthly",
          "life_outcome_models", "life_arrests_model", "batch_lineage"}
TREATMENT_TABLES = {"time_to_first_contact", "caseload_monthly", "services_quarterly", "life_outcomes_monthly",
                    "life_contacts_monthly", "life_outcome_models", "life_arrests_model"}


def populate(w) -> None:
    """40 LEAD participants (34 of them case-management clients) and 45 comparison people
    with regular, known histories."""
    for i in range(40):
        p = f"L{i:02d}"
        if i < 20:
            index, kind = date(2022, 3, 1) + timedelta(days=i), "arrest_diversion"
        elif i < 35:
            index, kind = date(2022, 4, 1) + timedelta(days=i - 20), "social_contact"
        else:
            index, kind = date(2022, 5, 1) + timedelta(days=i - 35), "community"
        w.referral(p, index, kind, age=20 + i % 30, sex="F" if i % 3 == 0 else "M")
        before = index - timedelta(days=100)
        w.arrest(p, before, (("PRP01", "misdemeanor"),))
        w.booking(p, datetime.combine(before, datetime.min.time()) + timedelta(hours=10),
                  datetime.combine(before, datetime.min.time()) + timedelta(days=i % 4, hours=12))
        w.case(p, before, (("PRP01", "misdemeanor"),))
        if i % 2 == 0:
            after = index + timedelta(days=50)
            w.arrest(p, after, (("PER02", "felony"),))
            w.booking(p, datetime.combine(after, datetime.min.time()) + timedelta(hours=3),
                      datetime.combine(after, datetime.min.time()) + timedelta(days=3))
            w.case(p, after, (("PER02", "felony"), ("PER01", "misdemeanor")))
        if i % 5 == 0:
            w.arrest(p, index + timedelta(days=200), (("OTH01", "misdemeanor"),))
        # Case management: 30 consenting clients, first contact 3 + i days after referral
        # (21 of them within 30 days); 4 who revoked consent, whose contacts link to no one.
        if i < 34:
            w.client(p, "active" if i < 30 else "revoked")
            w.episode(p, index + timedelta(days=2))
            w.contact(p, index + timedelta(days=3 + i))
            w.contact(p, index + timedelta(days=40 + i), "housing")
    for i in range(45):
        p = f"C{i:02d}"
        index = date(2022, 6, 1) + timedelta(days=i % 28)
        w.arrest(p, index, (("DRG01", "felony"),), precinct="EAST" if i % 2 else "WEST",
                 age=22 + i % 25, sex="M" if i % 4 else "F")
        if i % 3:
            w.arrest(p, index - timedelta(days=100), (("PRP01", "misdemeanor"),))
            day = datetime.combine(index - timedelta(days=100), datetime.min.time())
            w.booking(p, day + timedelta(hours=8), day + timedelta(days=1 + i % 2))
        if i % 4:
            w.arrest(p, index + timedelta(days=60 + i), (("PRP01", "misdemeanor"),))
            day = datetime.combine(index + timedelta(days=60 + i), datetime.min.time())
            w.booking(p, day + timedelta(hours=8), day + timedelta(days=2))


def read_csv(path: str | Path) -> list[dict]:
    with open(path, newline="", encoding="utf-8") as f:
        return list(csv.DictReader(f))


@pytest.fixture
def built(settings, make_warehouse):
    """A warehouse at settings.warehouse_path with populate()'s data, models run, closed."""
    w = make_warehouse(settings.warehouse_path)
    populate(w)
    w.run()
    w.close()
    return settings


def direct(settings, sql: str, params: list | None = None) -> list[tuple]:
    con = duckdb.connect(str(settings.warehouse_path), read_only=True)
    try:
        return con.execute(sql, params or []).fetchall()
    finally:
        con.close()


# ---------------------------------------------------------------- the written report

def test_report_files_and_layout(built):
    paths = write_report(built, today=REPORT_DAY)
    folder = built.reports_dir / "lead_report_2024-02-01"
    assert Path(paths["html"]) == folder / "lead_report.html"
    assert set(paths) == {"html"} | TABLES
    for p in paths.values():
        assert Path(p).parent == folder and Path(p).is_file()
    latest = built.reports_dir / "latest"
    assert sorted(f.name for f in latest.iterdir()) == sorted(f.name for f in folder.iterdir())
    for f in folder.iterdir():
        assert (latest / f.name).read_bytes() == f.read_bytes()

    page = Path(paths["html"]).read_text()
    assert page.count("data:image/png;base64,") == 3    # quarterly referrals, caseload, outcomes
    for external in ("http://", "https://", "<script", "<link", "src=\"/", "url("):
        assert external not in page
    # Events, not deliveries (received 2024-01-10): the earliest is L00's arrest 100 days
    # before 2022-03-01 (2021-11-21); the latest is L35's arrest 200 days after 2022-05-01
    # (2022-11-17); comparison arrests end 2022-06-16 + 60 + 43 days = 2022-09-27.
    assert "Events from 2021-11 to 2022-11" in page
    assert "Latest delivery received 2024-01-10" in page
    assert "Demo data" not in page                     # no answers folder: not the demo
    assert "Methods" in page and "&lt;11" in page
    # Engagement tables draw on treatment records: the notice is on the page, on each of
    # those tables, in a sidecar, and as the last line of their CSVs (and only theirs).
    assert page.count(PART2_NOTICE) == 1 + len(TREATMENT_TABLES)
    assert (folder / "PART2_NOTICE.txt").read_text().strip() == PART2_NOTICE
    for name in TABLES:
        last = Path(paths[name]).read_text().strip().splitlines()[-1]
        assert (PART2_NOTICE in last) == (name in TREATMENT_TABLES), name

    # A rerun the same day replaces the folder rather than adding to it.
    write_report(built, today=REPORT_DAY)
    assert sorted(p.name for p in built.reports_dir.iterdir()) == ["latest", "lead_report_2024-02-01"]


def _record_linkage_run(settings, model_version: str) -> None:
    """What a build records: a row of ops.linkage_runs, written by the build's own recorder."""
    from transforms.link import _record_run

    con = duckdb.connect(str(settings.warehouse_path))
    try:
        _record_run(con, model_version, "1", {"agency_ids": 120, "persons": 85, "merges_refused": 0})
    finally:
        con.close()


def test_methods_name_the_linkage_model_of_the_build_and_show_its_match_weights(built):
    from transforms.linkage_store import (default_model, match_weight_chart_svg, save_model, stamp,
                                          version_of)

    default = default_model()
    trained = stamp(default, {"records": 2000, "source": "test"}, {"version": "1", "threshold": 0.9},
                    trained_at=datetime(2024, 1, 15))
    save_model(built.data_dir, trained)
    _record_linkage_run(built, version_of(default))
    _record_linkage_run(built, version_of(trained))         # the last run is the build's
    page = Path(write_report(built, today=REPORT_DAY)["html"]).read_text()
    methods = page[page.index("<h2>Methods</h2>"):]
    assert f"model version {version_of(trained)}" in methods
    assert version_of(default) not in page
    assert match_weight_chart_svg(trained) in methods         # inline, exactly the store's chart
    assert "http://" not in page.replace('xmlns="http://www.w3.org/2000/svg"', "")


def test_methods_say_when_the_linkage_model_cannot_be_shown(built):
    _record_linkage_run(built, "20240101T000000Z-000000000000")   # no such model file
    page = Path(write_report(built, today=REPORT_DAY)["html"]).read_text()
    assert "model version 20240101T000000Z-000000000000" in page
    assert "match-weight chart is not shown" in page and "<svg" not in page
    assert str(built.data_dir) not in page                    # the models folder is not published


def test_methods_without_a_linkage_run_say_so(built):
    page = Path(write_report(built, today=REPORT_DAY)["html"]).read_text()
    assert "no linkage run is recorded" in page and "<svg" not in page


def test_report_has_no_tokens_or_person_keys(built):
    paths = write_report(built, today=REPORT_DAY)
    secrets = {v for row in direct(built, "SELECT person_token, person_key FROM core.person_link")
               for v in row}
    assert len(secrets) > 100
    for p in paths.values():
        text = Path(p).read_text()
        assert not [s for s in secrets if s in text]
        assert "tok-" not in text and "pk-" not in text


def test_referral_tables_match_sql(built):
    paths = write_report(built, today=REPORT_DAY)
    truth = {(m, t): n for m, t, n in direct(built, """
        SELECT strftime(referral_date, '%Y-%m'), referral_type, count(*)
        FROM core.referral GROUP BY ALL""")}
    monthly = read_csv(paths["referrals_monthly"])
    assert [r["Month"] for r in monthly] == ["2022-03", "2022-04", "2022-05"]
    for r in monthly:
        for kind in ("arrest_diversion", "social_contact", "community"):
            n = truth.get((r["Month"], kind), 0)
            if 1 <= n <= 10:
                assert r[kind] == SUPPRESSED
            elif r[kind] != WITHHELD:
                assert r[kind] == str(n), (r["Month"], kind)
    assert monthly[0]["arrest_diversion"] == "20" and monthly[2]["community"] == SUPPRESSED
    quarterly = {r["Quarter"]: r for r in read_csv(paths["referrals_quarterly"])}
    assert set(quarterly) == {"2022-Q1", "2022-Q2"}
    assert (quarterly["2022-Q1"]["arrest_diversion"], quarterly["2022-Q1"]["Total"]) == ("20", "20")
    assert quarterly["2022-Q2"]["community"] == SUPPRESSED         # the 5 community referrals
    period = {r["Precinct"]: r for r in read_csv(paths["referrals_by_precinct"])}
    assert period["Total"]["Total"] == "40" and period["Total"]["arrest_diversion"] == "20"
    assert period["Total"]["community"] == SUPPRESSED


def test_outcomes_table_matches_sql(built):
    rows = read_csv(write_report(built, today=REPORT_DAY)["outcomes"])
    assert len(rows) == 2 * 2 * 5
    checked = 0
    for r in rows:
        window = int(r["Window"].split()[0])
        cohort = r["Cohort"].lower()
        measure = MEASURE_LABELS[r["Measure"]]
        if measure == "arrests":
            table, day, value = "core.arrest", "arrest_date", "count(DISTINCT e.arrest_id)"
        elif measure.endswith("_charges"):
            table, day = "core.case_charge", "referral_date"
            value = f"count(*) FILTER (WHERE e.severity = '{measure.split('_')[0]}')"
        else:
            table, day = "core.booking", "booking_date"
            value = "count(DISTINCT e.booking_id)" if measure == "bookings" else "sum(e.jail_days)"
        n, before, after = direct(built, f"""
            SELECT (SELECT count(*) FROM marts.cohort WHERE cohort = $1),
                   (SELECT coalesce({value}, 0) FROM marts.cohort c JOIN {table} e USING (person_key)
                    WHERE c.cohort = $1 AND e.{day} >= c.index_date - $2::INTEGER
                      AND e.{day} < c.index_date),
                   (SELECT coalesce({value}, 0) FROM marts.cohort c JOIN {table} e USING (person_key)
                    WHERE c.cohort = $1 AND e.{day} > c.index_date
                      AND e.{day} <= c.index_date + $2::INTEGER)""", [cohort, window])[0]
        assert r["People"] == str(n)
        assert r["Total before"] == count_cell(before)
        assert r["Total after"] == count_cell(after)
        for column, total in (("Per person before", before), ("Per person after", after)):
            if 1 <= total <= 10:
                assert r[column] == WITHHELD
            else:
                assert r[column] == f"{total / n:.2f}"
                checked += 1
        flagged = {w for w, total in (("before", before), ("after", after))
                   if total < 20 and not 1 <= total <= 10}
        assert set(filter(None, r["Unstable rates (under 20 events)"].split(", "))) == flagged
    assert checked >= 24
    assert {r["People"] for r in rows} == {"40", "45"}


def test_rearrest_odds_ratio_matches_hand_computation(built):
    paths = write_report(built, today=REPORT_DAY)
    (a, b), (c, d) = [direct(built, """
        SELECT count(*) FILTER (WHERE rearrested), count(*) FILTER (WHERE NOT rearrested)
        FROM (SELECT c.person_key, EXISTS (
                  SELECT 1 FROM core.arrest e WHERE e.person_key = c.person_key
                    AND e.arrest_date > c.index_date AND e.arrest_date <= c.index_date + 365)
                  AS rearrested
              FROM marts.cohort c WHERE c.cohort = ?)""", [k])[0] for k in ("lead", "comparison")]
    assert min(a, b, c, d) > 10                      # otherwise the estimate would be withheld
    two_by_two = {r["Cohort"]: r for r in read_csv(paths["rearrest_2x2"])}
    assert (two_by_two["LEAD"]["Re-arrested"], two_by_two["LEAD"]["Not re-arrested"]) == (str(a), str(b))
    assert (two_by_two["Comparison"]["Re-arrested"],
            two_by_two["Comparison"]["Not re-arrested"]) == (str(c), str(d))
    assert two_by_two["LEAD"]["Share re-arrested"] == f"{a / (a + b):.1%}"

    odds = read_csv(paths["rearrest_odds_ratio"])
    ratio = (a * d) / (b * c)
    half_width = 1.96 * math.sqrt(1 / a + 1 / b + 1 / c + 1 / d)
    unadjusted = odds[0]
    assert float(unadjusted["Odds ratio"]) == pytest.approx(ratio, abs=0.006)
    assert float(unadjusted["95% CI low"]) == pytest.approx(ratio * math.exp(-half_width), abs=0.006)
    assert float(unadjusted["95% CI high"]) == pytest.approx(ratio * math.exp(half_width), abs=0.006)
    assert unadjusted["People"] == str(a + b + c + d)
    adjusted = odds[1]
    assert float(adjusted["95% CI low"]) < float(adjusted["Odds ratio"]) < float(adjusted["95% CI high"])


def test_lineage_table_counts_batches(built):
    rows = {r["Extract"]: r for r in read_csv(write_report(built, today=REPORT_DAY)["batch_lineage"])}
    batches = dict(direct(built, "SELECT contract, count(*) FROM ops.batches GROUP BY contract"))
    assert len(rows) == 8
    for name, r in rows.items():
        assert r["Batches"] == str(batches.get(name, 0))
    assert rows["treatment_clients"]["Latest received"].startswith("2024-01-10")
    # Periods from populate(): referrals 2022-03-01 to 2022-05-05; arrests 2021-11-21 to
    # 2022-11-17; every consent dated 2022-01-01; contacts 2022-03-04 (L00: 3 days after
    # 2022-03-01) to 2022-06-26 (L33: 2022-04-14 + 40 + 33 days).
    period = {name: (r["First month of events"], r["Last month of events"]) for name, r in rows.items()}
    assert period["police_referrals"] == ("2022-03", "2022-05")
    assert period["police_arrests"] == ("2021-11", "2022-11")
    assert period["treatment_clients"] == ("2022-01", "2022-01")
    assert period["treatment_contacts"] == ("2022-03", "2022-06")


def test_small_cells_are_suppressed(settings, make_warehouse):
    w = make_warehouse(settings.warehouse_path)
    for i in range(4):                                   # 4 LEAD, 3 of them re-arrested
        p = f"S{i}"
        w.referral(p, date(2022, 3, 1))
        w.arrest(p, date(2021, 12, 1))
        if i:
            w.arrest(p, date(2022, 4, 1))
    for i in range(12):                                  # 12 comparison, none re-arrested
        w.arrest(f"K{i}", date(2022, 6, 1), (("DRG01", "felony"),), precinct="EAST")
    w.run()
    w.close()
    paths = write_report(settings, today=REPORT_DAY)

    lead = [r for r in read_csv(paths["outcomes"]) if r["Cohort"] == "LEAD"]
    assert {r["People"] for r in lead} == {SUPPRESSED}
    assert {r["Per person before"] for r in lead} == {WITHHELD}
    comparison = [r for r in read_csv(paths["outcomes"]) if r["Cohort"] == "Comparison"]
    assert {r["People"] for r in comparison} == {"12"}
    assert read_csv(paths["referrals_monthly"])[0]["arrest_diversion"] == SUPPRESSED
    two_by_two = {r["Cohort"]: r for r in read_csv(paths["rearrest_2x2"])}
    assert (two_by_two["LEAD"]["Re-arrested"], two_by_two["LEAD"]["Not re-arrested"]) == (
        SUPPRESSED, SUPPRESSED)
    assert two_by_two["Comparison"]["Not re-arrested"] == "12"
    assert two_by_two["Comparison"]["Re-arrested"] == "0"
    assert two_by_two["Comparison"]["Share re-arrested"] == "0.0%"
    assert two_by_two["LEAD"]["Share re-arrested"] == WITHHELD
    assert {r["Odds ratio"] for r in read_csv(paths["rearrest_odds_ratio"])} == {WITHHELD}
    page = Path(paths["html"]).read_text()
    assert "<td>4</td>" not in page and "<td>3</td>" not in page
    assert "are shown as" in page


# ---------------------------------------------------------------- the page

def test_part2_notice_whenever_a_table_uses_treatment_records():
    ctx = ReportContext(latest_received=date(2024, 1, 1), generated_at=datetime(2024, 1, 2, 8, 0))
    police = Table("a", "Police table", ["x"], [["1"]], frozenset({"police"}))
    treatment = Table("b", "Contacts <per> month", ["x"], [["2"]], frozenset({"treatment"}))
    assert PART2_NOTICE not in render_html([police], ctx)
    page = render_html([police, treatment], ctx)
    assert PART2_NOTICE in page
    assert "Contacts &lt;per&gt; month" in page


def test_report_on_a_warehouse_without_data(settings, make_warehouse):
    w = make_warehouse(settings.warehouse_path)
    w.run()
    w.close()
    paths = write_report(settings, today=REPORT_DAY)
    page = Path(paths["html"]).read_text()
    assert "no data received" in page and "No data yet." in page
    assert read_csv(paths["referrals_monthly"]) == []
    assert {r["People"] for r in read_csv(paths["outcomes"])} == {"0"}
    assert {r["Odds ratio"] for r in read_csv(paths["rearrest_odds_ratio"])} == {NOT_APPLICABLE}


# ---------------------------------------------------------------- the report of a real pipeline run

HIDDEN = {SUPPRESSED, WITHHELD}
# For each table with published totals: (columns that add up, their total column, total row label).
ADDITIVE = {
    "referrals_monthly": (None, "Total", None),
    "referrals_quarterly": (None, "Total", None),
    "referrals_by_precinct": (None, "Total", "Total"),
    "services_quarterly": (None, "Total", "Total"),
    "jc_arrests_offense_type": (None, "Total", "Total"),
    "jc_arrests_race": (None, "Total", "Total"),
    "jc_arrests_sex": (None, "Total", "Total"),
    "equity_race": (["Referred", "Arrested"], None, "Total"),
    "equity_ethnicity": (["Referred", "Arrested"], None, "Total"),
    "time_to_first_contact": (["People"], None, "LEAD participants"),
    "rearrest_2x2": (["Re-arrested", "Not re-arrested"], "People", None),
}


@pytest.fixture(scope="module")
def demo_report(demo_hub, tools, tmp_path_factory):
    """The report of a copy of the session's synthetic hub: (settings, {table: rows as dicts})."""
    hub = tools.clone_hub(demo_hub, tmp_path_factory.mktemp("report_hub"))
    paths = write_report(hub)
    tables = {}
    for name, path in paths.items():
        if name != "html":
            tables[name] = [r for r in read_csv(path)
                            if not next(iter(r.values()), "").startswith("Notice:")]
    return hub, tables


def _additive_layout(name: str, rows: list[dict]) -> tuple[list[str], str | None, str | None]:
    parts, total_column, total_row = ADDITIVE[name]
    if parts is None:
        header = list(rows[0])
        parts = [h for h in header[1:] if h != total_column]
    return parts, total_column, total_row


def _unknowns(cells: list[str]) -> int:
    return sum(c in HIDDEN for c in cells)


def test_no_suppressed_cell_can_be_derived_from_published_totals(demo_report):
    _, tables = demo_report
    attacked = 0
    for name, rows in tables.items():
        if name == "batch_lineage":           # deliveries per extract: about files, not people
            continue
        for row in rows:                      # no count from 1 to 10 is ever printed
            for column, value in list(row.items())[1:]:
                if value.isdigit() and "Share" not in column and "Per person" not in column:
                    assert not 1 <= int(value) <= 10, (name, column, value)
        if name not in ADDITIVE:
            continue
        parts, total_column, total_row = _additive_layout(name, rows)
        first = list(rows[0])[0]
        body = [r for r in rows if r[first] != total_row]
        if total_column:                       # every row against its total
            for r in rows:
                assert _unknowns([r[c] for c in parts] + [r[total_column]]) != 1, (name, r)
                attacked += 1
        if total_row:                          # every column against the total row
            total = next(r for r in rows if r[first] == total_row)
            for c in parts + ([total_column] if total_column else []):
                assert _unknowns([r[c] for r in body] + [total[c]]) != 1, (name, c)
                attacked += 1
    # Across tables: the months of a quarter add up to it, the quarters to the period totals.
    quarters = {r["Quarter"]: r for r in tables["referrals_quarterly"]}
    period = next(r for r in tables["referrals_by_precinct"] if r["Precinct"] == "Total")
    for column in list(tables["referrals_quarterly"][0])[1:]:
        for q, qrow in quarters.items():
            year, n = q.split("-Q")
            months = {f"{year}-{m:02d}" for m in range(3 * int(n) - 2, 3 * int(n) + 1)}
            cells = [r[column] for r in tables["referrals_monthly"] if r["Month"] in months]
            assert _unknowns(cells + [qrow[column]]) != 1, (q, column)
        assert _unknowns([r[column] for r in quarters.values()] + [period[column]]) != 1, column
    assert attacked > 100
    # Protection must leave the quarterly and whole-period views useful.
    shown = [v for r in tables["referrals_quarterly"] for k, v in r.items() if k != "Quarter"]
    assert sum(v.isdigit() for v in shown) >= len(shown) / 3
    assert period["Total"].isdigit()


def _check_published(published: dict, truth: dict, what: str) -> int:
    """Every published count equals the recomputed one; hidden ones are hidden. Returns checks."""
    checked = 0
    for key, value in published.items():
        n = truth.get(key, 0)
        if value == SUPPRESSED:
            assert 1 <= n <= 10, (what, key, n)
        elif value != WITHHELD:
            assert value == str(n), (what, key, value, n)
            checked += 1
    return checked


def test_report_figures_recomputed_from_the_warehouse(demo_report):
    """Recomputed from the current (source-shaped) views and core tables, never from marts."""
    hub, tables = demo_report
    con = duckdb.connect(str(hub.warehouse_path), read_only=True)
    q = lambda sql: con.execute(sql).fetchall()  # noqa: E731
    try:
        checked = 0
        # Justice Counts ranks an arrest's charges person > property > public order > drug > other
        # > unknown (a code missing from the reference table).
        arrests = {(str(y), t): n for y, t, n in q("""
            WITH ranked AS (
                SELECT a.arrest_id, min(a.arrest_date) AS arrest_date,
                       min(CASE o.offense_type WHEN 'person' THEN 1 WHEN 'property' THEN 2
                           WHEN 'public_order' THEN 3 WHEN 'drug' THEN 4 WHEN 'other' THEN 5
                           ELSE 6 END) AS r
                FROM current.police_arrests a
                LEFT JOIN core.offense_code o ON o.offense_code = a.offense_code
                GROUP BY a.arrest_id)
            SELECT year(arrest_date), ['Person Offenses', 'Property Offenses', 'Public Order Offenses',
                   'Drug Offenses', 'Other Offenses', 'Unknown Offenses'][r], count(*)
            FROM ranked GROUP BY ALL""")}
        for y, n in q("""SELECT year(arrest_date)::VARCHAR, count(DISTINCT arrest_id)
                          FROM current.police_arrests GROUP BY ALL"""):
            arrests[(y, "Total")] = n
        published = {(r["Year"], c): v for r in tables["jc_arrests_offense_type"]
                     for c, v in r.items() if c != "Year" and r["Year"] != "Total"}
        checked += _check_published(published, arrests, "arrests by offense type")

        cases = {(y, "Referred"): n for y, n in q("""SELECT year(min_date)::VARCHAR, count(*) FROM (
            SELECT case_id, min(referral_date) AS min_date FROM current.prosecutor_cases GROUP BY 1)
            GROUP BY 1""")}
        published = {(r["Year"], "Referred"): r["Referred"] for r in tables["jc_prosecutor_cases"]
                     if r["Year"] != "Total"}
        checked += _check_published(published, cases, "cases referred")

        jail = {(y, "Admissions"): n for y, n in q("""SELECT year(b)::VARCHAR, count(*) FROM (
            SELECT booking_id, min(booking_ts) AS b FROM current.jail_bookings GROUP BY 1) GROUP BY 1""")}
        published = {(r["Year"], "Admissions"): r["Admissions"] for r in tables["jc_jail"]}
        checked += _check_published(published, jail, "jail admissions")

        services = {("Total", t): n for t, n in q(
            "SELECT service_type, count(*) FROM current.treatment_contacts GROUP BY 1")}
        total_row = next(r for r in tables["services_quarterly"] if r["Quarter"] == "Total")
        published = {("Total", c): v for c, v in total_row.items() if c not in ("Quarter", "Total")}
        checked += _check_published(published, services, "services")

        within_30 = q("""WITH firsts AS (
                SELECT person_key, min(referral_date) AS referred FROM core.referral
                WHERE person_key IS NOT NULL GROUP BY 1),
            contacts AS (
                SELECT f.person_key, min(s.contact_date) - f.referred AS days
                FROM firsts f JOIN core.service_contact s ON s.person_key = f.person_key
                 AND s.service_type = 'case_management' AND s.contact_date >= f.referred
                GROUP BY f.person_key, f.referred)
            SELECT count(*) FILTER (WHERE days BETWEEN 8 AND 30), (SELECT count(*) FROM firsts)
            FROM contacts""")[0]
        rows = {r["Days to first contact"]: r["People"] for r in tables["time_to_first_contact"]}
        checked += _check_published({"8-30": rows["8 to 30 days"], "all": rows["LEAD participants"]},
                                    {"8-30": within_30[0], "all": within_30[1]}, "first contact")
        assert checked >= 15
    finally:
        con.close()


def test_lineage_periods_are_exact_months_though_snapshot_dates_are_coarsened(demo_report):
    """The report reads the snapshot, whose dates are coarsened; the months come from the
    warehouse's exact dates all the same."""
    hub, tables = demo_report
    rows = {r["Extract"]: r for r in tables["batch_lineage"]}
    con = duckdb.connect(str(hub.warehouse_path), read_only=True)
    try:
        for extract, column in (("police_arrests", "arrest_date"),
                                ("treatment_contacts", "contact_date"),
                                ("jail_bookings", "booking_ts")):
            first, last = con.execute(f"SELECT min({column}), max({column}) "
                                      f"FROM current.{extract}").fetchone()
            shown = (rows[extract]["First month of events"], rows[extract]["Last month of events"])
            assert shown == (f"{first:%Y-%m}", f"{last:%Y-%m}"), extract
    finally:
        con.close()


def test_referral_figures_match_the_synthetic_answer_file(demo_report, demo_files):
    """The generator's ground truth, which the pipeline never reads, against the published counts."""
    import json

    _, tables = demo_report
    truth = json.loads((demo_files / "answers" / "truth.json").read_text())["referrals"]
    quarterly: dict = {}
    for month, doors in truth["by_month"].items():
        year, m = month.split("-")
        quarter = f"{year}-Q{(int(m) - 1) // 3 + 1}"
        for door, n in doors.items():
            quarterly[(quarter, door)] = quarterly.get((quarter, door), 0) + n
            quarterly[(quarter, "Total")] = quarterly.get((quarter, "Total"), 0) + n
    published = {(r["Quarter"], c): v for r in tables["referrals_quarterly"]
                 for c, v in r.items() if c != "Quarter"}
    assert _check_published(published, quarterly, "quarterly referrals") >= 8
    period = next(r for r in tables["referrals_by_precinct"] if r["Precinct"] == "Total")
    assert period["Total"] == str(truth["total"])


def test_a_run_killed_while_replacing_the_report_leaves_no_half_report(built, monkeypatch):
    write_report(built, today=REPORT_DAY)
    folder = built.reports_dir / "lead_report_2024-02-01"
    latest = built.reports_dir / "latest"
    files = sorted(f.name for f in folder.iterdir())
    real_rmtree = shutil.rmtree

    def killed_after_one_file(path, *args, **kwargs):
        first = sorted(Path(path).iterdir())[0]
        first.unlink()
        raise KeyboardInterrupt  # the process dies half-way through deleting the old folder

    monkeypatch.setattr(shutil, "rmtree", killed_after_one_file)
    with pytest.raises(KeyboardInterrupt):
        write_report(built, today=REPORT_DAY)
    monkeypatch.setattr(shutil, "rmtree", real_rmtree)
    for shown in (folder, latest):
        assert sorted(f.name for f in shown.iterdir()) == files, shown
    write_report(built, today=REPORT_DAY)  # the next run cleans up after the killed one
    assert sorted(p.name for p in built.reports_dir.iterdir()) == ["latest", "lead_report_2024-02-01"]


# ---------------------------------------------------------------- chart layout

def _drawn_charts(settings, monkeypatch) -> list:
    """Every chart figure of a written report, drawn on an Agg canvas (the renderer of the PNG)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    import transforms.report.charts as charts

    figures, real_png = [], charts._png

    def keep(fig):
        figures.append(fig)
        return real_png(fig)

    monkeypatch.setattr(charts, "_png", keep)
    write_report(settings, today=REPORT_DAY)
    for fig in figures:
        FigureCanvasAgg(fig).draw()
    return figures


def _texts(fig) -> list:
    """The texts a reader sees: titles, axis labels, tick labels in view, annotations, legends."""
    texts = list(fig.texts)
    for legend in fig.legends:
        texts += legend.get_texts()
    for ax in fig.axes:
        texts += [ax.title, ax._left_title, ax._right_title, ax.xaxis.label, ax.yaxis.label,
                  *ax.texts]
        for axis in (ax.xaxis, ax.yaxis):
            low, high = sorted(axis.get_view_interval())
            texts += [t.label1 for t in axis.get_major_ticks()
                      if low - 1e-9 <= t.get_loc() <= high + 1e-9]
        if ax.get_legend():
            texts += ax.get_legend().get_texts()
    return [t for t in texts if t.get_visible() and t.get_text().strip()]


def _overlap(a, b) -> bool:
    """Boxes sharing more than a hairline (half a pixel either way)."""
    return (min(a.x1, b.x1) - max(a.x0, b.x0) > 0.5) and (min(a.y1, b.y1) - max(a.y0, b.y0) > 0.5)


def test_no_chart_text_overlaps_and_no_legend_covers_data(built, monkeypatch):
    _assert_readable(_drawn_charts(built, monkeypatch))


def test_charts_of_the_synthetic_county_are_readable(demo_hub, tools, tmp_path, monkeypatch):
    """Four years of months and every measure populated: the layout holds at full size."""
    # and the shares housed, employed and with income by month since referral
    _assert_readable(_drawn_charts(tools.clone_hub(demo_hub, tmp_path / "hub"), monkeypatch), charts=4)


def _assert_readable(figures: list, charts: int = 3) -> None:
    assert len(figures) == charts         # quarterly referrals, caseload, outcomes
    for fig in figures:
        renderer = fig.canvas.get_renderer()
        boxes = [(t.get_text(), t.get_window_extent(renderer)) for t in _texts(fig)]
        assert len(boxes) > 10
        clashes = [(a, b) for i, (a, box_a) in enumerate(boxes) for b, box_b in boxes[i + 1:]
                   if _overlap(box_a, box_b)]
        assert clashes == []
        legends = list(fig.legends) + [ax.get_legend() for ax in fig.axes if ax.get_legend()]
        colours = {line.get_color() for ax in fig.axes for line in ax.lines} | {
            tuple(p.get_facecolor()) for ax in fig.axes for p in ax.patches}
        assert legends or len(colours) == 1, "a chart of several colours says what they are"
        for legend in legends:
            frame = legend.get_window_extent(renderer)
            for ax in fig.axes:
                bars = [p.get_window_extent(renderer) for p in ax.patches if p.get_height() > 0]
                assert not [b for b in bars if _overlap(frame, b)]
                points = [xy for line in ax.lines for xy in line.get_xydata()
                          if not np.isnan(xy).any()]
                for x, y in ax.transData.transform(points) if points else []:
                    assert not frame.contains(x, y)
                # Nor does a legend sit on any text of the axes.
                assert not [t for t, box in boxes if _overlap(frame, box)
                            and t not in {x.get_text() for x in legend.get_texts()}]


def test_every_line_chart_says_gaps_are_suppressed_counts(built, monkeypatch):
    figures = _drawn_charts(built, monkeypatch)
    line_charts = [fig for fig in figures if any(ax.lines for ax in fig.axes)]
    assert len(line_charts) == 2          # quarterly referrals, caseload
    for fig in line_charts:
        titles = " ".join(t.get_text() for ax in fig.axes for t in (ax.title,)) + " ".join(
            t.get_text() for t in fig.texts)
        assert "gaps: suppressed" in titles


# ---------------------------------------------------------------- the demo's planted effect

def test_planted_effect_text_says_whether_the_interval_covers_it():
    effect = {"planted": 0.42, "true_unadjusted": 0.29}
    # 40/60 LEAD and 60/40 comparison re-arrested; adjusted 0.45 (0.30 to 0.66) covers 0.42.
    covering = RearrestEstimates(40, 60, 60, 40, (0.44, 0.25, 0.78), (0.45, 0.30, 0.66, 200))
    text = planted_effect_text(covering, effect)
    assert "planted an odds ratio of 0.42" in text
    assert "adjusted estimate is 0.45 (95% CI 0.30 to 0.66), an interval that covers it" in text
    assert "unadjusted estimate, 0.44," in text and "it would be 0.29" in text
    missing = RearrestEstimates(40, 60, 60, 40, (0.44, 0.25, 0.78), (0.60, 0.45, 0.80, 200))
    assert "an interval that does not cover it" in planted_effect_text(missing, effect)
    small = RearrestEstimates(4, 60, 60, 40, None, None)          # a cell under 11: withheld
    assert "withheld" in planted_effect_text(small, effect)
    assert "0.45" not in planted_effect_text(small, effect)


def test_demo_report_and_demo_line_show_the_planted_effect(demo_hub, demo_files, tools, tmp_path):
    import html as html_module
    import json

    hub = tools.clone_hub(demo_hub, tmp_path / "hub")
    # Without the generator's answers the data is not the demo: no note, no line.
    assert planted_effect(hub) is None and planted_effect_line(hub) is None
    assert "Demo data" not in Path(write_report(hub)["html"]).read_text()

    hub.answers_dir.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(demo_files / "answers" / "truth.json", hub.answers_dir / "truth.json")
    planted = json.loads((hub.answers_dir / "truth.json").read_text())["planted"][
        "odds_ratio_lead_any_rearrest_365"]
    paths = write_report(hub)
    adjusted = read_csv(paths["rearrest_odds_ratio"])[1]
    low, high = float(adjusted["95% CI low"]), float(adjusted["95% CI high"])
    line = planted_effect_line(hub)
    assert f"planted an odds ratio of {planted:.2f}" in line
    assert (f"adjusted estimate is {adjusted['Odds ratio']} (95% CI {adjusted['95% CI low']} to "
            f"{adjusted['95% CI high']})") in line
    covers = low <= planted <= high
    assert ("an interval that covers it" in line) == covers
    assert ("does not cover it" in line) == (not covers)
    page = html_module.unescape(Path(paths["html"]).read_text())
    assert "Demo data, not a real county." in page and line in page
