-- core.referral: one row per police LEAD referral.
-- person_key comes from the police link; an unlinked referral keeps a NULL key
-- (it still counts in monthly referral totals, never in person-level marts).
CREATE OR REPLACE TABLE core.referral AS
SELECT r.referral_id,
       pl.person_key,
       r.referral_date,
       r.referral_type,
       r.offense_category,
       r.precinct,
       r.officer_id,
       r.age_at_event,
       r.sex,
       r.race,
       r.ethnicity
FROM current.police_referrals r
LEFT JOIN core.person_link pl ON pl.agency = 'police' AND pl.person_token = r.person_token
ORDER BY r.referral_id;
