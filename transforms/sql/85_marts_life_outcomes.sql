-- Housing, employment and income of LEAD participants, month by month around
-- referral, as the case managers' assessments record them (42 CFR Part 2:
-- every output made from these marts carries the re-disclosure notice).
--
-- Month m since referral is [index + m months, index + m + 1 months), index
-- being the first referral date (marts.cohort), for m = -1 (the month before
-- referral) to 18. A month is in follow-up when it ends on or before the latest
-- assessment date in the data; later months have no row.
--
-- An assessment reports on the month before its date ("past month"), so it is
-- placed in the month since referral that holds the day before it: an intake
-- assessment on the referral day reports month -1. A month takes the latest
-- assessment placed in it; a month without one carries the latest assessment of
-- the 2 months before it forward (carried_months 1 or 2), and is missing
-- (statuses NULL) beyond that. Why 2: case managers reassess about monthly, so
-- a gap of a month or two is a missed visit, not a change; carrying a status
-- further would credit or blame months nobody saw, and missing months are left
-- to the models (which assume them missing at random).

-- marts.life_status_monthly: one row per LEAD participant and month since
-- referral in follow-up (-1 to 18): the carried assessment, whether the person
-- was housed (transitional or permanent), employed (part or full time) and had
-- income or benefits (NULL when unknown or missing), case-management contacts and
-- arrests in the month.
-- Person-level: the report publishes only aggregates and model estimates.
CREATE OR REPLACE TABLE marts.life_status_monthly AS
WITH params AS (
    SELECT 2 AS carry_months,
           (SELECT max(assessment_date) FROM core.assessment) AS assessed_until
),
months AS (
    -- from the months an assessment could be carried from into month -1, to month 18
    SELECT c.person_key, c.index_date, m.month_since_referral,
           (c.index_date + to_months(m.month_since_referral))::DATE AS month_start,
           (c.index_date + to_months(m.month_since_referral + 1))::DATE AS month_end
    FROM marts.cohort c
    CROSS JOIN (SELECT unnest(range(-1 - carry_months, 19)) AS month_since_referral FROM params) m
    WHERE c.cohort = 'lead'
),
followed AS (
    SELECT mo.* FROM months mo CROSS JOIN params p
    WHERE mo.month_since_referral >= -1 AND mo.month_end - 1 <= p.assessed_until
),
placed AS (
    -- each assessment in the month since referral that holds the day before it
    SELECT f.person_key, f.month_since_referral, a.assessment_id, a.assessment_date,
           a.housing_status, a.employment_status, a.income_source
    FROM core.assessment a
    JOIN months f ON f.person_key = a.person_key
                 AND a.assessment_date - 1 >= f.month_start
                 AND a.assessment_date - 1 < f.month_end
),
carried AS (
    SELECT f.person_key, f.month_since_referral,
           f.month_since_referral - p.month_since_referral AS carried_months,
           p.housing_status, p.employment_status, p.income_source
    FROM followed f
    CROSS JOIN params s
    JOIN placed p ON p.person_key = f.person_key
                 AND p.month_since_referral BETWEEN f.month_since_referral - s.carry_months
                                               AND f.month_since_referral
    QUALIFY row_number() OVER (PARTITION BY f.person_key, f.month_since_referral
                               ORDER BY p.month_since_referral DESC, p.assessment_date DESC,
                                        p.assessment_id DESC) = 1
),
contacts AS (
    SELECT f.person_key, f.month_since_referral, count(*) AS contacts
    FROM followed f
    JOIN core.service_contact s ON s.person_key = f.person_key
                               AND s.service_type = 'case_management'
                               AND s.contact_date >= f.month_start AND s.contact_date < f.month_end
    GROUP BY ALL
),
arrests AS (
    SELECT f.person_key, f.month_since_referral, count(DISTINCT a.arrest_id) AS arrests
    FROM followed f
    JOIN core.arrest a ON a.person_key = f.person_key
                      AND a.arrest_date >= f.month_start AND a.arrest_date < f.month_end
    GROUP BY ALL
)
SELECT f.person_key,
       f.month_since_referral,
       c.carried_months,
       c.housing_status,
       c.employment_status,
       c.income_source,
       CASE WHEN c.housing_status IN ('transitional', 'permanent') THEN true
            WHEN c.housing_status IN ('street', 'shelter') THEN false END AS housed,
       CASE WHEN c.employment_status IN ('part_time', 'full_time') THEN true
            WHEN c.employment_status IN ('unemployed', 'unable_to_work') THEN false END AS employed,
       CASE WHEN c.income_source IN ('employment', 'benefits', 'both') THEN true
            WHEN c.income_source = 'none' THEN false END AS income_or_benefits,
       coalesce(k.contacts, 0)::BIGINT AS contacts,
       coalesce(a.arrests, 0)::BIGINT AS arrests
