-- marts.outcomes: one row per cohort member and follow-up window W (days, from
-- evaluation.yaml). "Before" is [index - W, index), "after" is (index, index + W];
-- events on the index day itself count in neither.
--   arrests:   distinct police arrests by arrest_date
--   bookings:  distinct jail bookings by booking_date; jail_days is the sum of
--              core.booking.jail_days over those bookings
--   felony/misdemeanor charges: prosecutor case charges by referral_date,
--              whatever the charging decision
-- followup_complete says whether index + W falls on or before the latest
-- arrest date in the data, i.e. the whole after-window was observable.
CREATE OR REPLACE TABLE marts.outcomes AS
WITH windows AS (
    SELECT unnest(windows_days) AS window_days FROM core.evaluation_settings
),
base AS (
    SELECT c.person_key, c.cohort, c.index_date, w.window_days,
           c.index_date - w.window_days AS before_start,
           c.index_date + w.window_days AS after_end
    FROM marts.cohort c
    CROSS JOIN windows w
),
arrests AS (
    SELECT b.person_key, b.window_days,
           count(DISTINCT a.arrest_id) FILTER (
               WHERE a.arrest_date >= b.before_start AND a.arrest_date < b.index_date) AS arrests_before,
           count(DISTINCT a.arrest_id) FILTER (
               WHERE a.arrest_date > b.index_date AND a.arrest_date <= b.after_end) AS arrests_after
    FROM base b
    JOIN core.arrest a ON a.person_key = b.person_key
    GROUP BY b.person_key, b.window_days
),
bookings AS (
    SELECT b.person_key, b.window_days,
           count(DISTINCT k.booking_id) FILTER (
               WHERE k.booking_date >= b.before_start AND k.booking_date < b.index_date) AS bookings_before,
           count(DISTINCT k.booking_id) FILTER (
               WHERE k.booking_date > b.index_date AND k.booking_date <= b.after_end) AS bookings_after,
           sum(k.jail_days) FILTER (
               WHERE k.booking_date >= b.before_start AND k.booking_date < b.index_date) AS jail_days_before,
           sum(k.jail_days) FILTER (
               WHERE k.booking_date > b.index_date AND k.booking_date <= b.after_end) AS jail_days_after
    FROM base b
    JOIN core.booking k ON k.person_key = b.person_key
    GROUP BY b.person_key, b.window_days
),
charges AS (
    SELECT b.person_key, b.window_days,
           count(*) FILTER (WHERE x.severity = 'felony' AND x.referral_date >= b.before_start
                              AND x.referral_date < b.index_date) AS felony_charges_before,
           count(*) FILTER (WHERE x.severity = 'felony' AND x.referral_date > b.index_date
                              AND x.referral_date <= b.after_end) AS felony_charges_after,
           count(*) FILTER (WHERE x.severity = 'misdemeanor' AND x.referral_date >= b.before_start
                              AND x.referral_date < b.index_date) AS misdemeanor_charges_before,
           count(*) FILTER (WHERE x.severity = 'misdemeanor' AND x.referral_date > b.index_date
                              AND x.referral_date <= b.after_end) AS misdemeanor_charges_after
    FROM base b
    JOIN core.case_charge x ON x.person_key = b.person_key
    GROUP BY b.person_key, b.window_days
),
data_end AS (
    SELECT max(arrest_date) AS end_date FROM core.arrest
)
SELECT b.person_key,
       b.cohort,
       b.index_date,
       b.window_days,
       coalesce(a.arrests_before, 0)::BIGINT AS arrests_before,
       coalesce(a.arrests_after, 0)::BIGINT AS arrests_after,
       coalesce(k.bookings_before, 0)::BIGINT AS bookings_before,
       coalesce(k.bookings_after, 0)::BIGINT AS bookings_after,
       coalesce(k.jail_days_before, 0)::BIGINT AS jail_days_before,
       coalesce(k.jail_days_after, 0)::BIGINT AS jail_days_after,
       coalesce(x.felony_charges_before, 0)::BIGINT AS felony_charges_before,
       coalesce(x.felony_charges_after, 0)::BIGINT AS felony_charges_after,
       coalesce(x.misdemeanor_charges_before, 0)::BIGINT AS misdemeanor_charges_before,
       coalesce(x.misdemeanor_charges_after, 0)::BIGINT AS misdemeanor_charges_after,
       coalesce(a.arrests_after, 0) > 0 AS any_rearrest_after,
       coalesce(b.after_end <= d.end_date, false) AS followup_complete
FROM base b
CROSS JOIN data_end d
LEFT JOIN arrests a ON a.person_key = b.person_key AND a.window_days = b.window_days
LEFT JOIN bookings k ON k.person_key = b.person_key AND k.window_days = b.window_days
LEFT JOIN charges x ON x.person_key = b.person_key AND x.window_days = b.window_days
ORDER BY b.person_key, b.window_days;
