"""Justice Counts: the jc_* marts count a small county by the published definitions, and the
bulk-upload files carry the Publisher's file names, columns and labels.

The published definitions are kept in justice_counts_reference.json (made by
make_justice_counts_reference.py from Recidiviz pulse-data, the commit recorded in it); the
hub's code is checked against it, never against recidiviz code.
"""

from __future__ import annotations

import csv
import json
from datetime import date, datetime
from pathlib import Path

import duckdb
import pytest

import leadhub.core.agreements as agreements
from leadhub import cli
from transforms.justice_counts import SECTORS, header, write_justice_counts

REFERENCE = json.loads((Path(__file__).with_name("justice_counts_reference.json")).read_text(encoding="utf-8"))
TODAY = date(2024, 6, 1)


def reference_file(system: str, name: str) -> dict:
    return next(f for f in REFERENCE["systems"][system] if f["canonical_filename"] == name)


# ---------------------------------------------------------------- the county

def county(w) -> None:
    """Six arrests, seven prosecutor cases and ten jail bookings; each metric's figures are
    worked out by hand in the tests below."""
    def arrest(aid, person, on, sex, race, ethnicity, charges):
        for seq, (code, severity) in enumerate(charges, start=1):
            w.add("police_arrests", arrest_id=aid, charge_seq=seq, person_token=f"tok-police-{person}",
                  sex=sex, race=race, ethnicity=ethnicity, arrest_date=on, precinct="NORTH",
                  offense_code=code, severity=severity, age_at_event=30)
        w.link("police", person)

    # A1: a drug felony and a person misdemeanor: person (felony-first would have said drug).
    arrest("A1", "p1", date(2023, 1, 5), "M", "BLACK", "NON_HISPANIC", [("DRG01", "felony"), ("PER01", "misdemeanor")])
    # A2: public order ranks above drug.
    arrest("A2", "p2", date(2023, 1, 20), "F", "WHITE", "HISPANIC", [("POR01", "misdemeanor"), ("DRG02", "misdemeanor")])
    # A3: a code missing from the reference table: unknown offense; sex X: unknown.
    arrest("A3", "p3", date(2023, 2, 3), "X", "ASIAN", "UNKNOWN", [("ZZZ99", "felony")])
    # A4: property ranks above other.
    arrest("A4", "p1", date(2023, 2, 10), "M", "BLACK", "NON_HISPANIC", [("OTH01", "misdemeanor"), ("PRP02", "felony")])
    arrest("A5", "p4", date(2023, 4, 1), "F", "NATIVE", "NON_HISPANIC", [("OTH02", "misdemeanor")])
    arrest("A6", "p2", date(2024, 1, 15), "F", "WHITE", "HISPANIC", [("DRG01", "felony")])

    def case(cid, arrest_id, referred, charges):
        for seq, (code, severity, decision, decided, disposition, disposed) in enumerate(charges, start=1):
            w.add("prosecutor_cases", case_id=cid, charge_seq=seq, person_token=f"tok-prosecutor-{cid}",
                  arrest_id=arrest_id, referral_date=referred, offense_code=code, severity=severity,
                  decision=decision, decision_date=decided, disposition=disposition,
                  disposition_date=disposed, age_at_event=30)
        w.link("prosecutor", cid)

    d = date
    # C1 (A1): one charge diverted, one filed and convicted: diverted AND prosecuted, then disposed.
    case("C1", "A1", d(2023, 1, 10), [("DRG01", "felony", "filed", d(2023, 2, 1), "convicted", d(2023, 6, 15)),
                                      ("PER01", "misdemeanor", "diverted", d(2023, 1, 25), None, None)])
    # C2 (A2): every charge declined; dated by the last decision (March).
    case("C2", "A2", d(2023, 1, 22), [("POR01", "misdemeanor", "declined", d(2023, 2, 5), None, None),
                                      ("DRG02", "misdemeanor", "declined", d(2023, 3, 2), None, None)])
    # C3 (no arrest): diverted and never filed: disposed by diversion.
    case("C3", None, d(2023, 2, 14), [("PRP01", "misdemeanor", "diverted", d(2023, 2, 20), None, None)])
    # C4 (A4): dismissed and acquitted: resolved at trial, on the last disposition date.
    case("C4", "A4", d(2023, 2, 12), [("PRP02", "felony", "filed", d(2023, 2, 28), "dismissed", d(2023, 5, 2)),
                                      ("PRP01", "misdemeanor", "filed", d(2023, 2, 28), "acquitted", d(2023, 7, 9))])
    # C5 (A5): filed, disposition pending, and a charge still awaiting its decision: not disposed.
    case("C5", "A5", d(2023, 4, 3), [("OTH02", "misdemeanor", "filed", d(2023, 4, 20), "pending", None),
                                     ("POR01", "misdemeanor", "pending", None, None, None)])
    # C6 (A3): filed without a decision date: prosecuted, but undated.
    case("C6", "A3", d(2023, 3, 1), [("DRG01", "felony", "filed", None, None, None)])
    # C7 (no arrest): filed and dismissed.
    case("C7", None, d(2023, 3, 5), [("POR02", "misdemeanor", "filed", d(2023, 3, 10), "dismissed", d(2023, 4, 11))])

    def booking(bid, person, booked, released, sex, race, codes):
        for seq, code in enumerate(codes, start=1):
            w.add("jail_bookings", booking_id=bid, charge_seq=seq, person_token=f"tok-jail-{person}",
                  sex=sex, race=race, booking_ts=booked, release_ts=released, offense_code=code,
                  severity="felony", age_at_event=30)
        if person != "q5":                  # q5's booking could not be linked to a person
            w.link("jail", person)

    t = datetime
    booking("J5", "q3", t(2021, 3, 1, 8), t(2021, 3, 2, 9), "M", "WHITE", ["POR01"])
    booking("J1", "q1", t(2022, 1, 10, 8), t(2022, 3, 1, 10), "M", "BLACK", ["DRG01", "PER01"])
    booking("J6", "q3", t(2022, 3, 2, 8), t(2022, 3, 3, 9), "M", "WHITE", ["DRG02"])
    booking("J2", "q1", t(2023, 2, 20, 9), t(2023, 3, 31, 23, 30), "M", "BLACK", ["PRP01"])
    booking("J7", "q3", t(2023, 3, 4, 8), t(2023, 3, 5, 8), "M", "WHITE", ["POR02"])
    booking("J3", "q2", t(2023, 5, 1, 8), t(2023, 5, 20, 8), "F", "WHITE", ["DRG01"])
    booking("J4", "q2", t(2023, 5, 10, 8), t(2023, 5, 12, 8), "F", "WHITE", ["PER02"])
    booking("J8", "q5", t(2023, 6, 1, 8), None, None, None, ["ZZZ99"])
    booking("J9", "q4", t(2023, 7, 15, 10), t(2023, 8, 2, 12), "X", "ASIAN", ["DRG01"])
    booking("J10", "q4", t(2023, 7, 20, 9), None, "X", "ASIAN", ["PRP02"])


