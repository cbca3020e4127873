"""The data dictionary of the published snapshot: every table and column, described.

Descriptions come from where the meaning is decided, so they cannot drift far
from it:
  * a column copied from an agency extract takes the description written in
    that extract's contract (connectors/contracts/<agency>/<extract>.yaml);
  * a table built by a model takes the comment block above its
    ``CREATE OR REPLACE TABLE`` in transforms/sql;
  * columns the models compute, and the tables created in Python (reference
    tables, ops), are described here, next to the lookup that uses them.
A published column without a description is listed as undescribed, and a test
fails on it, so a new column cannot ship unexplained.

The dictionary is written next to the snapshot as Markdown and as a
self-contained HTML page; the same texts are stored as COMMENTs in the snapshot.
"""

from __future__ import annotations

import re
from pathlib import Path

from leadhub.core.contracts import load_contracts
from leadhub.core.files import atomic_write
from transforms.disclosure import TABLE_SOURCES
from transforms.model import SQL_DIR, sql_files
from transforms.notices import PART2_NOTICE
from transforms.rendering import render

UNDESCRIBED = "(no description yet)"
# Tables drawn from treatment records: their descriptions carry the Part 2 notice.
PART2_TABLES = {("core", "consent"), ("core", "treatment_episode"), ("core", "service_contact"),
                ("core", "assessment"),
                ("marts", "first_contact"), ("marts", "caseload_monthly"), ("marts", "services_monthly"),
                ("marts", "life_status_monthly"), ("marts", "life_outcomes_monthly"),
                ("marts", "life_arrest_periods")}

# Tables not built from a transforms/sql file.
TABLES = {
    ("core", "offense_code"): "Offense-code reference (transforms/reference/offense_codes.csv): "
                              "offense type, default severity and LEAD eligibility of each code.",
    ("core", "evaluation_settings"): "The evaluation cohort definitions from transforms/evaluation.yaml "
                                     "(one row).",
    ("core", "record_history"): "Row versions that later deliveries took out of use: records deleted "
                                "by a later full-history delivery or left out of a corrected "
                                "re-send of an incremental file, and records replaced by a "
                                "re-sent key in an incremental extract. The current layer shows "
                                "only live rows; this keeps the rest visible.",
    ("ops", "file_ledger"): "One row per file that ever arrived in a drop folder, with what happened to it.",
    ("ops", "batches"): "One row per loaded delivery (batch): the file it came from and when it loaded.",
    ("ops", "validation_results"): "Great Expectations results per batch: one row per expectation checked.",
    ("ops", "schema_version"): "Warehouse schema migrations applied by the hub, one row per version.",
    ("ops", "snapshot_info"): "When this snapshot was published, and for each source extract the "
                              "months its current rows cover and when its latest delivery arrived "
                              "(one row per extract).",
    ("ops", "agreements"): "The data-sharing agreements this snapshot draws on: the agencies whose "
                           "agreement, in force when it was published, permits evaluation. Data of "
                           "other agencies is left out of the snapshot.",
    ("ops", "linkage_runs"): "Which linkage model and settings linked people, with the counts (no "
                             "person data): a row whenever one of them changed at a build.",
    ("ops", "data_quality"): "Every validation check of every delivery and build, with its file, for "
                             "data-quality trends (counts only, never values).",
}

_MONTH_SINCE_REFERRAL = ("Months since the first LEAD referral: month m runs from the referral date "
                         "plus m months to the day before plus m + 1 months; -1 is the month before "
                         "referral.")
_HOUSED = ("True when the housing status is transitional or permanent; false when street or "
           "shelter; NULL when unknown or missing.")
_EMPLOYED = ("True when the employment status is part_time or full_time; false when unemployed or "
             "unable_to_work; NULL when unknown or missing.")

