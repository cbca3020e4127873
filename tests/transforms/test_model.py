"""Core tables and marts built by transforms/sql from hand-made staging rows."""

from __future__ import annotations

from datetime import date, datetime, timedelta

import duckdb
import pytest

from leadhub.core.errors import LeadHubError
from leadhub.core.warehouse import migrate
from transforms.model import run_models, sql_files

ELIGIBLE = (("DRG01", "felony"),)          # LEAD-eligible in offense_codes.csv
NOT_ELIGIBLE = (("PRP01", "misdemeanor"),)


def by_key(rows: list[dict], column: str = "person_key") -> dict:
    return {r[column]: r for r in rows}


def test_cohort_rule(warehouse):
    w = warehouse
    w.referral("lead", date(2022, 3, 1), age=41)
    w.referral("lead", date(2022, 9, 1), age=42)                      # later referral: not the index
    w.arrest("comp", date(2021, 12, 31), ELIGIBLE, precinct="EAST")   # before the program
    w.arrest("comp", date(2022, 5, 1), ELIGIBLE, precinct="WEST", age=25)
    w.arrest("comp", date(2022, 8, 1), ELIGIBLE, precinct="EAST")
    w.arrest("both", date(2022, 2, 1), ELIGIBLE, precinct="EAST")
    w.referral("both", date(2022, 6, 1), age=50)
    w.arrest("north", date(2022, 5, 1), ELIGIBLE, precinct="NORTH")   # LEAD precinct
    w.arrest("ineligible", date(2022, 5, 1), NOT_ELIGIBLE, precinct="EAST")
    w.arrest("late", date(2024, 1, 1), ELIGIBLE, precinct="EAST")      # after program_end
    w.arrest("mixed", date(2022, 7, 1), NOT_ELIGIBLE + ELIGIBLE, precinct="EAST")
    w.referral("unlinked", date(2022, 4, 1), link=False)
    w.run()

    cohort = by_key(w.rows("SELECT * FROM marts.cohort"))
    assert set(cohort) == {"pk-lead", "pk-comp", "pk-both", "pk-mixed"}
    assert (cohort["pk-lead"]["cohort"], cohort["pk-lead"]["index_date"],
            cohort["pk-lead"]["age_at_index"]) == ("lead", date(2022, 3, 1), 41)
    assert (cohort["pk-comp"]["cohort"], cohort["pk-comp"]["index_date"],
            cohort["pk-comp"]["age_at_index"]) == ("comparison", date(2022, 5, 1), 25)
    assert (cohort["pk-both"]["cohort"], cohort["pk-both"]["index_date"]) == ("lead", date(2022, 6, 1))
    assert cohort["pk-both"]["prior_arrests_365"] == 1
    assert cohort["pk-mixed"]["cohort"] == "comparison"
    assert cohort["pk-comp"]["prior_arrests_365"] == 1                 # the 2021-12-31 arrest
    # Unlinked referrals still count as referrals.
    assert w.rows("SELECT sum(referrals) AS n FROM marts.referrals_monthly")[0]["n"] == 4


def test_window_boundaries(warehouse):
    w = warehouse
    index = date(2022, 6, 1)
    w.referral("p", index)
    for offset in (-366, -365, -181, -180, 0, 180, 181, 365, 366):
        day = index + timedelta(days=offset)
        w.arrest("p", day)
        w.booking("p", datetime.combine(day, datetime.min.time()) + timedelta(hours=9),
                  datetime.combine(day, datetime.min.time()) + timedelta(hours=20))
        w.case("p", day, (("DRG01", "felony"), ("DRG02", "misdemeanor")), decision="declined")
    w.run()

    out = {r["window_days"]: r for r in w.rows("SELECT * FROM marts.outcomes")}
    # 180: before = {-180}, after = {+180}; 365: before = {-365, -181, -180}, after = {180, 181, 365}
    for window, before, after in ((180, 1, 1), (365, 3, 3)):
        o = out[window]
        assert (o["arrests_before"], o["arrests_after"]) == (before, after), window
        assert (o["bookings_before"], o["bookings_after"]) == (before, after), window
        assert (o["jail_days_before"], o["jail_days_after"]) == (before, after), window
        assert (o["felony_charges_before"], o["felony_charges_after"]) == (before, after)
        assert (o["misdemeanor_charges_before"], o["misdemeanor_charges_after"]) == (before, after)
        assert o["any_rearrest_after"] is True
    assert w.rows("SELECT prior_arrests_365 FROM marts.cohort")[0]["prior_arrests_365"] == 3