@pytest.fixture
def built(settings, make_warehouse):
    w = make_warehouse(settings.warehouse_path)
    county(w)
    w.received = datetime(2024, 2, 1, 6, 0)     # every extract delivered after January 2024 ended
    w.run()
    return w


def counts(w, mart: str, metric: str, *columns: str) -> dict:
    value = {"jc_arrests": "arrests", "jc_cases": "cases", "jc_jail": "value"}[mart]
    keys = ", ".join(("year", "month", *columns))
    return {tuple(r[:-1]): r[-1] for r in w.con.execute(
        f"SELECT {keys}, sum({value})::INTEGER FROM marts.{mart} WHERE metric = ? GROUP BY ALL",
        [metric]).fetchall()}


# ---------------------------------------------------------------- the marts

def test_arrests_by_offense_type_race_ethnicity_and_sex(built):
    assert counts(built, "jc_arrests", "LAW_ENFORCEMENT_ARRESTS", "offense_type") == {
        (2023, 1, "Person Offenses"): 1,          # A1: person beats a drug felony
        (2023, 1, "Public Order Offenses"): 1,    # A2: public order beats drug
        (2023, 2, "Unknown Offenses"): 1,         # A3: ZZZ99 is not in the reference table
        (2023, 2, "Property Offenses"): 1,        # A4: property beats other
        (2023, 4, "Other Offenses"): 1,           # A5
        (2024, 1, "Drug Offenses"): 1,            # A6
    }
    assert counts(built, "jc_arrests", "LAW_ENFORCEMENT_ARRESTS", "race_ethnicity") == {
        (2023, 1, "Black / Not Hispanic or Latino"): 1, (2023, 1, "White / Hispanic or Latino"): 1,
        (2023, 2, "Asian / Unknown Ethnicity"): 1, (2023, 2, "Black / Not Hispanic or Latino"): 1,
        (2023, 4, "American Indian or Alaska Native / Not Hispanic or Latino"): 1,
        (2024, 1, "White / Hispanic or Latino"): 1,
    }
    assert counts(built, "jc_arrests", "LAW_ENFORCEMENT_ARRESTS", "biological_sex") == {
        (2023, 1, "Male Biological Sex"): 1, (2023, 1, "Female Biological Sex"): 1,
        (2023, 2, "Unknown Biological Sex"): 1,   # A3: X
        (2023, 2, "Male Biological Sex"): 1, (2023, 4, "Female Biological Sex"): 1,
        (2024, 1, "Female Biological Sex"): 1,
    }


