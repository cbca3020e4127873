"""A fifth agency needs its contract and its agreement, nothing else: intake, validation and staging follow."""

import os

import duckdb
import pytest

from leadhub.core import agreements, contracts
from leadhub.pipeline import ingest_agency

CONTRACT = """agency: probation
extract: visits
description: Probation officer visits, one row per visit.
file_pattern: "probation_visits_*.csv"
format: {type: csv, delimiter: ",", quotechar: '"', encoding: utf-8, header: true}
history: incremental
cadence_hours: 168
stale_after_hours: 336
primary_key: [visit_id]
age_at: visit_date
columns:
  - {name: visit_id, type: string, nullable: false, description: Visit number.}
  - {name: probationer_id, type: string, nullable: false, identifier: agency_person_id, description: Probation person number.}
  - {name: last_name, type: string, nullable: false, identifier: last_name, description: Surname.}
  - {name: first_name, type: string, nullable: false, identifier: first_name, description: Given name.}
  - {name: dob, type: date, formats: ["%Y-%m-%d"], nullable: false, identifier: dob, description: Date of birth.}
  - {name: visit_date, type: date, formats: ["%Y-%m-%d"], nullable: false, description: Date of the visit.}
  - {name: outcome, type: string, nullable: false, known_values: [compliant, violation], description: Result.}
"""
AGREEMENT = """reference: DSA-PROBATION-1
agency: probation
effective: 2020-01-01
end: 2099-12-31
purposes: [evaluation, operations]
retention_days: 2555
small_cell_threshold: 10
"""


@pytest.fixture
def fifth_agency():
    from expectations import validate

    path = contracts.CONTRACTS_DIR / "probation" / "visits.yaml"
    path.parent.mkdir()
    path.write_text(CONTRACT)
    signed = agreements.AGREEMENTS_DIR / "probation.yaml"
    signed.write_text(AGREEMENT)
    contracts.load_contracts.cache_clear()
    try:
        yield path
    finally:
        signed.unlink()
        path.unlink()
        path.parent.rmdir()
        contracts.load_contracts.cache_clear()
        validate._gx_suite.cache_clear()


def test_a_new_agency_is_taken_in_with_nothing_but_its_contract_and_agreement(fifth_agency, settings, master_key):
    assert "probation" in contracts.agencies()
    inbox = settings.inbox("probation")
    inbox.mkdir(parents=True)
    good = inbox / "probation_visits_20240105.csv"
    good.write_text("visit_id,probationer_id,last_name,first_name,dob,visit_date,outcome\n"
                    "V1,PR9,Zebediah,Quill,1980-02-03,2024-01-05,compliant\n"
                    "V2,PR8,Okafor,Ben,1975-06-30,2024-01-05,violation\n")
    bad = inbox / "probation_visits_20240106.csv"
    bad.write_text("visit_id,probationer_id,last_name,first_name,dob,visit_date,outcome\n"
                   "V3,PR9,Zebediah,Quill,1980-02-03,2024-01-06,absconded\n")
    for p in (good, bad):
        os.utime(p, (1, 1))
    outcomes = {o["file"]: o for o in ingest_agency(settings, "probation", master_key)}
    assert outcomes[good.name]["status"] == "accepted" and outcomes[good.name]["rows"] == 2
    # Its suite comes from the contract too: an unknown code is a critical failure.
    assert outcomes[bad.name]["status"] == "quarantined" and "outcome" in outcomes[bad.name]["reason"]
    with duckdb.connect(str(settings.warehouse_path), read_only=True) as con:
        rows = con.execute("SELECT visit_id, outcome, age_at_event FROM current.probation_visits "
                           "ORDER BY 1").fetchall()
    assert rows == [("V1", "compliant", 43), ("V2", "violation", 48)]