# Columns the models compute (or that mean something specific in one table).
COLUMNS = {
    ("core", "arrest"): {
        "severity": "felony if any charge on the arrest is a felony, else misdemeanor.",
        "offense_type": "Offense type (person, property, drug, public_order, other) of the most "
                        "serious charge: felonies first, then the lowest charge sequence.",
        "lead_eligible": "True when any charge is LEAD-eligible per the offense-code reference.",
        "charge_count": "Number of charges on the arrest.",
    },
    ("core", "arrest_charge"): {
        "lead_eligible": "True when the offense code is LEAD-eligible per the reference; "
                         "false for codes missing from it.",
    },
    ("core", "booking"): {
        "booking_ts": "Booking time (earliest across the booking's charge rows).",
        "release_ts": "Release time: the latest on any charge row; NULL while in custody.",
        "booking_date": "Calendar date of booking_ts.",
        "jail_days": "Calendar days in custody, booking and release day both counted; still in "
                     "custody: counted up to the latest booking or release date in the jail data.",
        "arrest_id": "Police arrest number of the booking (lowest across its charge rows), if any.",
        "severity": "felony if any charge on the booking is a felony, else misdemeanor.",
        "charge_count": "Number of charges on the booking.",
    },
    ("core", "consent"): {
        "person_key": "Person key while the consent is active; NULL otherwise, so treatment "
                      "records of non-consenting clients link to no one.",
    },
    ("core", "treatment_episode"): {
        "person_key": "Person key of the client while their 42 CFR Part 2 consent is active, else NULL.",
    },
    ("core", "service_contact"): {
        "person_key": "Person key of the client while their 42 CFR Part 2 consent is active, else NULL.",
    },
    ("core", "assessment"): {
        "person_key": "Person key of the client while their 42 CFR Part 2 consent is active, else NULL.",
    },
    ("core", "person"): {
        "first_seen": "Earliest event date of the person across every agency.",
        "agencies": "The agencies whose records are linked to the person, sorted.",
        "agency_count": "Number of agencies whose records are linked to the person.",
        "sex": "Modal sex across police and jail records (a recorded value over UNKNOWN).",
        "race": "Modal race across police and jail records (a recorded value over UNKNOWN).",
        "ethnicity": "Modal ethnicity across police records (a recorded value over UNKNOWN).",
    },
    ("core", "offense_code"): {
        "offense_code": "Offense code as used by police, prosecutor and jail extracts.",
        "description": "What the offense code stands for.",
        "offense_type": "Justice Counts offense type: person, property, drug, public_order or other.",
        "default_severity": "Usual severity of the offense: felony or misdemeanor.",
        "lead_eligible": "True when an arrest on this charge may be diverted to LEAD.",
    },
    ("core", "evaluation_settings"): {
        "version": "Version of transforms/evaluation.yaml.",
        "comparison_precincts": "Precincts where LEAD did not operate, from which the comparison "
                                "group is drawn.",
        "program_start": "First day of the program window.",
        "program_end": "Last day of the program window.",
        "windows_days": "Follow-up windows, in days, for before/after outcomes.",
    },
    ("core", "record_history"): {
        "contract": "Extract (agency_extract) the record belongs to.",
        "record_key": "The record's primary key as text; NULL when that key is an agency person "
                      "id, whose token stays in the warehouse.",
        "change": "deleted (left out of a later full-history delivery, or of a corrected "
                  "re-send of the same incremental file) or replaced (its key was sent again "
                  "in an incremental extract).",
        "last_batch_id": "The batch that last held this version of the record.",
        "changed_by_batch_id": "The batch that deleted or replaced it.",
        "changed_at": "When that batch loaded.",
    },
    ("marts", "cohort"): {
        "cohort": "lead (referred to LEAD) or comparison (never referred; LEAD-eligible arrest in "
                  "a comparison precinct during the program window).",
        "index_date": "lead: first referral date; comparison: first qualifying arrest date.",
        "age_at_index": "Age in whole years on the index date.",
        "sex": "Sex from core.person.",
        "race": "Race from core.person.",
        "prior_arrests_365": "Distinct arrests in the 365 days before the index date.",
    },
    ("marts", "outcomes"): {
        "cohort": "lead or comparison (see marts.cohort).",
        "index_date": "The person's index date (see marts.cohort).",
        "any_rearrest_after": "True when arrests_after > 0.",
        "followup_complete": "True when index + window falls on or before the latest arrest date "
                             "in the data: the whole after-window was observable.",
    },
    ("marts", "outcomes_summary"): {
        "cohort": "lead or comparison.",
        "n_people": "People in the cohort.",
        "n_followup_complete": "People whose whole after-window was observable.",
        "any_rearrest_n": "People with at least one arrest in the after-window.",
        "any_rearrest_share": "any_rearrest_n / n_people.",
    },
    ("marts", "referrals_monthly"): {
        "month": "First day of the calendar month of the referral date.",
        "referrals": "Referrals (linked to a person or not).",
    },
    ("marts", "first_contact"): {
        "person_key": "Person key of a LEAD participant.",
        "index_date": "First referral date.",
        "first_contact_date": "First case-management contact on or after the index date; NULL "
                              "when none (or when the client has not consented to sharing).",
        "days_to_first_contact": "Days from index_date to first_contact_date.",
    },
    ("marts", "caseload_monthly"): {
        "month": "First day of the calendar month.",
        "referral_source": "Who referred the client to case management (lead, self, court, other).",
        "active_episodes": "Case-management episodes open at any time in the month.",
    },
    ("marts", "services_monthly"): {
        "month": "First day of the calendar month of the contact.",
        "service_type": "Service delivered.",
        "contacts": "Service contacts (consented or not).",
        "people_linked": "Distinct consented clients reached (contacts without consent carry no person).",
    },
    ("marts", "jc_arrests"): {
        "metric": "Justice Counts metric key: LAW_ENFORCEMENT_ARRESTS.",
        "year": "Calendar year of the arrest date.",
        "month": "Calendar month (1-12) of the arrest date.",
        "offense_type": "Offense type of the arrest's most serious charge, ranked person > property > "
                        "public order > drug > other > unknown, in the Publisher's labels (Person "
                        "Offenses, ..., Unknown Offenses for a code missing from the reference table).",
        "race_ethnicity": "Race and ethnicity recorded on the arrest, in the Publisher's combined "
                          "categories (e.g. Black / Not Hispanic or Latino).",
        "biological_sex": "Sex recorded on the arrest: Male, Female or Unknown Biological Sex (X or blank).",
        "arrests": "Arrest events (linked to a person or not).",
    },
    ("marts", "jc_cases"): {
        "metric": "Justice Counts metric key: PROSECUTION_CASES REFERRED (by referral date), "
                  "PROSECUTION_CASES_DECLINED (every charge declined; last decision date), "
                  "PROSECUTION_CASES_DIVERTED (any charge diverted; first diversion date), "
                  "PROSECUTION_CASES_PROSECUTED (any charge filed; first filing date) or "
                  "PROSECUTION_CASES_DISPOSED (last disposition date, or diversion date when never filed).",
        "year": "Calendar year of the metric's event; NULL when that event has no date.",
        "month": "Calendar month (1-12) of the metric's event; NULL when it has no date.",
        "case_severity": "The case's most serious charge level in the metric's labels (e.g. Felony "
                         "Cases Declined); NULL for cases disposed.",
        "disposition_type": "Cases disposed only: Cases Disposed by Dismissal, Cases Resolved at Trial "
                            "(any charge acquitted: only a trial acquits), Unknown Disposition (convicted "
                            "with none acquitted: plea or trial is not recorded) or Other Disposition (diverted, never filed).",
        "race_ethnicity": "Race and ethnicity recorded on the police arrest that started the case "
                          "(Unknown / Unknown Ethnicity without one).",
        "biological_sex": "Sex recorded on the police arrest that started the case (Unknown "
                          "Biological Sex without one).",
        "cases": "Cases (case numbers, their charges together).",
    },
    ("marts", "jc_jail"): {
        "metric": "Justice Counts metric key: JAILS_TOTAL_ADMISSIONS, JAILS_TOTAL_RELEASES, "
                  "JAILS_READMISSIONS (annual in the upload) or JAILS_TOTAL_POPULATION.",
        "year": "Calendar year of the booking, the release, or the population's count day.",
        "month": "Calendar month (1-12); for the population, the month whose last day is counted.",
        "offense_type": "Offense type of the booking's most serious charge, ranked person > property > "
                        "public order > drug > other > unknown, in the Publisher's labels.",
        "race_ethnicity": "Race recorded by the jail with Unknown Ethnicity (the jail records none).",
        "biological_sex": "Sex recorded by the jail: Male, Female or Unknown Biological Sex.",
        "value": "Bookings, releases or readmissions; for the population, people in custody at the "
                 "end of the month's last day.",
    },
    ("marts", "equity"): {
        "population": "referred (LEAD referrals in the program window) or arrested (arrests in the "
                      "window for the offense types referrals name).",
        "race": "Race as recorded on the first referral or arrest in the window.",
        "ethnicity": "Ethnicity as recorded on the first referral or arrest in the window.",
        "people": "Distinct linked people.",
    },
    ("marts", "life_status_monthly"): {
        "month_since_referral": _MONTH_SINCE_REFERRAL,
        "carried_months": "0 when an assessment reports on this month; 1 or 2 when the status is "
                          "carried forward from that many months before; NULL when no assessment "
                          "is recent enough (statuses NULL).",
        "housing_status": "Housing status of the assessment used (street, shelter, transitional, "
                          "permanent, unknown).",
        "employment_status": "Employment status of the assessment used (unemployed, part_time, "
                             "full_time, unable_to_work, unknown).",
        "income_source": "Income source of the assessment used (none, employment, benefits, both, unknown).",
        "housed": _HOUSED,
        "employed": _EMPLOYED,
        "income_or_benefits": "True when income_source is employment, benefits or both; false when "
                              "none; NULL when unknown or missing.",
        "contacts": "Case-management service contacts in the month.",
        "arrests": "Distinct police arrests in the month.",
    },
    ("marts", "life_outcomes_monthly"): {
        "month_since_referral": _MONTH_SINCE_REFERRAL,
        "participants": "LEAD participants followed in this month (their month ended by the latest "
                        "assessment date in the data).",
        "housing_known": "Participants whose housing status is known in the month.",
        "housed": "Participants housed (transitional or permanent) in the month.",
        "employment_known": "Participants whose employment status is known in the month.",
        "employed": "Participants employed (part or full time) in the month.",
        "income_known": "Participants whose income source is known in the month.",
        "income_or_benefits": "Participants with legitimate income, benefits or both in the month.",
        "contacts": "Case-management service contacts of these participants in the month.",
        "people_contacted": "Participants with at least one case-management contact in the month.",
    },
    ("marts", "life_arrest_periods"): {
        "month_since_referral": _MONTH_SINCE_REFERRAL,
        "housed_recent": "Assessments in the 91 days before each day of the period (not on it) "
                         "that found the person housed (transitional or permanent).",
        "employed_recent": "Assessments in the 91 days before each day of the period (not on it) "
                           "that found the person employed (part or full time).",
        "days": "Days in the period (after the referral day, by the end of month 18 and the latest "
                "assessment and arrest dates in the data).",
        "arrests": "Distinct police arrests on those days.",
    },
    ("ops", "file_ledger"): {
        "file_id": "Receipt time plus a SHA-256 prefix; one per file that ever arrived.",
        "received_at": "When the hub took the file from the drop folder (UTC).",
        "agency": "Agency whose drop folder the file came from.",
        "extract": "Extract the file name matched; NULL when it matched no contract.",
        "file_name": "File name as delivered.",
        "size_bytes": "File size in bytes.",
        "sha256": "SHA-256 of the file as delivered.",
        "row_count": "Data rows read from the file.",
        "status": "received, accepted, duplicate, quarantined, superseded, held (waiting for a "
                  "steward's release: it would remove too many current rows), or expired (past its "
                  "agreement's retention: its rows and original were removed, its counts kept).",
        "batch_id": "Batch the file loaded as (ops.batches).",
        "reason": "Why the file was quarantined, duplicate, superseded or expired (file, row and rule; "
                  "never a cell value).",
        "archive_path": "Where the encrypted original is kept, relative to the data directory.",
        "updated_at": "When this row last changed (UTC).",
        "rule": "The contract or validation rule that quarantined the file, if one did.",
        "rule_detail": "What about the rule failed (rows and counts; never a cell value).",
        "redacted_rows": "Rows a sealing or expungement order removed from the archived original.",
        "sealed_dropped": "Rows of the delivery dropped at intake because an order had sealed them.",
    },
    ("ops", "batches"): {
        "batch_id": "Batch id; every staging row carries it as _batch_id.",
        "contract": "Extract (agency_extract) of the batch.",
        "file_id": "The file in ops.file_ledger.",
        "sha256": "SHA-256 of the file.",
        "received_at": "When the file was received (UTC).",
        "loaded_at": "When the batch committed (UTC).",
        "row_count": "Rows loaded.",
        "key_id": "Id of the pseudonymization key the batch was tokenized with.",
    },
    ("ops", "validation_results"): {
        "batch_id": "Batch validated.",
        "contract": "Extract of the batch.",
        "expectation": "Great Expectations expectation type.",
        "column_name": "Column checked, if any.",
        "severity": "critical (quarantines the file) or warning.",
        "success": "Whether the expectation held.",
        "observed": "Counts and percentages observed; never values.",
        "validated_at": "When the check ran (UTC).",
        "unexpected_count": "Rows (or values) that failed the expectation.",
        "checked_count": "Rows (or values) the expectation checked.",
        "row_numbers": "Data-row numbers in the delivered file of the first failing rows; never values.",
    },
    ("ops", "schema_version"): {
        "version": "Migration number.",
        "applied_at": "When the hub applied it.",
        "description": "What the migration did.",
    },
    ("ops", "data_quality"): {
        "validated_at": "When the check ran (UTC).",
        "validated_on": "Day the check ran.",
        "agency": "Agency of the delivery ('warehouse' for checks run after a build).",
        "contract": "Extract checked, or the core table for build checks.",
        "batch_id": "Batch checked ('build-<time>' for build checks; the file id for a refused header).",
        "file_id": "The file in ops.file_ledger, when the check concerns a delivery.",
        "file_name": "Name of that file.",
        "file_status": "What became of the file: accepted, quarantined, superseded, ...",
        "kind": "batch (the extract's suite), history (against earlier deliveries), build "
                "(cross-extract checks on core tables) or schema (header refused as schema drift).",
        "expectation": "Check performed (Great Expectations type or the hub's own name).",
        "column_name": "Column checked, if any.",
        "severity": "critical (quarantines the file) or warning.",
        "success": "Whether the check held.",
        "observed": "Counts and percentages observed; never values.",
        "unexpected_count": "Rows that broke the check, when it counts rows.",
        "checked_count": "Rows checked, when the check counts rows.",
    },
    ("ops", "linkage_runs"): {
        "linked_at": "When a build first linked people with this model, settings and counts (UTC).",
        "model_version": "Version of the linkage model that scored candidate pairs.",
        "settings_version": "Version of transforms/linkage_settings.json.",
        "agency_ids": "Agency person ids linked (one per agency and person id).",
        "persons": "Distinct person keys the build produced.",
        "merges_refused": "Merges the linkage refused as contradictory (e.g. two different SSNs).",
    },
    ("ops", "agreements"): {
        "reference": "The agreement's reference, as signed.",
        "agency": "The agency whose data it covers.",
        "effective": "First day the agreement is in force.",
        "end_date": "Last day the agreement is in force.",
        "purposes": "What the agency's data may be used for (evaluation, operations, justice_counts).",
        "small_cell_threshold": "Counts from 1 to this number may not be published.",
    },
    ("ops", "snapshot_info"): {
        "published_at": "When this snapshot was published (UTC).",
        "schema_version": "Warehouse schema version it was published from.",
        "source": "Source extract (agency_extract).",
        "period_first_month": "First day of the month of the earliest event in the extract's current "
                              "rows (its event date: arrest, referral, booking, intake, contact ...).",
        "period_last_month": "First day of the month of the latest event in the extract's current rows: "
                             "the data covers up to the end of that month at most.",
        "current_rows": "Rows of the extract in use (current rows) when the snapshot was made.",
        "last_received_at": "When the extract's latest accepted delivery arrived (UTC).",
    },
}

