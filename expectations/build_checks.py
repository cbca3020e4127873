"""Checks that need the whole warehouse, run on the core tables after a build.

Some rules span extracts or depend on what the build derives, so no single
batch can be checked for them:

* referral before intake: a treatment episode referred by LEAD should not
  start before the person's first police LEAD referral (police referrals and
  treatment episodes only meet through ``core.person_link``);
* assessment of a known client: every case-management assessment belongs to
  a client the provider's clients extract lists (the two extracts only meet
  on the client's token, so an assessment of an unknown client would be
  counted by no mart that needs the client's consent);
* jail days consistent with timestamps: ``core.booking.jail_days`` must be at
  least one day and, for released people, equal the calendar days from
  booking to release, both ends counted.

The batches are already loaded by then, so these are warnings: they are
recorded in ``ops.validation_results`` under a batch id ``build-<time>`` and
the contract column names the core table. Observed values are counts only.
"""

from __future__ import annotations

from datetime import datetime

from expectations.suites import WARNING
from expectations.validate import count
from leadhub.core.warehouse import record_validation_results, table_exists, utcnow

REFERRAL_BEFORE_INTAKE = "expect_lead_referral_before_treatment_intake"
JAIL_DAYS_CONSISTENT = "expect_jail_days_to_match_booking_and_release"
ASSESSMENT_CLIENT_KNOWN = "expect_assessment_client_in_treatment_clients"

# name -> (core table, column(s) for the results, description, SQL giving (unexpected, checked))
BUILD_CHECKS = {
    REFERRAL_BEFORE_INTAKE: (
        "core.treatment_episode", "intake_date,referral_date",
        "LEAD-referred intake is not before the person's first police referral",
        """
        WITH first_referral AS (
            SELECT person_key, min(referral_date) AS referral_date
            FROM core.referral WHERE person_key IS NOT NULL GROUP BY person_key)
        SELECT count(*) FILTER (WHERE e.intake_date < f.referral_date), count(*)
        FROM core.treatment_episode e
        JOIN first_referral f ON f.person_key = e.person_key
        WHERE e.referral_source = 'lead'
        """),
    JAIL_DAYS_CONSISTENT: (
        "core.booking", "jail_days",
        "jail days are at least 1 and match booking and release dates",
        """
        SELECT count(*) FILTER (WHERE jail_days IS NULL OR jail_days < 1
                                   OR (release_ts IS NOT NULL AND (release_ts < booking_ts
                                       OR jail_days <> date_diff('day', booking_ts::DATE,
                                                                 release_ts::DATE) + 1))),
               count(*)
        FROM core.booking
        """),
    ASSESSMENT_CLIENT_KNOWN: (
        "core.assessment", "person_key",
        "assessed client is listed in the treatment clients extract",
        """
        SELECT count(*) FILTER (WHERE c.person_token IS NULL), count(*)
        FROM current.treatment_assessments a
        LEFT JOIN core.consent c ON c.person_token = a.person_token
        """),
}
BUILD_DESCRIPTIONS = {name: check[2] for name, check in BUILD_CHECKS.items()}


def build_checks(con) -> list[dict]:
    """Run every build check; results shaped like ``ValidationOutcome.results`` plus ``contract``.

    A check whose tables are not built yet is skipped rather than failed.
    """
    results = []
    for name, (table, column, description, sql) in BUILD_CHECKS.items():
        if not all(table_exists(con, *t.split(".")) for t in _tables_of(sql) | {table}):
            continue
        unexpected, checked = con.execute(sql).fetchone()
        results.append(count({
            "contract": table, "expectation": name, "column": column, "severity": WARNING,
            "success": unexpected == 0, "description": description,
        }, unexpected, checked))
    return results


def _tables_of(sql: str) -> set[str]:
    return {word for word in sql.replace("\n", " ").split(" ") if word.startswith("core.")}


def record_build_checks(con, now: datetime | None = None) -> tuple[str, list[dict]]:
    """Run the build checks and store them in ``ops.validation_results``; returns (batch id, results).

    Call it on the build's connection after the models ran (inside its transaction, so the
    results commit with the tables they describe).
    """
    validated = now or utcnow()
    batch_id = f"build-{validated:%Y%m%dT%H%M%S%f}"
    results = build_checks(con)
    # A rebuild that changes nothing must leave the warehouse identical: the same verdicts as
    # the latest recorded build are not stored again, so the stored series records changes.
    latest = con.execute("SELECT max(batch_id) FROM ops.validation_results WHERE batch_id LIKE 'build-%'"
                         ).fetchone()[0]
    if latest:
        stored = con.execute(
            "SELECT contract, expectation, column_name, severity, success, observed "
            "FROM ops.validation_results WHERE batch_id = ?", [latest]).fetchall()
        fresh = [(r["contract"], r["expectation"], r["column"], r["severity"], r["success"], r["observed"])
                 for r in results]
        if sorted(map(repr, stored)) == sorted(map(repr, fresh)):
            return latest, results
    record_validation_results(con, batch_id, results, validated)
    return batch_id, results
