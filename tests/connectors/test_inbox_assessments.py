"""The case-management assessments extract through real intake: synthetic deliveries pass its
suite; hostile ones are quarantined with the row and rule that failed."""

from __future__ import annotations

import duckdb
import pytest

from leadhub.pipeline import ingest_agency
from synthetic import generate
from tests.connectors.test_inbox import drop, query

HEADER = "assessment_id,client_id,assessment_date,housing_status,employment_status,income_source\n"
GOOD = "V0000001,C00001,2024-01-02,shelter,unemployed,benefits\n"


def test_synthetic_assessments_pass_their_suite(settings, master_key):
    summary = generate(settings.inbox_dir, settings.answers_dir, people=300, seed=11, lead=30, comparison=20)
    outcomes = {o["file"]: o for o in ingest_agency(settings, "treatment", master_key)}
    [outcome] = [o for name, o in outcomes.items() if name.startswith("treatment_assessments_")]
    assert outcome["status"] == "accepted"
    assert outcome["rows"] == summary["files"]["treatment_assessments"] > 30 * 15
    failed = query(settings, """SELECT expectation FROM ops.validation_results v
        JOIN ops.batches b USING (batch_id) WHERE b.contract = 'treatment_assessments' AND NOT v.success""")
    assert failed == []
    checked = query(settings, """SELECT count(*) FROM ops.validation_results v
        JOIN ops.batches b USING (batch_id) WHERE b.contract = 'treatment_assessments'""")[0][0]
    assert checked >= 10   # the contract's checks plus the two hand-written ones
    # The client numbers became tokens: none is left in the warehouse file.
    with duckdb.connect(str(settings.warehouse_path), read_only=True) as con:
        tokens = con.execute("SELECT count(DISTINCT person_token) FROM staging.treatment_assessments").fetchone()[0]
    assert tokens == 30


@pytest.mark.parametrize("row, rule, where", [
    # housing_status outside its known values: the GX suite's critical check, data row 2
    ("V0000002,C00001,2024-02-03,couch,unemployed,none\n", "critical check",
     "housing_status values in known set (unexpected 1 of 2 rows, 50.0%; rows 2)"),
    # a date in another layout: the reader's date_format rule, data row 2
    ("V0000002,C00001,03/02/2024,street,unemployed,none\n", "date_format",
     "row 2: rule 'date_format' failed: column assessment_date"),
])
def test_hostile_assessments_are_quarantined_with_row_and_rule(settings, master_key, row, rule, where):
    path = drop(settings, "treatment_assessments_20240301.csv", HEADER + GOOD + row)
    [outcome] = ingest_agency(settings, "treatment", master_key)
    assert outcome["status"] == "quarantined", outcome
    assert rule in outcome["reason"] and where in outcome["reason"], outcome["reason"]
    assert not path.exists()
    assert any(p.name.endswith("__treatment_assessments_20240301.csv")
               for p in (settings.quarantine_dir / "treatment").iterdir())
    [(status, reason)] = query(settings, "SELECT status, reason FROM ops.file_ledger")
    assert status == "quarantined" and rule in reason
    assert query(settings, "SELECT count(*) FROM staging.treatment_assessments") == [(0,)]
