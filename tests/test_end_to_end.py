"""The README's demo, on a small seed, through Airflow: data in, report out, nobody exposed.

One run of `leadhub demo` (tests/conftest.py, ``demo_run``) is shared by every test here and by
tests/dags/test_scheduler.py, which carries on from a copy of it.
"""

from __future__ import annotations

import csv
import json
import re
import sqlite3
from collections import Counter
from contextlib import closing
from pathlib import Path

import ahocorasick
import duckdb

from leadhub.core.contracts import load_contracts
from synthetic import PLACEHOLDER_NAMES

# Stated tolerance: the report's before/after totals may fall short of the truth by what
# imperfect linkage costs (records of one person left unlinked); more than this is a defect.
TRUTH_TOLERANCE = 0.10


PLACEHOLDERS = {p.upper() for p in PLACEHOLDER_NAMES}


def raw_identifiers(raw_dir: Path) -> dict[str, set[str]]:
    """Every identifier value of the generated files, by role, as written; except placeholder
    names and bare initials, which identify nobody and may equal a code ('UNKNOWN', 'M')."""
    found: dict[str, set[str]] = {}
    for c in load_contracts().values():
        for path in (raw_dir / c.agency).glob(c.file_pattern):
            with open(path, newline="", encoding=c.format.encoding) as f:
                for row in csv.DictReader(f, delimiter=c.format.delimiter, quotechar=c.format.quotechar):
                    for col in c.identifier_columns:
                        value = row[col.name]
                        if value and value.strip().upper() not in PLACEHOLDERS and len(value.strip()) > 1:
                            found.setdefault(col.identifier, set()).add(value)
    return found


def warehouse(root: Path) -> duckdb.DuckDBPyConnection:
    return duckdb.connect(str(root / "data" / "warehouse" / "lead.duckdb"), read_only=True)


def test_demo_says_where_the_report_and_warehouse_are(demo_run):
    root, out = demo_run
    assert "report:" in out and "warehouse:" in out
    assert (root / "data" / "reports" / "latest" / "lead_report.html").is_file()


def test_demo_runs_every_dag_through_airflow_into_the_warehouse(demo_run):
    """Every feed, then the build, then the report, each a successful Airflow run; the build's
    counts (its XCom in Airflow's metadata DB) are the warehouse's."""
    root, out = demo_run
    dags = [f"{a}_feed" for a in ("jail", "police", "prosecutor", "treatment")] + ["warehouse_build", "lead_report"]
    assert re.findall(r"^  (\w+): (\w+)$", out, re.MULTILINE) == [(d, "success") for d in dags]
    metadata_db = root / "data" / "airflow" / "airflow.db"
    with closing(sqlite3.connect(f"file:{metadata_db}?mode=ro&immutable=1", uri=True)) as db:
        assert db.execute("SELECT dag_id, state FROM dag_run ORDER BY id").fetchall() == [(d, "success") for d in dags]
        [(build,)] = db.execute("SELECT value FROM xcom WHERE dag_id = 'warehouse_build' AND task_id = 'build' "
                                "AND key = 'return_value'").fetchall()
    with warehouse(root) as con:
        persons = con.execute("SELECT count(*) FROM core.person").fetchone()[0]
        referrals = con.execute("SELECT count(*) FROM core.referral").fetchone()[0]
    assert persons > 0 and referrals > 0
    assert json.loads(build)["core.person"] == persons


def test_every_generated_row_arrives_in_the_warehouse(demo_run):
    root, _ = demo_run
    with open(root / "raw_answers" / "records.csv", newline="") as f:
        expected = Counter(row["contract"] for row in csv.DictReader(f))
    with warehouse(root) as con:
        for name in load_contracts():
            assert con.execute(f"SELECT count(*) FROM staging.{name}").fetchone()[0] == expected[name], name
        statuses = con.execute("SELECT status, count(*) FROM ops.file_ledger GROUP BY ALL").fetchall()
    assert statuses == [("accepted", len(load_contracts()))]


def test_records_with_a_blank_birth_date_or_a_placeholder_name_arrive_too(demo_run):
    """The county's hard records are loaded, not refused: a referral without a birth date has no
    age at the event, and every row arrived (the test above)."""
    root, _ = demo_run
    c = load_contracts()["police_referrals"]
    [path] = (root / "raw" / c.agency).glob(c.file_pattern)
    with open(path, newline="", encoding=c.format.encoding) as f:
        rows = list(csv.DictReader(f, delimiter=c.format.delimiter, quotechar=c.format.quotechar))
    blank = sum(not r["dob"] for r in rows)
    placeholder = sum(r[k].strip().upper() in PLACEHOLDERS for r in rows for k in ("first_name", "last_name"))
    # Seed 11, 800 people: 4 of about 250 referrals have no birth date (rate 1%); placeholders
    # appear in the referrals too.
    assert blank > 0 and placeholder > 0
    with warehouse(root) as con:
        assert con.execute("SELECT count(*) FROM staging.police_referrals "
                           "WHERE age_at_event IS NULL").fetchone()[0] == blank


