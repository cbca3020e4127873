"""Builds, the analysts' snapshot and the report use an agency's data only within its
data-sharing agreement and its purposes."""

from datetime import date

import duckdb
import pytest

import leadhub.core.agreements as agreements
from leadhub.core.agreements import AgreementError
from leadhub.pipeline import build

SIGNED = """reference: DSA-{upper}-1
agency: {agency}
effective: 2020-01-01
end: {end}
purposes: [{purposes}]
retention_days: 3650
small_cell_threshold: {threshold}
"""
ALL = "evaluation, operations, justice_counts"


@pytest.fixture
def sign(tmp_path, monkeypatch):
    """Write the agreements a test needs into a folder of its own: sign(agency, end=..., ...)."""
    folder = tmp_path / "agreements"
    folder.mkdir()
    monkeypatch.setattr(agreements, "AGREEMENTS_DIR", folder)

    def write(agency, end="2099-12-31", purposes=ALL, threshold=10):
        (folder / f"{agency}.yaml").write_text(SIGNED.format(upper=agency.upper(), agency=agency, end=end,
                                                             purposes=purposes, threshold=threshold))
    return write


@pytest.fixture
def delivered(settings, make_warehouse):
    """Police and treatment rows in staging (no build yet): 3 people referred and arrested,
    2 of them treatment clients with one contact each."""
    w = make_warehouse(settings.warehouse_path)
    for i in range(3):
        p = f"P{i}"
        w.referral(p, date(2022, 3, 1 + i))
        w.arrest(p, date(2021, 12, 1 + i))
        if i < 2:
            w.client(p, "active")
            w.episode(p, date(2022, 3, 5))
            w.contact(p, date(2022, 3, 10))
    w.deliver()
    w.close()
    return settings


def tables(settings, schema):
    with duckdb.connect(str(settings.warehouse_path), read_only=True) as con:
        return {t for (t,) in con.execute("SELECT table_name FROM duckdb_tables() WHERE schema_name = ?",
                                          [schema]).fetchall()}


def test_build_refuses_while_an_agency_with_data_has_no_agreement_in_force(delivered, sign):
    sign("police", end="2021-12-31")     # expired
    sign("treatment")
    with pytest.raises(AgreementError, match=r"agency police: agreement DSA-POLICE-1 .* is not in force"):
        build(delivered, publish=False)
    assert "arrest" not in tables(delivered, "core")      # nothing was built


def test_build_refuses_when_an_agency_with_data_has_no_agreement_at_all(delivered, sign):
    sign("police")
    with pytest.raises(AgreementError, match="agency treatment has no data-sharing agreement"):
        build(delivered, publish=False)


def test_build_goes_ahead_when_every_agency_with_data_has_an_agreement(delivered, sign):
    sign("police")
    sign("treatment")
    sign("jail", end="2021-12-31")       # expired, but the warehouse holds no jail data
    build(delivered, publish=False)
    assert {"arrest", "referral", "service_contact"} <= tables(delivered, "core")


def snapshot(settings, sql):
    from transforms.publish import snapshot_path

    with duckdb.connect(str(snapshot_path(settings)), read_only=True) as con:
        return con.execute(sql).fetchall()


def test_snapshot_leaves_out_an_agency_whose_agreement_does_not_permit_evaluation(delivered, sign):
    sign("police")
    sign("treatment", purposes="operations")
    build(delivered)
    published = {f"{s}.{t}" for s, t in snapshot(delivered, "SELECT schema_name, table_name FROM duckdb_tables()")}
    # Built from police extracts only: published. Built from treatment's (alone or with others'): not.
    assert {"core.arrest", "core.referral", "marts.referrals_monthly", "marts.jc_arrests"} <= published
    assert not {"core.service_contact", "core.treatment_episode", "core.consent", "core.person",
                "marts.caseload_monthly", "marts.services_monthly", "marts.cohort"} & published
    # Tables with a contract or agency column keep only the permitted agencies' rows.
    assert {c for (c,) in snapshot(delivered, "SELECT DISTINCT contract FROM ops.batches")} == {
        "police_referrals", "police_arrests"}
    # Extracts of agencies that sent nothing (jail, prosecutor) are listed with 0 rows; treatment's are not.
    assert not [s for (s,) in snapshot(delivered, "SELECT source FROM ops.snapshot_info")
                if s.startswith("treatment_")]
    assert snapshot(delivered, "SELECT reference, agency, small_cell_threshold FROM ops.agreements") == [
        ("DSA-POLICE-1", "police", 10)]
    # The data dictionary beside it describes what it holds, not what was left out.
    from transforms.publish import published_dir

    dictionary = (published_dir(delivered) / "data_dictionary.md").read_text()
    assert "core.arrest" in dictionary and "core.service_contact" not in dictionary


