-- marts.referrals_monthly: LEAD referrals per calendar month, type and precinct.
-- Counts every referral, linked to a person or not.
CREATE OR REPLACE TABLE marts.referrals_monthly AS
SELECT date_trunc('month', referral_date)::DATE AS month,
       referral_type,
       precinct,
       count(*) AS referrals
FROM core.referral
GROUP BY ALL
ORDER BY month, referral_type, precinct;

-- marts.outcomes_summary: marts.outcomes aggregated per cohort and window.
-- Every cohort x window pair has a row, with n_people = 0 and NULL means when empty.
CREATE OR REPLACE TABLE marts.outcomes_summary AS
WITH grid AS (
    SELECT cohort, unnest(windows_days) AS window_days
    FROM core.evaluation_settings
    CROSS JOIN (VALUES ('lead'), ('comparison')) AS c(cohort)
)
SELECT g.cohort,
       g.window_days,
       count(o.person_key) AS n_people,
       count(o.person_key) FILTER (WHERE o.followup_complete) AS n_followup_complete,
       coalesce(sum(o.arrests_before), 0)::BIGINT AS arrests_before_sum,
       avg(o.arrests_before) AS arrests_before_mean,
       coalesce(sum(o.arrests_after), 0)::BIGINT AS arrests_after_sum,
       avg(o.arrests_after) AS arrests_after_mean,
       coalesce(sum(o.bookings_before), 0)::BIGINT AS bookings_before_sum,
       avg(o.bookings_before) AS bookings_before_mean,
       coalesce(sum(o.bookings_after), 0)::BIGINT AS bookings_after_sum,
       avg(o.bookings_after) AS bookings_after_mean,
       coalesce(sum(o.jail_days_before), 0)::BIGINT AS jail_days_before_sum,
       avg(o.jail_days_before) AS jail_days_before_mean,
       coalesce(sum(o.jail_days_after), 0)::BIGINT AS jail_days_after_sum,
       avg(o.jail_days_after) AS jail_days_after_mean,
       coalesce(sum(o.felony_charges_before), 0)::BIGINT AS felony_charges_before_sum,
       avg(o.felony_charges_before) AS felony_charges_before_mean,
       coalesce(sum(o.felony_charges_after), 0)::BIGINT AS felony_charges_after_sum,
       avg(o.felony_charges_after) AS felony_charges_after_mean,
       coalesce(sum(o.misdemeanor_charges_before), 0)::BIGINT AS misdemeanor_charges_before_sum,
       avg(o.misdemeanor_charges_before) AS misdemeanor_charges_before_mean,
       coalesce(sum(o.misdemeanor_charges_after), 0)::BIGINT AS misdemeanor_charges_after_sum,
       avg(o.misdemeanor_charges_after) AS misdemeanor_charges_after_mean,
       count(o.person_key) FILTER (WHERE o.any_rearrest_after) AS any_rearrest_n,
       avg(o.any_rearrest_after::INTEGER) AS any_rearrest_share
FROM grid g
LEFT JOIN marts.outcomes o ON o.cohort = g.cohort AND o.window_days = g.window_days
GROUP BY g.cohort, g.window_days
ORDER BY g.cohort DESC, g.window_days;
