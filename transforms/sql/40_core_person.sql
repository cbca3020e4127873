-- core.person: one row per linked person seen in any core table.
-- first_seen is the earliest event date across agencies; sex, race and
-- ethnicity are the modal value over police and jail records (referrals,
-- arrests, bookings), preferring a recorded value over UNKNOWN, then the most
-- frequent, then the most recently recorded, then alphabetical, so a rebuild
-- always picks the same value.
CREATE OR REPLACE TABLE core.person AS
WITH events AS (
    SELECT person_key, 'police' AS agency, referral_date AS event_date FROM core.referral
    UNION ALL SELECT person_key, 'police', arrest_date FROM core.arrest
    UNION ALL SELECT person_key, 'jail', booking_date FROM core.booking
    UNION ALL SELECT person_key, 'prosecutor', referral_date FROM core.case_charge
    UNION ALL SELECT person_key, 'treatment', intake_date FROM core.treatment_episode
    UNION ALL SELECT person_key, 'treatment', contact_date FROM core.service_contact
    UNION ALL SELECT person_key, 'treatment', NULL FROM core.consent
),
seen AS (
    SELECT person_key,
           min(event_date) AS first_seen,
           list_sort(list(DISTINCT agency)) AS agencies,
           count(DISTINCT agency) AS agency_count
    FROM events
    WHERE person_key IS NOT NULL
    GROUP BY person_key
),
demographics AS (
    SELECT person_key, referral_date AS event_date, sex, race, ethnicity FROM core.referral
    UNION ALL SELECT person_key, arrest_date, sex, race, ethnicity FROM core.arrest
    UNION ALL SELECT person_key, booking_date, sex, race, NULL FROM core.booking
),
attributes AS (
    SELECT person_key, event_date, 'sex' AS attribute, sex AS value FROM demographics
    UNION ALL SELECT person_key, event_date, 'race', race FROM demographics
    UNION ALL SELECT person_key, event_date, 'ethnicity', ethnicity FROM demographics
),
modal AS (
    SELECT person_key, attribute, value
    FROM (
        SELECT person_key, attribute, value, count(*) AS n, max(event_date) AS last_date
        FROM attributes
        WHERE person_key IS NOT NULL AND value IS NOT NULL
        GROUP BY person_key, attribute, value
    )
    QUALIFY row_number() OVER (PARTITION BY person_key, attribute
                               ORDER BY value = 'UNKNOWN', n DESC, last_date DESC, value) = 1
)
SELECT s.person_key,
       s.first_seen,
       s.agencies,
       s.agency_count,
       max(m.value) FILTER (WHERE m.attribute = 'sex') AS sex,
       max(m.value) FILTER (WHERE m.attribute = 'race') AS race,
       max(m.value) FILTER (WHERE m.attribute = 'ethnicity') AS ethnicity
FROM seen s
LEFT JOIN modal m ON m.person_key = s.person_key
GROUP BY s.person_key, s.first_seen, s.agencies, s.agency_count
ORDER BY s.person_key;
