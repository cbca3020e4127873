-- Program engagement marts. Every one of them draws on treatment records, so
-- every output made from them carries the 42 CFR Part 2 re-disclosure notice.

-- marts.first_contact: one row per LEAD participant (marts.cohort, cohort = 'lead'):
-- the first case-management contact on or after the index date (first referral).
-- Contacts of clients without an active consent carry no person_key, so a
-- participant who has not consented shows no contact (first_contact_date NULL).
-- Person-level: it stays in the warehouse and the analysts' snapshot; the
-- report publishes only aggregates of it.
CREATE OR REPLACE TABLE marts.first_contact AS
SELECT c.person_key,
       c.index_date,
       min(s.contact_date) AS first_contact_date,
       date_diff('day', c.index_date, min(s.contact_date)) AS days_to_first_contact
FROM marts.cohort c
LEFT JOIN core.service_contact s
       ON s.person_key = c.person_key
      AND s.service_type = 'case_management'
      AND s.contact_date >= c.index_date
WHERE c.cohort = 'lead'
GROUP BY c.person_key, c.index_date
ORDER BY c.person_key;

-- marts.caseload_monthly: case-management episodes open at any time during each
-- calendar month, by referral source. An episode is open from intake_date to
-- exit_date (both included; no exit date = still open). Counts episodes, with
-- or without consent to link (no person is identified); months run from the
-- first intake to the latest intake, exit or contact in the data.
CREATE OR REPLACE TABLE marts.caseload_monthly AS
WITH bounds AS (
    SELECT date_trunc('month', min(intake_date))::DATE AS first_month,
           date_trunc('month', greatest(max(intake_date), max(exit_date),
                                        (SELECT max(contact_date) FROM core.service_contact)))::DATE AS last_month
    FROM core.treatment_episode
),
months AS (
    SELECT unnest(generate_series(first_month, last_month, INTERVAL 1 MONTH))::DATE AS month
    FROM bounds WHERE first_month IS NOT NULL
)
SELECT m.month,
       e.referral_source,
       count(*) AS active_episodes
FROM months m
JOIN core.treatment_episode e
  ON e.intake_date <= last_day(m.month)
 AND (e.exit_date IS NULL OR e.exit_date >= m.month)
GROUP BY ALL
ORDER BY month, referral_source;

-- marts.services_monthly: service contacts per calendar month and service type
-- (all contacts, consented or not), and the number of distinct consented
-- clients they reached (people_linked; unconsented contacts cannot be told apart).
CREATE OR REPLACE TABLE marts.services_monthly AS
SELECT date_trunc('month', contact_date)::DATE AS month,
       service_type,
       count(*) AS contacts,
       count(DISTINCT person_key) AS people_linked
FROM core.service_contact
GROUP BY ALL
ORDER BY month, service_type;