def test_prosecution_cases_each_dated_by_its_own_event(built):
    c = lambda metric, *cols: counts(built, "jc_cases", metric, *cols)  # noqa: E731
    # Referred: by referral date; C1, C2 in January, C3, C4 in February, C6, C7 in March, C5 in April.
    assert c("PROSECUTION_CASES REFERRED", "case_severity") == {
        (2023, 1, "Felony Cases Referred"): 1, (2023, 1, "Misdemeanor Cases Referred"): 1,
        (2023, 2, "Felony Cases Referred"): 1, (2023, 2, "Misdemeanor Cases Referred"): 1,
        (2023, 3, "Felony Cases Referred"): 1, (2023, 3, "Misdemeanor Cases Referred"): 1,
        (2023, 4, "Misdemeanor Cases Referred"): 1}
    # Declined: C2 only (C1 and C3 have charges diverted or filed), on its last decision, 2 March.
    assert c("PROSECUTION_CASES_DECLINED", "case_severity", "biological_sex", "race_ethnicity") == {
        (2023, 3, "Misdemeanor Cases Declined", "Female Biological Sex", "White / Hispanic or Latino"): 1}
    # Diverted: C1 (also prosecuted) on 25 January; C3 on 20 February, without an arrest: unknown.
    assert c("PROSECUTION_CASES_DIVERTED", "case_severity", "biological_sex", "race_ethnicity") == {
        (2023, 1, "Felony Cases Diverted/Deferred", "Male Biological Sex", "Black / Not Hispanic or Latino"): 1,
        (2023, 2, "Misdemeanor Cases Diverted/Deferred", "Unknown Biological Sex", "Unknown / Unknown Ethnicity"): 1}
    # Prosecuted: C1 (1 Feb) and C4 (28 Feb), C7 (10 Mar), C5 (20 Apr); C6 has no decision date.
    assert c("PROSECUTION_CASES_PROSECUTED", "case_severity") == {
        (2023, 2, "Felony Cases Prosecuted"): 2, (2023, 3, "Misdemeanor Cases Prosecuted"): 1,
        (2023, 4, "Misdemeanor Cases Prosecuted"): 1, (None, None, "Felony Cases Prosecuted"): 1}
    # Disposed: C3 by diversion (20 Feb), C7 dismissed (11 Apr), C1 convicted (15 Jun; plea or
    # trial unknown), C4 dismissed and acquitted (last on 9 Jul: at trial); C5 is still pending.
    assert c("PROSECUTION_CASES_DISPOSED", "disposition_type") == {
        (2023, 2, "Other Disposition"): 1, (2023, 4, "Cases Disposed by Dismissal"): 1,
        (2023, 6, "Unknown Disposition"): 1, (2023, 7, "Cases Resolved at Trial"): 1}