def test_snapshot_with_every_agency_permitted_lists_every_agreement(delivered, sign):
    sign("police")
    sign("treatment", threshold=15)
    build(delivered)
    assert snapshot(delivered, "SELECT agency, small_cell_threshold FROM ops.agreements ORDER BY agency") == [
        ("police", 10), ("treatment", 15)]
    assert snapshot(delivered, "SELECT count(*) FROM core.service_contact") == [(2,)]


# ---------------------------------------------------------------- the report

REPORT_DAY = date(2024, 2, 1)


@pytest.fixture
def twelve_referred(settings, make_warehouse):
    """12 people referred (arrest diversion) in March 2022, each arrested before; 2 of them
    treatment clients. Hand count: referrals_monthly shows 12 for 2022-03."""
    w = make_warehouse(settings.warehouse_path)
    for i in range(12):
        p = f"R{i:02d}"
        w.referral(p, date(2022, 3, 1 + i))
        w.arrest(p, date(2021, 12, 1 + i))
        if i < 2:
            w.client(p, "active")
            w.episode(p, date(2022, 3, 20))
            w.contact(p, date(2022, 3, 25))
    w.deliver()
    w.close()
    return settings


def march_referrals(paths):
    import csv

    with open(paths["referrals_monthly"], newline="", encoding="utf-8") as f:
        [march] = [r for r in csv.DictReader(f) if r["Month"] == "2022-03"]
    return march["arrest_diversion"]


def test_report_suppresses_up_to_the_largest_threshold_an_agreement_requires(twelve_referred, sign):
    from transforms.report import write_report

    sign("police")
    sign("treatment")
    build(twelve_referred)
    assert march_referrals(write_report(twelve_referred, today=REPORT_DAY)) == "12"    # 12 > 10: shown
    sign("treatment", threshold=15)
    build(twelve_referred)
    paths = write_report(twelve_referred, today=REPORT_DAY)
    assert march_referrals(paths) == "<16"                                           # 12 <= 15: suppressed
    page = open(paths["html"], encoding="utf-8").read()
    assert "counts from 1 to 15" in page and "<td>12</td>" not in page


def test_report_leaves_out_an_agency_without_evaluation_and_lists_the_agreements_drawn_on(twelve_referred, sign):
    from pathlib import Path

    from transforms.report import write_report

    sign("police")
    sign("treatment", purposes="operations")
    build(twelve_referred)
    paths = write_report(twelve_referred, today=REPORT_DAY)
    # Treatment's tables, and those built from every agency (the cohorts), are left out.
    assert not {"time_to_first_contact", "caseload_monthly", "services_quarterly", "outcomes",
                "rearrest_2x2"} & set(paths)
    assert {"referrals_monthly", "jc_arrests_race", "batch_lineage"} <= set(paths)
    folder = Path(paths["html"]).parent
    assert not (folder / "PART2_NOTICE.txt").exists()
    page = (folder / "lead_report.html").read_text(encoding="utf-8")
    assert "DSA-POLICE-1 (police, 2020-01-01 to 2099-12-31)" in page
    assert "DSA-TREATMENT-1" not in page


def test_report_refuses_when_an_agreement_drawn_on_has_expired_since_publication(twelve_referred, sign):
    from transforms.report import write_report

    sign("police")
    sign("treatment")
    build(twelve_referred)
    sign("police", end="2023-12-31")
    with pytest.raises(AgreementError, match=r"agency police: agreement DSA-POLICE-1 .* not in force on 2024-02-01"):
        write_report(twelve_referred, today=REPORT_DAY)


def test_justice_counts_tables_need_the_justice_counts_purpose(twelve_referred, sign):
    from transforms.report import write_report

    sign("police", purposes="evaluation, operations")
    sign("treatment")
    build(twelve_referred)
    paths = write_report(twelve_referred, today=REPORT_DAY)
    # jc_arrests is built from police extracts: without justice_counts the Justice Counts tables go.
    assert not [name for name in paths if name.startswith("jc_")]
    assert "referrals_monthly" in paths and "outcomes" in paths