FROM followed f
LEFT JOIN carried c USING (person_key, month_since_referral)
LEFT JOIN contacts k USING (person_key, month_since_referral)
LEFT JOIN arrests a USING (person_key, month_since_referral)
ORDER BY f.person_key, f.month_since_referral;

-- marts.life_outcomes_monthly: per month since referral (-1 to 18), LEAD
-- participants in follow-up, how many had a known housing, employment and
-- income status and how many were housed, employed and had income or benefits,
-- and their case-management contacts. Shares are yes / known.
CREATE OR REPLACE TABLE marts.life_outcomes_monthly AS
SELECT month_since_referral,
       count(*) AS participants,
       count(housed) AS housing_known,
       count(*) FILTER (WHERE housed) AS housed,
       count(employed) AS employment_known,
       count(*) FILTER (WHERE employed) AS employed,
       count(income_or_benefits) AS income_known,
       count(*) FILTER (WHERE income_or_benefits) AS income_or_benefits,
       sum(contacts)::BIGINT AS contacts,
       count(*) FILTER (WHERE contacts > 0) AS people_contacted
FROM marts.life_status_monthly
GROUP BY month_since_referral
ORDER BY month_since_referral;

-- marts.life_arrest_periods: the days of each LEAD participant with an
-- assessment, from the day after referral to the end of month 18 (or the latest
-- assessment or arrest date in the data, whichever is earlier), grouped into
-- periods of one month since referral (as above) with the same recent statuses:
-- how many of the person's assessments in the 91 days before the day (not on it)
-- found them housed, and how many employed. The report's arrest model compares
-- each participant's arrest rate in days after assessments that found them housed
-- (or employed) with their own rate in other days. Assessments entered twice for
-- one person and day count once.
CREATE OR REPLACE TABLE marts.life_arrest_periods AS
WITH params AS (
    SELECT 91 AS recent_days,
           least((SELECT max(assessment_date) FROM core.assessment),
                 (SELECT max(arrest_date) FROM core.arrest)) AS data_until
),
participants AS (
    SELECT c.person_key, c.index_date,
           least((c.index_date + to_months(19))::DATE - 1, p.data_until) AS last_day
    FROM marts.cohort c
    CROSS JOIN params p
    WHERE c.cohort = 'lead'
      AND c.person_key IN (SELECT person_key FROM core.assessment)
),
assessed AS (
    SELECT a.person_key, a.assessment_date,
           bool_or(a.housing_status IN ('transitional', 'permanent')) AS housed,
           bool_or(a.employment_status IN ('part_time', 'full_time')) AS employed
    FROM core.assessment a
    JOIN participants USING (person_key)
    GROUP BY ALL
),
days AS (
    SELECT p.person_key, p.index_date, p.index_date + d.offset::INTEGER AS day
    FROM participants p
    CROSS JOIN LATERAL (SELECT unnest(range(1, p.last_day - p.index_date + 1)) AS offset) d
),
recent AS (
    -- the person's assessments in the recent_days days before each day (not on it)
    SELECT d.person_key, d.index_date, d.day,
           count(*) FILTER (WHERE a.housed) AS housed_recent,
           count(*) FILTER (WHERE a.employed) AS employed_recent
    FROM days d
    CROSS JOIN params p
    LEFT JOIN assessed a ON a.person_key = d.person_key
                        AND a.assessment_date < d.day
                        AND a.assessment_date >= d.day - p.recent_days
    GROUP BY ALL
),
arrest_days AS (
    SELECT person_key, arrest_date AS day, count(DISTINCT arrest_id) AS arrests
    FROM core.arrest
    WHERE person_key IN (SELECT person_key FROM participants)
    GROUP BY ALL
)
SELECT r.person_key,
       (SELECT max(m) FROM range(0, 19) t(m)
        WHERE (r.index_date + to_months(m))::DATE <= r.day) AS month_since_referral,
       r.housed_recent::BIGINT AS housed_recent,
       r.employed_recent::BIGINT AS employed_recent,
       count(*) AS days,
       coalesce(sum(a.arrests), 0)::BIGINT AS arrests
FROM recent r
LEFT JOIN arrest_days a ON a.person_key = r.person_key AND a.day = r.day
GROUP BY ALL
ORDER BY r.person_key, month_since_referral, housed_recent, employed_recent;