def test_a_case_with_an_acquittal_went_to_trial(settings, make_warehouse):
    """Only a trial acquits: a case with a charge acquitted and another convicted was resolved
    at trial; convicted and dismissed, it may have been a plea or a trial (unknown)."""
    w = make_warehouse(settings.warehouse_path)
    d = date
    for cid, dispositions in (("T1", ("convicted", "acquitted")), ("T2", ("convicted", "dismissed"))):
        for seq, disposition in enumerate(dispositions, start=1):
            w.add("prosecutor_cases", case_id=cid, charge_seq=seq, person_token=f"tok-prosecutor-{cid}",
                  arrest_id=None, referral_date=d(2023, 1, 10), offense_code="DRG01", severity="felony",
                  decision="filed", decision_date=d(2023, 2, 1), disposition=disposition,
                  disposition_date=d(2023, 5, seq), age_at_event=30)
        w.link("prosecutor", cid)
    w.run()
    # T1 and T2 both disposed in May 2023 (their last disposition, 2 May).
    assert counts(w, "jc_cases", "PROSECUTION_CASES_DISPOSED", "disposition_type") == {
        (2023, 5, "Cases Resolved at Trial"): 1, (2023, 5, "Unknown Disposition"): 1}


def test_jail_admissions_releases_readmissions_and_population(built):
    j = lambda metric, *cols: counts(built, "jc_jail", metric, *cols)  # noqa: E731
    assert j("JAILS_TOTAL_ADMISSIONS", "offense_type") == {
        (2021, 3, "Public Order Offenses"): 1,            # J5
        (2022, 1, "Person Offenses"): 1,                  # J1: person beats drug
        (2022, 3, "Drug Offenses"): 1,                    # J6
        (2023, 2, "Property Offenses"): 1,                # J2
        (2023, 3, "Public Order Offenses"): 1,            # J7
        (2023, 5, "Drug Offenses"): 1, (2023, 5, "Person Offenses"): 1,       # J3, J4
        (2023, 6, "Unknown Offenses"): 1,                 # J8
        (2023, 7, "Drug Offenses"): 1, (2023, 7, "Property Offenses"): 1}     # J9, J10
    assert j("JAILS_TOTAL_RELEASES") == {                # J8 and J10 are still in custody
        (2021, 3): 1, (2022, 3): 2, (2023, 3): 2, (2023, 5): 2, (2023, 8): 1}
    # Readmissions: incarcerated at any time in the 365 days before the booking date.
    #  J6 (2 Mar 2022): J5 released 2 Mar 2021, exactly 365 days before: yes.
    #  J2 (20 Feb 2023): J1 released 1 Mar 2022, within 365 days: yes.
    #  J7 (4 Mar 2023): J6 released 3 Mar 2022, 366 days before: no.
    #  J4 (10 May 2023): booked while J3 was open: yes (the previous-release rule said no).
    #  J10 (20 Jul 2023): booked while J9 was open: yes. J8 is not linked: never.
    assert j("JAILS_READMISSIONS") == {(2022, 3): 1, (2023, 2): 1, (2023, 5): 1, (2023, 7): 1}
    # Population at the end of each month's last day, from March 2021 to July 2023 (the extract
    # ends on 2 August 2023, so 31 August is not counted); months with nobody in custody have no row.
    #  Jan, Feb 2022: J1. Feb 2023: J2 (released 31 Mar at 23:30, before that day's end).
    #  Jun 2023: J8. Jul 2023: J8 and q4 once, under the later of J9 and J10 (property).
    assert j("JAILS_TOTAL_POPULATION") == {(2022, 1): 1, (2022, 2): 1, (2023, 2): 1, (2023, 6): 1, (2023, 7): 2}
    assert j("JAILS_TOTAL_POPULATION", "offense_type", "race_ethnicity", "biological_sex")[
        (2023, 7, "Property Offenses", "Asian / Unknown Ethnicity", "Unknown Biological Sex")] == 1
    assert j("JAILS_TOTAL_POPULATION", "offense_type")[(2023, 7, "Unknown Offenses")] == 1