# Columns that mean the same wherever they appear.
GENERIC = {
    "person_key": "Pseudonymous person key from cross-agency linkage; the same person has the "
                  "same key in every table. Not an identifier outside this hub.",
    "age_at_event": "Age in whole years on the event date (computed at intake; the date of "
                    "birth never enters the warehouse).",
    "window_days": "Follow-up window W in days: before = [index - W, index), after = (index, index + W].",
    "offense_type": "Justice Counts offense type of the offense code (person, property, drug, "
                    "public_order, other), from the offense-code reference; NULL for unknown codes.",
    "referral_type": "Referral door: arrest_diversion, social_contact or community.",
    "precinct": "Police precinct.",
}

_MEASURES = {
    "arrests": "distinct police arrests",
    "bookings": "distinct jail bookings",
    "jail_days": "jail days of the bookings",
    "felony_charges": "felony charges referred to the prosecutor",
    "misdemeanor_charges": "misdemeanor charges referred to the prosecutor",
}
_OUTCOME = re.compile(r"^(arrests|bookings|jail_days|felony_charges|misdemeanor_charges)_"
                      r"(before|after)(?:_(sum|mean))?$")
_TABLE_COMMENT = re.compile(r"((?:^--[^\n]*\n)+)CREATE OR REPLACE TABLE (\w+)\.(\w+)", re.MULTILINE)