def test_no_raw_identifier_reaches_the_warehouse(demo_run):
    root, _ = demo_run
    raw = raw_identifiers(root / "raw")
    values = sorted(set().union(*raw.values()))
    assert len(values) > 1000
    with warehouse(root) as con:
        con.execute("CREATE TEMP TABLE raw_values AS SELECT unnest(?::VARCHAR[]) AS v", [values])
        columns = con.execute(
            "SELECT table_schema, table_name, column_name, data_type FROM information_schema.columns "
            "WHERE table_schema IN ('ops', 'staging', 'core', 'marts') AND data_type IN ('VARCHAR', 'DATE')"
        ).fetchall()
        dobs = {v for v in raw["dob"]}
        assert len(columns) > 50
        for schema, table, column, dtype in columns:
            if dtype == "VARCHAR":
                hits = con.execute(f'SELECT count(*) FROM {schema}.{table} WHERE upper("{column}") IN '
                                   f'(SELECT upper(v) FROM raw_values)').fetchone()[0]
                # Short names can equal a code by chance ('X'); none of ours are that short.
                assert hits == 0, f"{schema}.{table}.{column} holds raw identifier values"
            else:
                years = con.execute(f'SELECT min("{column}"), max("{column}") FROM {schema}.{table}').fetchone()
                # Dates of birth (1950s-2000s) would show up as dates long before the data period.
                assert years[0] is None or years[0].year >= 2019, f"{schema}.{table}.{column} reaches {years[0]}"
    assert dobs


def test_no_raw_identifier_in_any_file_the_demo_wrote(demo_run):
    """Reports, Airflow's metadata DB, logs and XComs, the warehouse: searched byte for byte."""
    root, _ = demo_run
    raw = raw_identifiers(root / "raw")
    ssns = {s for s in raw["ssn"]} | {re.sub(r"\D", "", s) for s in raw["ssn"]}
    needles = ssns | raw["dob"] | raw["agency_person_id"] | {n for n in raw["last_name"] if len(n) >= 6}
    # One Aho-Corasick pass per file finds every needle anywhere in its bytes (read as latin-1,
    # one character per byte), where a search per needle would read the warehouse thousands of times.
    automaton = ahocorasick.Automaton(ahocorasick.STORE_ANY)
    for n in needles:
        key = n.encode().decode("latin-1")
        automaton.add_word(key, key)
    automaton.make_automaton()
    written = [p for p in (root / "data").rglob("*") if p.is_file()
               and not {"inbox", "archive"} & set(p.relative_to(root / "data").parts)
               and "answers" not in p.relative_to(root / "data").parts]
    assert any("airflow" in p.parts for p in written) and any(p.suffix == ".html" for p in written)
    assert len(needles) > 1000
    # The scan finds what is there: the generated extracts hold every needle as written (the
    # SSNs' digits-only forms are the scan's own addition).
    generated = b"".join(p.read_bytes() for p in (root / "raw").rglob("*") if p.is_file()).decode("latin-1")
    as_written = {n.encode().decode("latin-1") for n in needles - (ssns - raw["ssn"])}
    assert as_written <= {n for _, n in automaton.iter(generated)}
    chance = 0
    for path in written:
        text = path.read_bytes().decode("latin-1")
        hits = [(end + 1 - len(n), end + 1, n) for end, n in automaton.iter(text)]
        leaked = {n for start, end, n in hits if not _inside_encoding(text, start, end)}
        assert not leaked, f"{path} contains raw identifiers (e.g. {len(leaked)} values)"
        chance += len(hits)
    # A leak would be thousands of values; six letters inside an encoding turn up about once in
    # ten demo runs (a fresh key each time).
    assert chance <= 3


# Characters of base64 text, and of an encoding run long enough to be one (the shortest
# similarity encoding is 88 characters).
BASE64 = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/=")
ENCODED_RUN = 40


def _inside_encoding(text: str, start: int, end: int) -> bool:
    """Whether ``text[start:end]`` lies inside what reads as a stored similarity encoding: a run
    of at least ``ENCODED_RUN`` base64 characters mixing lower case, upper case and digits.

    Keyed bit arrays in base64 hold any six capitals by chance. Raw identifiers written side by
    side (capitalised names, digits, dates) never make such a run: they hold no lower case.
    """
    lo, hi = start, end
    while lo > 0 and text[lo - 1] in BASE64 and start - lo < 2 * ENCODED_RUN:
        lo -= 1
    while hi < len(text) and text[hi] in BASE64 and hi - end < 2 * ENCODED_RUN:
        hi += 1
    run = text[lo:hi]
    return (hi - lo >= ENCODED_RUN and any(c.islower() for c in run) and any(c.isupper() for c in run)
            and any(c.isdigit() for c in run))


def test_the_answer_file_holds_no_identifier(demo_run):
    root, _ = demo_run
    raw = raw_identifiers(root / "raw")
    needles = raw["ssn"] | raw["dob"] | raw["agency_person_id"]
    for path in (root / "data" / "answers").iterdir():
        text = path.read_text()
        assert not [n for n in needles if n in text], path