def test_jail_days_and_booking_severity(warehouse):
    w = warehouse
    overnight = w.booking("a", datetime(2022, 1, 1, 23, 0), datetime(2022, 1, 2, 1, 0))
    same_day = w.booking("a", datetime(2022, 2, 1, 8, 0), datetime(2022, 2, 1, 17, 0),
                         charges=(("PRP01", "misdemeanor"), ("PER02", "felony")))
    in_custody = w.booking("b", datetime(2022, 3, 1, 8, 0), None, charges=NOT_ELIGIBLE)
    w.booking("c", datetime(2022, 3, 5, 8, 0), datetime(2022, 3, 10, 12, 0))  # sets the data end
    w.run()

    booking = by_key(w.rows("SELECT * FROM core.booking"), "booking_id")
    assert booking[overnight]["jail_days"] == 2
    assert booking[same_day]["jail_days"] == 1
    assert booking[in_custody]["jail_days"] == 10          # 2022-03-01 .. 2022-03-10
    assert booking[same_day]["severity"] == "felony"
    assert booking[in_custody]["severity"] == "misdemeanor"
    assert booking[overnight]["person_key"] == "pk-a"
    charges = w.rows("SELECT * FROM core.booking_charge WHERE booking_id = ? ORDER BY charge_seq",
                     [same_day])
    assert [(c["offense_code"], c["offense_type"]) for c in charges] == [
        ("PRP01", "property"), ("PER02", "person")]


def test_arrest_takes_most_serious_charge(warehouse):
    w = warehouse
    aid = w.arrest("p", date(2022, 4, 1),
                   (("POR02", "misdemeanor"), ("PRP02", "felony"), ("DRG02", "misdemeanor")))
    misd = w.arrest("p", date(2022, 5, 1), (("OTH01", "misdemeanor"), ("POR01", "misdemeanor")))
    w.run()

    arrest = by_key(w.rows("SELECT * FROM core.arrest"), "arrest_id")
    assert (arrest[aid]["severity"], arrest[aid]["offense_type"], arrest[aid]["lead_eligible"]) == (
        "felony", "property", True)
    assert (arrest[misd]["severity"], arrest[misd]["offense_type"], arrest[misd]["lead_eligible"]) == (
        "misdemeanor", "other", False)
    assert w.rows("SELECT count(*) AS n FROM core.arrest_charge")[0]["n"] == 5


def test_consent_hold_out(warehouse):
    w = warehouse
    w.arrest("yes", date(2022, 1, 5))
    w.client("yes", "active")
    w.episode("yes", date(2022, 2, 1))
    w.contact("yes", date(2022, 2, 3))
    w.arrest("no", date(2022, 1, 5))
    w.client("no", "revoked", link=True)     # a stale link must not leak the records
    w.episode("no", date(2022, 2, 1))
    w.contact("no", date(2022, 2, 3))
    w.client("never", "none")
    w.contact("never", date(2022, 2, 4))
    w.run()

    consent = {r["consent_status"]: r for r in w.rows("SELECT * FROM core.consent")}
    assert consent["active"]["person_key"] == "pk-yes"
    assert consent["revoked"]["person_key"] is None
    assert consent["none"]["person_key"] is None
    assert [r["person_key"] for r in w.rows(
        "SELECT person_key FROM core.treatment_episode ORDER BY intake_date, person_key NULLS LAST")
    ] == ["pk-yes", None]
    assert sorted(str(r["person_key"]) for r in w.rows("SELECT person_key FROM core.service_contact")
                  ) == ["None", "None", "pk-yes"]
    person = by_key(w.rows("SELECT * FROM core.person"))
    assert person["pk-yes"]["agencies"] == ["police", "treatment"]
    assert person["pk-no"]["agencies"] == ["police"]
    assert "pk-never" not in person


def test_person_attributes_are_modal(warehouse):
    w = warehouse
    w.referral("p", date(2022, 1, 1), race="UNKNOWN", sex="F")
    w.arrest("p", date(2021, 6, 1), race="BLACK", sex="F")
    w.arrest("p", date(2021, 7, 1), race="UNKNOWN", sex="M")
    w.booking("p", datetime(2021, 5, 1, 8), datetime(2021, 5, 2, 8))   # jail: M, WHITE
    w.case("p", date(2021, 4, 1))
    w.run()

    person = w.rows("SELECT * FROM core.person")[0]
    assert person["first_seen"] == date(2021, 4, 1)
    assert person["agencies"] == ["jail", "police", "prosecutor"]
    assert person["agency_count"] == 3
    # UNKNOWN is most frequent but a recorded value wins; BLACK and WHITE tie, BLACK is later.
    assert person["race"] == "BLACK"
    # F and M tie twice each; F was recorded last.
    assert person["sex"] == "F"
    assert person["ethnicity"] == "NON_HISPANIC"