# ---------------------------------------------------------------- the published definitions

def test_every_file_is_a_published_metric_file_with_its_columns():
    assert REFERENCE["source"]["commit"] == "4ee035b3e54607e7b7c5add3025992d9fa857acf"
    for sector in SECTORS:
        names = [f.name for f in sector.files]
        assert len(names) == len(set(names)), sector.folder
        for f in sector.files:
            published = reference_file(sector.system, f.name)
            assert published["metric_key"] == f.metric, f.name
            assert f.monthly == (published["reporting_frequency"] == "MONTHLY"), f.name
            assert f.breakdown == published["disaggregation_column_name"], f.name
            expected = ["year", *(["month"] if published["reporting_frequency"] == "MONTHLY" else []),
                        *([published["disaggregation_column_name"]] if published["disaggregation"] else []),
                        "value"]
            assert header(f) == expected, f.name


def test_the_label_mappings_only_yield_published_categories(built):
    """Every value the extracts may carry (their contracts' known values, and blanks) maps to a
    category of the published dimension; the macros live on the connection that ran the models."""
    dims = REFERENCE["dimensions"]
    races = ["WHITE", "BLACK", "ASIAN", "NATIVE", "PACIFIC", "OTHER", "UNKNOWN", None]
    ethnicities = ["HISPANIC", "NON_HISPANIC", "UNKNOWN", None]
    q = lambda sql, params: built.con.execute(sql, params).fetchone()[0]  # noqa: E731
    labels = {q("SELECT jc_race_ethnicity(?, ?)", [r, e]) for r in races for e in ethnicities}
    assert labels <= set(dims["person.RaceAndEthnicity"]) and len(labels) == 21
    sexes = {q("SELECT jc_biological_sex(?)", [s]) for s in ["M", "F", "X", None]}
    assert sexes == set(dims["person.BiologicalSex"])
    offenses = [q("SELECT jc_offense_label(jc_offense_rank(?))", [t])
                for t in ["person", "property", "public_order", "drug", "other", None]]
    assert offenses == ["Person Offenses", "Property Offenses", "Public Order Offenses", "Drug Offenses",
                        "Other Offenses", "Unknown Offenses"]
    assert set(offenses) == set(dims["offense.OffenseType"])


# ---------------------------------------------------------------- the files

def read(path: Path) -> list[list[str]]:
    with open(path, newline="", encoding="utf-8") as f:
        return list(csv.reader(f))