def _report_csv(root: Path, name: str) -> list[dict]:
    with open(root / "data" / "reports" / "latest" / name, newline="") as f:
        return list(csv.DictReader(f))


def _count(cell: str) -> int | None:
    return None if cell.startswith("<") or cell in ("suppressed", "") else int(float(cell.replace(",", "")))


def test_report_referrals_equal_an_independent_count_from_staging(demo_run):
    root, _ = demo_run
    with warehouse(root) as con:
        direct = {(m, t): n for m, t, n in con.execute(
            "SELECT strftime(referral_date, '%Y-%m'), referral_type, count(*) "
            "FROM current.police_referrals GROUP BY ALL").fetchall()}
    rows = _report_csv(root, "referrals_monthly.csv")
    assert rows
    checked = 0
    for row in rows:
        for door in ("arrest_diversion", "social_contact", "community"):
            true_n = direct.get((row["Month"], door), 0)
            shown = _count(row[door])
            if 1 <= true_n <= 10:
                assert shown is None, ("small cell published", row["Month"], door)
            elif shown is not None:
                assert shown == true_n, (row["Month"], door)
                checked += 1
    assert checked > 0


OUTCOME_SQL = """
WITH c AS (SELECT person_key, cohort, index_date FROM marts.cohort),
a AS (SELECT DISTINCT arrest_id, person_key, arrest_date FROM core.arrest),
b AS (SELECT DISTINCT booking_id, person_key, booking_ts::DATE AS d, jail_days FROM core.booking)
SELECT c.cohort,
  (SELECT count(*) FROM a JOIN c c2 USING (person_key) WHERE c2.cohort = c.cohort
     AND a.arrest_date >= c2.index_date - ? AND a.arrest_date < c2.index_date) AS arrests_before,
  (SELECT count(*) FROM a JOIN c c2 USING (person_key) WHERE c2.cohort = c.cohort
     AND a.arrest_date > c2.index_date AND a.arrest_date <= c2.index_date + ?) AS arrests_after,
  (SELECT count(*) FROM b JOIN c c2 USING (person_key) WHERE c2.cohort = c.cohort
     AND b.d > c2.index_date AND b.d <= c2.index_date + ?) AS bookings_after,
  (SELECT coalesce(sum(jail_days), 0) FROM b JOIN c c2 USING (person_key) WHERE c2.cohort = c.cohort
     AND b.d > c2.index_date AND b.d <= c2.index_date + ?) AS jail_days_after,
  count(*) AS n_people
FROM c GROUP BY c.cohort
"""
MEASURES = {"Arrests": ("arrests_before", "arrests_after"), "Jail bookings": (None, "bookings_after"),
            "Jail days": (None, "jail_days_after")}


def _report_outcomes(root: Path) -> dict:
    out = {}
    for row in _report_csv(root, "outcomes.csv"):
        days = int(row["Window"].split()[0])
        out[(days, row["Measure"], row["Cohort"].lower())] = row
    return out


def test_report_outcomes_equal_an_independent_computation_from_the_warehouse(demo_run):
    root, _ = demo_run
    report = _report_outcomes(root)
    with warehouse(root) as con:
        for days in (180, 365):
            for cohort, ab, aa, ba, ja, n in con.execute(OUTCOME_SQL, [days] * 4).fetchall():
                expected = {("Arrests", "Total before"): ab, ("Arrests", "Total after"): aa,
                            ("Jail bookings", "Total after"): ba, ("Jail days", "Total after"): ja}
                for (measure, column), value in expected.items():
                    shown = _count(report[(days, measure, cohort)][column])
                    assert shown is None or shown == value, (days, measure, cohort, column)
                assert _count(report[(days, "Arrests", cohort)]["People"]) == n


def test_report_stays_within_tolerance_of_the_truth(demo_run, capsys):
    root, _ = demo_run
    truth = json.loads((root / "data" / "answers" / "truth.json").read_text())["outcomes"]
    report = _report_outcomes(root)
    gaps = []
    for cohort in ("lead", "comparison"):
        for days in (180, 365):
            t = truth[cohort][str(days)]
            people = _count(report[(days, "Arrests", cohort)]["People"])
            assert abs(people - t["n_people"]) <= TRUTH_TOLERANCE * t["n_people"], (cohort, people)
            for measure, key in (("Arrests", "arrests"), ("Jail bookings", "bookings"), ("Jail days", "jail_days")):
                for side, column in (("before", "Total before"), ("after", "Total after")):
                    shown, true_v = _count(report[(days, measure, cohort)][column]), t[f"{key}_{side}"]
                    if shown is None:
                        continue
                    gap = (true_v - shown) / true_v if true_v else 0.0
                    gaps.append((cohort, days, measure, side, true_v, shown, gap))
                    assert abs(gap) <= TRUTH_TOLERANCE, gaps[-1]
    with capsys.disabled():
        worst = max(gaps, key=lambda g: abs(g[-1]))
        print(f"\nlinkage cost vs truth: worst gap {worst[-1]:.1%} ({worst[:4]}), "
              f"{sum(g[-1] != 0 for g in gaps)} of {len(gaps)} figures differ")