def test_run_models_is_idempotent(warehouse):
    w = warehouse
    w.referral("l", date(2022, 3, 1))
    w.arrest("l", date(2022, 1, 1))
    w.arrest("c", date(2022, 5, 1), ELIGIBLE, precinct="EAST")
    w.booking("c", datetime(2022, 5, 1, 8), None)
    w.case("c", date(2022, 5, 2))
    w.client("l", "active")
    w.episode("l", date(2022, 3, 2))
    first = w.run()
    snapshot = {t: w.rows(f"SELECT * FROM {t} ORDER BY ALL") for t in first}
    second = run_models(w.con)
    assert first == second
    assert {t: w.rows(f"SELECT * FROM {t} ORDER BY ALL") for t in second} == snapshot
    for table in ("core.referral", "core.arrest", "core.arrest_charge", "core.booking",
                  "core.booking_charge", "core.case_charge", "core.consent",
                  "core.treatment_episode", "core.service_contact", "core.person",
                  "core.offense_code", "core.evaluation_settings", "marts.cohort",
                  "marts.outcomes", "marts.referrals_monthly", "marts.outcomes_summary"):
        assert table in first
    assert first["marts.outcomes"] == 4    # 2 people x 2 windows
    assert first["marts.outcomes_summary"] == 4


def test_run_models_inside_a_rolled_back_transaction_leaves_nothing(warehouse):
    w = warehouse
    w.referral("l", date(2022, 3, 1))
    w.deliver()
    w.con.execute("BEGIN")
    run_models(w.con)
    w.con.execute("ROLLBACK")
    assert not w.rows("SELECT * FROM duckdb_tables() WHERE schema_name = 'marts'")


def test_missing_person_link_is_an_error(tmp_path):
    con = duckdb.connect(str(tmp_path / "w.duckdb"))
    migrate(con)
    with pytest.raises(LeadHubError, match="person_link"):
        run_models(con)
    con.close()


def test_sql_files_run_in_numeric_order():
    names = [p.name for p in sql_files()]
    assert names == sorted(names, key=lambda n: int(n.split("_")[0]))
    assert names[0].startswith("10_") and any("marts" in n for n in names)


def test_rows_a_corrected_incremental_resend_leaves_out_are_kept_as_deleted(settings, master_key):
    """The current view drops them; core.record_history must say so, as it does for full history."""
    import os

    from leadhub.core.contracts import load_contracts
    from leadhub.pipeline import ingest_agency
    from transforms.model import record_history_sql

    header = "contact_id,client_id,contact_date,service_type\n"
    inbox = settings.inbox("treatment")
    inbox.mkdir(parents=True, exist_ok=True)

    def deliver(name, rows):
        (inbox / name).write_text(header + rows)
        os.utime(inbox / name, (1, 1))
        [outcome] = ingest_agency(settings, "treatment", master_key)
        if outcome["status"] == "held":  # the correction removes 1 of 3 rows, over the volume guard's 10%
            from leadhub.pipeline import release
            outcome = release(settings, outcome["file_id"], "the agency confirmed a row was sent in error")
        assert outcome["status"] == "accepted"
        return outcome["batch_id"]

    first = deliver("treatment_contacts_20240101.csv",
                    "S1,C1,2024-01-01,housing\nS2,C1,2024-01-01,housing\nS3,C2,2024-01-01,housing\n")
    other = deliver("treatment_contacts_20240102.csv", "S4,C1,2024-01-02,housing\n")
    corrected = deliver("treatment_contacts_20240101.csv",   # S2 was sent in error; S3 corrected
                        "S1,C1,2024-01-01,housing\nS3,C2,2024-01-01,case_management\n")
    with duckdb.connect(str(settings.warehouse_path)) as con:
        assert sorted(con.execute("SELECT contact_id FROM current.treatment_contacts").fetchall()) == [
            ("S1",), ("S3",), ("S4",)]
        con.execute(record_history_sql(load_contracts()))
        history = con.execute("""SELECT record_key, change, last_batch_id, changed_by_batch_id
            FROM core.record_history WHERE contract = 'treatment_contacts' ORDER BY 1""").fetchall()
    assert history == [("S1", "replaced", first, corrected),
                       ("S2", "deleted", first, corrected),
                       ("S3", "replaced", first, corrected)]
    assert other not in {h[2] for h in history}
