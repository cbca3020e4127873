-- Justice Counts (https://justicecounts.csgjusticecenter.org/): the metrics the extracts
-- support, counted by the published definitions (Recidiviz pulse-data,
-- recidiviz/justice_counts/metrics/) and labelled with the Publisher's own category
-- names (dimensions/), so that transforms/justice_counts.py only reshapes them into
-- bulk-upload files. Every mart carries year and month; metrics the definitions make
-- annual (jail readmissions) are summed over the year by the export.
--
-- Offense type of an event with several charges: the type of the most serious
-- charge by the published ranking person > property > public order > drug >
-- other > unknown (a county code missing from the reference table is unknown).
CREATE OR REPLACE TEMP MACRO jc_offense_rank(t) AS
    CASE WHEN t IS NULL THEN 6 WHEN t = 'person' THEN 1 WHEN t = 'property' THEN 2
         WHEN t = 'public_order' THEN 3 WHEN t = 'drug' THEN 4 ELSE 5 END;
CREATE OR REPLACE TEMP MACRO jc_offense_label(r) AS
    ['Person Offenses', 'Property Offenses', 'Public Order Offenses', 'Drug Offenses',
     'Other Offenses', 'Unknown Offenses'][r];
-- Race and ethnicity in the combined categories ("Black / Not Hispanic or Latino"). No
-- extract records more than one race; the jail records no ethnicity (Unknown Ethnicity).
CREATE OR REPLACE TEMP MACRO jc_race_ethnicity(race, ethnicity) AS
    CASE race WHEN 'NATIVE' THEN 'American Indian or Alaska Native' WHEN 'ASIAN' THEN 'Asian'
              WHEN 'BLACK' THEN 'Black' WHEN 'PACIFIC' THEN 'Native Hawaiian or Pacific Islander'
              WHEN 'WHITE' THEN 'White' WHEN 'OTHER' THEN 'Other' ELSE 'Unknown' END
    || ' / ' ||
    CASE ethnicity WHEN 'HISPANIC' THEN 'Hispanic or Latino'
                   WHEN 'NON_HISPANIC' THEN 'Not Hispanic or Latino' ELSE 'Unknown Ethnicity' END;
-- Biological sex: M and F as recorded; X and blanks are unknown.
CREATE OR REPLACE TEMP MACRO jc_biological_sex(sex) AS
    CASE sex WHEN 'M' THEN 'Male Biological Sex' WHEN 'F' THEN 'Female Biological Sex'
             ELSE 'Unknown Biological Sex' END;

-- marts.jc_arrests: Justice Counts metric LAW_ENFORCEMENT_ARRESTS (monthly). One row per
-- calendar month of the arrest date and combination of offense type (most serious charge
-- by the published ranking), race/ethnicity and biological sex as recorded on the
-- arrest; every arrest event counts once, linked to a person or not. Not supported by
-- the extracts: citations and summonses (only custodial arrests are sent) and whether
-- the offense was committed inside the agency's jurisdiction (no location is sent).
CREATE OR REPLACE TABLE marts.jc_arrests AS
WITH ranked AS (
    SELECT arrest_id, min(jc_offense_rank(offense_type)) AS offense_rank
    FROM core.arrest_charge
    GROUP BY arrest_id
)
SELECT 'LAW_ENFORCEMENT_ARRESTS' AS metric,
       year(a.arrest_date) AS year,
       month(a.arrest_date) AS month,
       jc_offense_label(r.offense_rank) AS offense_type,
       jc_race_ethnicity(a.race, a.ethnicity) AS race_ethnicity,
       jc_biological_sex(a.sex) AS biological_sex,
       count(*) AS arrests
FROM core.arrest a
JOIN ranked r ON r.arrest_id = a.arrest_id
GROUP BY ALL
ORDER BY ALL;

-- marts.jc_cases: Justice Counts prosecution metrics (all monthly), one row per metric,
-- calendar month of its event and breakdown. A case (case_id; its charges together) is
-- counted by each definition it meets, each dated by its own event:
--   PROSECUTION_CASES REFERRED: every case, by referral date;
--   PROSECUTION_CASES_DECLINED: every charge declined, by the last decision date;
--   PROSECUTION_CASES_DIVERTED: any charge diverted (before or after filing), by the
--     first diversion decision date;
--   PROSECUTION_CASES_PROSECUTED: any charge filed, by the first filing decision date;
--   PROSECUTION_CASES_DISPOSED: no charge awaiting a decision and every filed charge
--     convicted, dismissed or acquitted, by the last disposition date (a case with any
--     charge acquitted went to trial: "Cases Resolved at Trial", whatever its other charges;
--     otherwise by plea or at trial is not recorded, so a conviction is "Unknown
--     Disposition"; all dismissed is "Cases Disposed by Dismissal"); a case
--     diverted and never filed is disposed by diversion ("Other Disposition"), which the
--     published definition includes, on its diversion date.
-- A case whose event has no date is kept with year and month NULL (the export names them).
-- case_severity is the case's most serious charge level in the metric's own labels.
-- Race/ethnicity and sex are those recorded on the police arrest that started the case
-- (the prosecutor sends none); cases without one are unknown. Not supported by the
-- extracts: whether a conviction came by plea or at trial, and open caseloads per attorney.
CREATE OR REPLACE TABLE marts.jc_cases AS
WITH cases AS (
    SELECT case_id,
           min(arrest_id) AS arrest_id,
           min(referral_date) AS referral_date,
           CASE WHEN bool_or(severity = 'felony') THEN 'Felony'
                WHEN bool_or(severity = 'misdemeanor') THEN 'Misdemeanor'
                ELSE 'Unknown' END AS severity,
           bool_and(decision = 'declined') AS declined,
           max(decision_date) AS last_decision_date,
           bool_or(decision = 'diverted') AS diverted,
           min(decision_date) FILTER (WHERE decision = 'diverted') AS diverted_date,
           bool_or(decision = 'filed') AS prosecuted,
           min(decision_date) FILTER (WHERE decision = 'filed') AS prosecuted_date,
           bool_or(decision = 'pending') AS awaiting_decision,
           coalesce(bool_and(disposition IN ('convicted', 'dismissed', 'acquitted'))
                    FILTER (WHERE decision = 'filed'), false) AS filed_all_disposed,
           max(disposition_date) FILTER (WHERE decision = 'filed') AS disposed_date,
           coalesce(bool_or(disposition = 'convicted') FILTER (WHERE decision = 'filed'), false) AS convicted,
           coalesce(bool_or(disposition = 'acquitted') FILTER (WHERE decision = 'filed'), false) AS acquitted
    FROM core.case_charge
    GROUP BY case_id
),
described AS (
    SELECT c.*,
           jc_race_ethnicity(a.race, a.ethnicity) AS race_ethnicity,
           jc_biological_sex(a.sex) AS biological_sex
    FROM cases c
    LEFT JOIN core.arrest a ON a.arrest_id = c.arrest_id
),
events AS (
    SELECT 'PROSECUTION_CASES REFERRED' AS metric, referral_date AS event_date,
           severity || ' Cases Referred' AS case_severity, NULL AS disposition_type,
           race_ethnicity, biological_sex
    FROM described
    UNION ALL
    SELECT 'PROSECUTION_CASES_DECLINED', last_decision_date, severity || ' Cases Declined', NULL,
           race_ethnicity, biological_sex
    FROM described WHERE declined
    UNION ALL
    SELECT 'PROSECUTION_CASES_DIVERTED', diverted_date, severity || ' Cases Diverted/Deferred', NULL,
           race_ethnicity, biological_sex
    FROM described WHERE diverted
    UNION ALL
    SELECT 'PROSECUTION_CASES_PROSECUTED', prosecuted_date, severity || ' Cases Prosecuted', NULL,
           race_ethnicity, biological_sex
    FROM described WHERE prosecuted
    UNION ALL
    SELECT 'PROSECUTION_CASES_DISPOSED',
           CASE WHEN prosecuted THEN disposed_date ELSE diverted_date END,
           NULL,
           CASE WHEN NOT prosecuted THEN 'Other Disposition'
                WHEN acquitted THEN 'Cases Resolved at Trial'
                WHEN convicted THEN 'Unknown Disposition'
                ELSE 'Cases Disposed by Dismissal' END,
           race_ethnicity, biological_sex
    FROM described
    WHERE NOT awaiting_decision AND ((prosecuted AND filed_all_disposed) OR (diverted AND NOT prosecuted))
)
SELECT metric,
       year(event_date) AS year,
       month(event_date) AS month,
       case_severity,
       disposition_type,
       race_ethnicity,
       biological_sex,
       count(*) AS cases
FROM events
GROUP BY ALL
ORDER BY ALL;

-- marts.jc_jail: Justice Counts jail metrics, one row per metric, calendar month and
-- breakdown of the booking (offense type of its most serious charge by the published
-- ranking; race/ethnicity and biological sex as recorded by the jail, which records no
-- ethnicity). value counts events, except for the population, which counts people:
--   JAILS_TOTAL_ADMISSIONS (monthly): bookings, by booking date;
--   JAILS_TOTAL_RELEASES (monthly): releases, by release date;
--   JAILS_READMISSIONS (annual; the export sums the months): bookings of a person who
--     was incarcerated at any time in the 365 days before the booking date (an earlier
--     booking released on or after that date, or never released); bookings that could
--     not be linked to a person are never readmissions. A booking in the extract's first
--     365 days has no full year behind it, so the first year may count too few;
--   JAILS_TOTAL_POPULATION (monthly): a single-day count of the people in custody at the
--     end of the last day of the month (booked before midnight and not released by
--     then; a person with two open bookings counts once, under the later one), for the
--     months whose last day the extract has seen to its end. People booked before the
--     extract's first booking are not seen, so the first months may count too few.
-- Not supported by the extracts: pre- and post-adjudication splits (no legal status is
-- sent) and release types.
CREATE OR REPLACE TABLE marts.jc_jail AS
WITH bookings AS (
    SELECT b.booking_id, b.person_key, b.booking_ts, b.release_ts, b.booking_date,
           jc_offense_label(r.offense_rank) AS offense_type,
           jc_race_ethnicity(b.race, NULL) AS race_ethnicity,
           jc_biological_sex(b.sex) AS biological_sex
    FROM core.booking b
    JOIN (SELECT booking_id, min(jc_offense_rank(offense_type)) AS offense_rank
          FROM core.booking_charge GROUP BY booking_id) r ON r.booking_id = b.booking_id
),
readmissions AS (
    SELECT b.*
    FROM bookings b
    WHERE b.person_key IS NOT NULL
      AND EXISTS (SELECT 1 FROM bookings p
                  WHERE p.person_key = b.person_key
                    AND (p.booking_ts, p.booking_id) < (b.booking_ts, b.booking_id)
                    AND (p.release_ts IS NULL OR p.release_ts::DATE >= b.booking_date - INTERVAL 365 DAY))
),
extent AS (
    SELECT min(booking_ts)::DATE AS first_day, max(greatest(booking_ts, release_ts)) AS data_end
    FROM bookings
),
count_days AS (
    -- The last day of every month from the first booking's month on, seen to its end.
    SELECT CAST(m + INTERVAL 1 MONTH - INTERVAL 1 DAY AS DATE) AS count_day
    FROM extent, range(date_trunc('month', first_day), data_end, INTERVAL 1 MONTH) t(m)
    WHERE m + INTERVAL 1 MONTH <= data_end
),
in_custody AS (
    SELECT d.count_day, b.*
    FROM count_days d
    JOIN bookings b ON b.booking_ts < d.count_day + INTERVAL 1 DAY
                   AND (b.release_ts IS NULL OR b.release_ts >= d.count_day + INTERVAL 1 DAY)
    QUALIFY row_number() OVER (PARTITION BY d.count_day, coalesce(b.person_key, 'booking:' || b.booking_id)
                               ORDER BY b.booking_ts DESC, b.booking_id DESC) = 1
),
events AS (
    SELECT 'JAILS_TOTAL_ADMISSIONS' AS metric, booking_date AS event_date,
           offense_type, race_ethnicity, biological_sex
    FROM bookings
    UNION ALL
    SELECT 'JAILS_TOTAL_RELEASES', release_ts::DATE, offense_type, race_ethnicity, biological_sex
    FROM bookings WHERE release_ts IS NOT NULL
    UNION ALL
    SELECT 'JAILS_READMISSIONS', booking_date, offense_type, race_ethnicity, biological_sex
    FROM readmissions
    UNION ALL
    SELECT 'JAILS_TOTAL_POPULATION', count_day, offense_type, race_ethnicity, biological_sex
    FROM in_custody
)
SELECT metric,
       year(event_date) AS year,
       month(event_date) AS month,
       offense_type,
       race_ethnicity,
       biological_sex,
       count(*) AS value
FROM events
GROUP BY ALL
ORDER BY ALL;
