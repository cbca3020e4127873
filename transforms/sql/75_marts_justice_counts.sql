-- Justice Counts-aligned annual counts (https://justicecounts.csgjusticecenter.org/).
-- Offense types follow the reference table: person, property, drug,
-- public_order, other; an arrest takes the type of its most serious charge.

-- marts.jc_arrests: police arrests per calendar year by offense type, race and sex
-- (as recorded on the arrest), linked to a person or not.
CREATE OR REPLACE TABLE marts.jc_arrests AS
SELECT year(arrest_date) AS year,
       coalesce(offense_type, 'other') AS offense_type,
       coalesce(race, 'UNKNOWN') AS race,
       coalesce(sex, 'UNKNOWN') AS sex,
       count(*) AS arrests
FROM core.arrest
GROUP BY ALL
ORDER BY ALL;

-- marts.jc_cases: cases referred to the prosecutor per calendar year of
-- referral, by the case's charging outcome: 'prosecuted' when any charge was
-- filed, else 'diverted' when any charge was diverted, else 'declined' when
-- every charge was declined, else 'pending'. Every case counts as referred.
CREATE OR REPLACE TABLE marts.jc_cases AS
WITH cases AS (
    SELECT case_id,
           min(referral_date) AS referral_date,
           CASE WHEN bool_or(decision = 'filed') THEN 'prosecuted'
                WHEN bool_or(decision = 'diverted') THEN 'diverted'
                WHEN bool_and(decision = 'declined') THEN 'declined'
                ELSE 'pending' END AS outcome
    FROM core.case_charge
    GROUP BY case_id
)
SELECT year(referral_date) AS year, outcome, count(*) AS cases
FROM cases
GROUP BY ALL
ORDER BY ALL;

-- marts.jc_jail: jail admissions (bookings by booking date), releases (by
-- release date) and readmissions per calendar year. A readmission is a booking
-- of a linked person within 365 days after the release from their previous
-- booking (bookings without a person_key cannot be readmissions).
CREATE OR REPLACE TABLE marts.jc_jail AS
WITH ordered AS (
    SELECT booking_id, person_key, booking_date, release_ts::DATE AS release_date,
           lag(release_ts::DATE) OVER (PARTITION BY person_key ORDER BY booking_ts, booking_id)
               AS previous_release
    FROM core.booking
),
events AS (
    SELECT year(booking_date) AS year, 'admissions' AS measure, booking_id FROM ordered
    UNION ALL
    SELECT year(release_date), 'releases', booking_id FROM ordered WHERE release_date IS NOT NULL
    UNION ALL
    SELECT year(booking_date), 'readmissions_365', booking_id FROM ordered
    WHERE person_key IS NOT NULL AND previous_release IS NOT NULL
      AND booking_date >= previous_release AND booking_date <= previous_release + 365
)
SELECT year,
       count(*) FILTER (WHERE measure = 'admissions') AS admissions,
       count(*) FILTER (WHERE measure = 'releases') AS releases,
       count(*) FILTER (WHERE measure = 'readmissions_365') AS readmissions_365
FROM events
GROUP BY year
ORDER BY year;