def test_files_carry_the_publishers_names_columns_and_labels(built, tmp_path):
    result = write_justice_counts(built.con, tmp_path / "jc", TODAY)
    for sector in SECTORS:
        folder = tmp_path / "jc" / sector.folder
        assert sorted(p.name for p in folder.iterdir()) == sorted(f"{f.name}.csv" for f in sector.files)
        for f in sector.files:
            published = reference_file(sector.system, f.name)
            rows = read(folder / f"{f.name}.csv")
            assert rows[0] == header(f)
            keys = [tuple(r[:-1]) for r in rows[1:]]
            assert len(keys) == len(set(keys)), f.name            # the uploader refuses repeated rows
            if published["disaggregation"]:
                allowed = set(REFERENCE["dimensions"][published["disaggregation"]])
                assert {r[-2] for r in rows[1:]} <= allowed, f.name
    # C6's filing has no date: named, not silently dropped.
    assert result["notes"] == ["prosecution: PROSECUTION_CASES_PROSECUTED: 1 left out of the files, "
                               "their event has no date (marts.jc_cases rows with year NULL)"]

    arrests = read(tmp_path / "jc" / "law_enforcement" / "arrests.csv")
    # Every month from January 2023 to January 2024: 2, 2, 0, 1, then zeros, then 1.
    assert arrests[1:] == [["2023", str(m), str(n)] for m, n in zip(range(1, 13), [2, 2, 0, 1] + [0] * 8)] \
        + [["2024", "1", "1"]]
    by_type = {(r[0], r[1], r[2]): r[3] for r in read(tmp_path / "jc" / "law_enforcement" / "arrests_by_type.csv")[1:]}
    # Six categories seen, 13 months each; a month without arrests of a type says 0.
    assert len(by_type) == 13 * 6
    assert by_type[("2023", "1", "Person Offenses")] == "1" and by_type[("2023", "3", "Person Offenses")] == "0"
    race = read(tmp_path / "jc" / "law_enforcement" / "arrests_by_race.csv")
    assert race[0] == ["year", "month", "race/ethnicity", "value"]
    # Only the four categories the police recorded, never a category nobody was recorded in.
    assert {r[2] for r in race[1:]} == {"Black / Not Hispanic or Latino", "White / Hispanic or Latino",
                                        "Asian / Unknown Ethnicity",
                                        "American Indian or Alaska Native / Not Hispanic or Latino"}
    # Readmissions are annual: no month column, 2022: J6; 2023: J2, J4, J10.
    assert read(tmp_path / "jc" / "jails" / "readmissions.csv") == [["year", "value"], ["2022", "1"], ["2023", "3"]]
    population = read(tmp_path / "jc" / "jails" / "total_population.csv")
    assert population[1:3] == [["2022", "1", "1"], ["2022", "2", "1"]]
    assert population[-2:] == [["2023", "6", "1"], ["2023", "7", "2"]]
    disposed = read(tmp_path / "jc" / "prosecution" / "cases_disposed_by_type.csv")
    assert ["2023", "7", "Cases Resolved at Trial", "1"] in disposed and ["2023", "2", "Other Disposition", "1"] in disposed


def test_one_year_only(built, tmp_path):
    write_justice_counts(built.con, tmp_path / "jc", TODAY, year=2023)
    result = write_justice_counts(built.con, tmp_path / "jc", TODAY, year=2024)
    # 2024 holds arrest A6 only: the other sectors have nothing to send for it, and their
    # 2023 folders go rather than sit beside the 2024 files.
    assert sorted(p.name for p in (tmp_path / "jc").iterdir()) == ["law_enforcement"]
    assert "jails: not written: no counts for 2024" in result["notes"]
    assert read(tmp_path / "jc" / "law_enforcement" / "arrests.csv") == [["year", "month", "value"], ["2024", "1", "1"]]


def test_a_month_not_over_when_its_extract_was_delivered_is_held_back(settings, make_warehouse, tmp_path):
    """Police delivered on 20 January 2024: A6 (15 January) is in the file, but the rest of
    January is not, so January 2024 is not sent as a month's count; the other sectors'
    extracts, delivered at the same time, hold nothing after 2023 and are sent whole."""
    w = make_warehouse(settings.warehouse_path)
    county(w)
    w.received = datetime(2024, 1, 20, 6, 0)
    w.run()
    result = write_justice_counts(w.con, tmp_path / "jc", TODAY)
    arrests = read(tmp_path / "jc" / "law_enforcement" / "arrests.csv")
    # January to April 2023, the last month left with arrests: 2, 2, 0, 1.
    assert arrests[1:] == [["2023", str(m), str(n)] for m, n in zip(range(1, 5), [2, 2, 0, 1])]
    held = [n for n in result["notes"] if n.startswith("law_enforcement: ")]
    assert len(held) == 1 and held[0].startswith(
        "law_enforcement: 2024-01 left out: the latest police_arrests delivery, received 2024-01-20 ")
    # 2023 had ended when the jail extract came: its readmissions (an annual metric) are sent.
    assert read(tmp_path / "jc" / "jails" / "readmissions.csv") == [["year", "value"], ["2022", "1"], ["2023", "3"]]
    # Asked for 2024 alone, police have nothing complete to send.
    result = write_justice_counts(w.con, tmp_path / "jc2024", TODAY, year=2024)
    assert result["files"] == {} and "law_enforcement: not written: no counts for 2024" in result["notes"]


