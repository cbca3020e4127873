"""Checks on core tables after a build: referral before intake, jail days vs timestamps."""

from __future__ import annotations

from datetime import datetime

import duckdb

from expectations.build_checks import (JAIL_DAYS_CONSISTENT, REFERRAL_BEFORE_INTAKE, build_checks,
                                       record_build_checks)
from leadhub.core.warehouse import connect

CORE = """
CREATE TABLE core.referral (referral_id VARCHAR, person_key VARCHAR, referral_date DATE);
CREATE TABLE core.treatment_episode (episode_id VARCHAR, person_key VARCHAR, intake_date DATE,
                                     referral_source VARCHAR);
CREATE TABLE core.booking (booking_id VARCHAR, person_key VARCHAR, booking_ts TIMESTAMP,
                           release_ts TIMESTAMP, jail_days BIGINT);
INSERT INTO core.referral VALUES
    ('R1', 'k1', '2024-03-01'), ('R2', 'k1', '2024-05-01'), ('R3', 'k2', '2024-03-10'),
    ('R4', NULL, '2024-01-01');
INSERT INTO core.treatment_episode VALUES
    ('E1', 'k1', '2024-03-05', 'lead'),   -- after the first referral: fine
    ('E2', 'k2', '2024-03-01', 'lead'),   -- before the only referral: flagged
    ('E3', 'k2', '2024-02-01', 'court'),  -- not a LEAD referral: not checked
    ('E4', 'k9', '2024-01-01', 'lead'),   -- no referral of this person: not checked
    ('E5', NULL, '2024-01-01', 'lead');   -- no consent, no person: not checked
INSERT INTO core.booking VALUES
    ('B1', 'k1', '2024-01-01 23:00', '2024-01-02 01:00', 2),  -- two calendar days: fine
    ('B2', 'k1', '2024-02-01 10:00', '2024-02-01 12:00', 1),  -- same day: fine
    ('B3', 'k2', '2024-03-01 10:00', NULL, 30),                -- in custody: only >= 1 checked
    ('B4', 'k2', '2024-04-01 10:00', '2024-04-05 10:00', 3),  -- should be 5: flagged
    ('B5', 'k3', '2024-05-02 10:00', '2024-05-01 10:00', 0);  -- release before booking: flagged
"""


def test_build_checks_count_the_inconsistent_rows(settings):
    with connect(settings.warehouse_path) as con:
        con.execute(CORE)
        batch_id, results = record_build_checks(con, now=datetime(2024, 6, 1, 12, 0))
    assert batch_id == "build-20240601T120000000000"
    by_check = {r["expectation"]: r for r in results}
    assert by_check[REFERRAL_BEFORE_INTAKE]["observed"] == "unexpected 1 of 2 rows, 50.0%"
    assert by_check[JAIL_DAYS_CONSISTENT]["observed"] == "unexpected 2 of 5 rows, 40.0%"
    with duckdb.connect(str(settings.warehouse_path), read_only=True) as con:
        rows = con.execute("SELECT batch_id, agency, contract, kind, expectation, severity, success, "
                           "unexpected_count, checked_count FROM ops.data_quality ORDER BY contract").fetchall()
    assert rows == [
        (batch_id, "warehouse", "core.booking", "build", JAIL_DAYS_CONSISTENT, "warning", False, 2, 5),
        (batch_id, "warehouse", "core.treatment_episode", "build", REFERRAL_BEFORE_INTAKE, "warning",
         False, 1, 2),
    ]


def test_checks_of_tables_not_built_yet_are_skipped(settings):
    with connect(settings.warehouse_path) as con:
        assert build_checks(con) == []


def test_build_checks_word_counts_as_every_other_check(settings):
    """One wording for counted results everywhere ("1 row", not "1 rows"), parsed by ops.data_quality."""
    with connect(settings.warehouse_path) as con:
        con.execute("CREATE TABLE core.booking (booking_id VARCHAR, person_key VARCHAR, booking_ts TIMESTAMP, "
                    "release_ts TIMESTAMP, jail_days BIGINT)")
        con.execute("INSERT INTO core.booking VALUES ('B1', 'k1', '2024-01-01 10:00', NULL, 0)")
        [result] = build_checks(con)
    assert result["observed"] == "unexpected 1 of 1 row, 100.0%"