def sql_table_descriptions(directory: Path = SQL_DIR) -> dict[tuple[str, str], str]:
    """The comment block right above each CREATE OR REPLACE TABLE in the model files."""
    found = {}
    for path in sql_files(directory):
        for block, schema, table in _TABLE_COMMENT.findall(path.read_text(encoding="utf-8")):
            lines = [line[2:].strip() for line in block.strip().splitlines()]
            text = " ".join(line for line in lines if line)
            text = re.sub(rf"^{schema}\.{table}:\s*", "", text)
            found[(schema, table)] = f"{text} (model: transforms/sql/{path.name})"
    return found


def _outcome_column(name: str) -> str | None:
    match = _OUTCOME.match(name)
    if not match:
        return None
    measure, when, agg = match.groups()
    window = "[index - W, index)" if when == "before" else "(index, index + W]"
    what = f"{_MEASURES[measure]} {when} the index date, window {window}"
    if agg == "sum":
        return f"Sum over the cohort of {what}."
    if agg == "mean":
        return f"Mean per person of {what}."
    return f"Number of {what}." if measure != "jail_days" else f"Sum of {what}."


def column_description(schema: str, table: str, column: str) -> str | None:
    """The description of one published column, or None when nobody wrote one."""
    specific = COLUMNS.get((schema, table), {}).get(column)
    if specific:
        return specific
    source = TABLE_SOURCES.get((schema, table))
    if source:
        contract = load_contracts()[source]
        if column in contract.column_names and contract.column(column).description:
            extract = f"{contract.agency} {contract.extract}"
            return f"{contract.column(column).description} (from the {extract} extract)"
    return GENERIC.get(column) or _outcome_column(column)