def test_a_sector_whose_agency_does_not_permit_justice_counts_is_not_written(built, tmp_path, monkeypatch):
    write_justice_counts(built.con, tmp_path / "jc", TODAY)        # an earlier run, all permitted
    folder = tmp_path / "agreements"
    folder.mkdir()
    for agency in ("police", "prosecutor", "jail"):
        purposes = "evaluation, operations" if agency == "police" else "evaluation, justice_counts"
        (folder / f"{agency}.yaml").write_text(
            f"reference: DSA-{agency.upper()}-1\nagency: {agency}\neffective: 2020-01-01\nend: 2099-12-31\n"
            f"purposes: [{purposes}]\nretention_days: 3650\nsmall_cell_threshold: 10\n")
    monkeypatch.setattr(agreements, "AGREEMENTS_DIR", folder)
    result = write_justice_counts(built.con, tmp_path / "jc", TODAY)
    # Prosecution draws on the police arrests for sex and race/ethnicity: it goes with them.
    assert sorted(result["files"]) == ["jails"]
    assert sorted(p.name for p in (tmp_path / "jc").iterdir()) == ["jails"]
    refused = ("not written: agency police: agreement DSA-POLICE-1 (police, 2020-01-01 to 2099-12-31) "
               "does not permit justice_counts")
    assert f"law_enforcement: {refused}" in result["notes"] and f"prosecution: {refused}" in result["notes"]


def test_the_command_writes_the_files_and_needs_the_key(settings, built, tmp_path, capsys, monkeypatch):
    built.close()
    out = tmp_path / "upload"
    assert cli.main(["justice-counts", "--out", str(out), "--year", "2023"]) == 0
    printed = capsys.readouterr().out
    assert "law_enforcement: 4 files" in printed and "prosecution: 16 files" in printed
    assert "jails: 8 files" in printed and "1 left out of the files" in printed
    assert read(out / "jails" / "readmissions.csv") == [["year", "value"], ["2023", "3"]]
    monkeypatch.setenv("LEADHUB_KEY_FILE", str(tmp_path / "nowhere.key"))
    assert cli.main(["justice-counts", "--out", str(tmp_path / "again")]) == 2
    assert not (tmp_path / "again").exists()


def test_the_pipeline_writes_into_the_stewards_folder_for_the_steward_only(settings, built):
    """Not into reports/, which analysts read: an agency may permit justice_counts but not evaluation."""
    import stat

    from leadhub.core.audit import steward_dir
    from leadhub.pipeline import justice_counts

    built.close()
    result = justice_counts(settings)
    folder = steward_dir(settings) / "justice_counts"
    assert result["files"]["jails"][0].startswith(str(folder))
    written = folder / "law_enforcement" / "arrests_by_biological_sex.csv"
    assert written.is_file() and not (settings.reports_dir / "justice_counts").exists()
    for path in (steward_dir(settings), folder, folder / "law_enforcement"):
        assert stat.S_IMODE(path.stat().st_mode) == 0o700, path
    assert stat.S_IMODE(written.stat().st_mode) == 0o600
    with duckdb.connect(str(settings.warehouse_path), read_only=True) as con:
        assert con.execute("SELECT count(*) FROM marts.jc_jail").fetchone()[0] > 0