def describe(tables: dict[tuple[str, str], list[str]]) -> dict[tuple[str, str], dict[str, str]]:
    """{(schema, table): {"": table description, column: description}} for the given tables.

    Missing descriptions are left out (see ``undescribed``).
    """
    from_sql = sql_table_descriptions()
    out = {}
    for (schema, table), columns in tables.items():
        entry = {}
        text = TABLES.get((schema, table)) or from_sql.get((schema, table))
        source = TABLE_SOURCES.get((schema, table))
        if text and source:
            contract = load_contracts()[source]
            text += (f" Source: the {contract.agency} {contract.extract} extract "
                     f"(connectors/contracts/{contract.agency}/{contract.extract}.yaml).")
        if text and (schema, table) in PART2_TABLES:
            text += f" Treatment records: {PART2_NOTICE}"
        if text:
            entry[""] = text
        for column in columns:
            described = column_description(schema, table, column)
            if described:
                entry[column] = described
        out[(schema, table)] = entry
    return out


def undescribed(tables: dict[tuple[str, str], list[str]],
                descriptions: dict[tuple[str, str], dict[str, str]]) -> list[str]:
    """'schema.table' and 'schema.table.column' names that have no description."""
    missing = []
    for (schema, table), columns in tables.items():
        entry = descriptions.get((schema, table), {})
        if not entry.get(""):
            missing.append(f"{schema}.{table}")
        missing += [f"{schema}.{table}.{c}" for c in columns if not entry.get(c)]
    return missing


DISCLOSURE_NOTE = ("Disclosure: what the snapshot shows of a column. Identifiers (names, dates of "
                   "birth, SSNs, agency person ids, addresses, phones) are never published. "
                   "Quasi-identifiers are published as keyed pseudonyms (record numbers and officer "
                   "ids: they join across tables but match neither the agencies' numbers nor the "
                   "warehouse) or to a coarser date (e.g. to the month: the first day of the month "
                   "is shown, and times of day are dropped). Measures such as jail days and the "
                   "before/after windows are computed from exact dates before publishing. "
                   "Plain columns are published as they are.")


def _toc(tables: dict) -> list[tuple[str, list[str]]]:
    """[(schema, ['schema.table', ...])] in the order the dictionary lists them."""
    schemas: dict[str, list[str]] = {}
    for schema, table in sorted(tables):
        schemas.setdefault(schema, []).append(f"{schema}.{table}")
    return list(schemas.items())


def render_markdown(descriptions: dict, tables: dict, disclosures: dict | None = None) -> str:
    """``disclosures``: {(schema, table): {column: label}}; without it no disclosure column."""
    lines = ["# LEAD Hub data dictionary", "",
             "Every table and column of the analysts' snapshot (`published/lead.duckdb`). "
             "Open it read-only: `duckdb -readonly published/lead.duckdb`.", "",
             f"**Notice:** the snapshot holds treatment records. {PART2_NOTICE}", "",
             DISCLOSURE_NOTE, "", "## Contents", ""]
    for schema, names in _toc(tables):
        lines.append(f"- **{schema}**: " + ", ".join(f"[`{n}`](#{n})" for n in names))
    lines.append("")
    for (schema, table), columns in sorted(tables.items()):
        entry = descriptions.get((schema, table), {})
        levels = (disclosures or {}).get((schema, table))
        lines += [f'<a id="{schema}.{table}"></a>', "", f"## `{schema}.{table}`", "",
                  entry.get("", UNDESCRIBED), ""]
        if disclosures is not None:
            lines += ["| column | disclosure | description |", "| --- | --- | --- |"]
            lines += [f"| `{c}` | {(levels or {}).get(c, '').replace('|', '/')} | "
                      f"{entry.get(c, UNDESCRIBED).replace('|', '/')} |" for c in columns]
        else:
            lines += ["| column | description |", "| --- | --- |"]
            lines += [f"| `{c}` | {entry.get(c, UNDESCRIBED).replace('|', '/')} |" for c in columns]
        lines += ["", "[Contents](#contents)", ""]
    return "\n".join(lines)


def render_html(descriptions: dict, tables: dict, disclosures: dict | None = None) -> str:
    """The dictionary as one self-contained page (transforms/templates/dictionary.html.j2)."""
    rows = []
    for (schema, table), columns in sorted(tables.items()):
        entry = descriptions.get((schema, table), {})
        levels = (disclosures or {}).get((schema, table)) or {}
        rows.append({"schema": schema, "table": table, "description": entry.get("", UNDESCRIBED),
                     "columns": [{"name": c, "disclosure": levels.get(c, ""),
                                  "description": entry.get(c, UNDESCRIBED)} for c in columns]})
    return render("dictionary.html.j2", toc=_toc(tables), tables=rows,
                  with_disclosure=disclosures is not None, disclosure_note=DISCLOSURE_NOTE)


def write_dictionary(directory: Path, descriptions: dict, tables: dict,
                     disclosures: dict | None = None) -> dict[str, Path]:
    """Write data_dictionary.md/.html and the Part 2 notice into ``directory`` (atomically each).

    ``disclosures`` ({(schema, table): {column: label}}) adds each column's disclosure level.
    """
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    written = {}
    for key, name, text in (("md", "data_dictionary.md", render_markdown(descriptions, tables, disclosures)),
                            ("html", "data_dictionary.html", render_html(descriptions, tables, disclosures)),
                            ("notice", "PART2_NOTICE.txt", PART2_NOTICE + "\n")):
        target = directory / name
        # Published beside the snapshot for analysts: the umask decides the mode.
        with atomic_write(target, text=True, mode=None, tmp=directory / f".{name}.tmp") as f:
            f.write(text)
        written[key] = target
    return written
