-- core.arrest_charge: one row per charge on a police arrest, typed by the
-- offense-code reference (codes missing from it get no type and are not LEAD-eligible).
CREATE OR REPLACE TABLE core.arrest_charge AS
SELECT a.arrest_id,
       a.charge_seq,
       a.offense_code,
       o.offense_type,
       a.severity,
       coalesce(o.lead_eligible, false) AS lead_eligible
FROM current.police_arrests a
LEFT JOIN core.offense_code o ON o.offense_code = a.offense_code
ORDER BY a.arrest_id, a.charge_seq;

-- core.arrest: one row per arrest. Arrest-level facts are taken from the first
-- charge row; severity is felony if any charge is; offense_type is that of the
-- most serious charge (felony first, then lowest charge_seq); lead_eligible if
-- any charge is.
CREATE OR REPLACE TABLE core.arrest AS
WITH charges AS (
    SELECT a.*, c.offense_type, c.lead_eligible
    FROM current.police_arrests a
    JOIN core.arrest_charge c ON c.arrest_id = a.arrest_id AND c.charge_seq = a.charge_seq
),
arrests AS (
    SELECT arrest_id,
           first(person_token ORDER BY charge_seq) AS person_token,
           first(arrest_date ORDER BY charge_seq) AS arrest_date,
           first(precinct ORDER BY charge_seq) AS precinct,
           first(age_at_event ORDER BY charge_seq) AS age_at_event,
           first(sex ORDER BY charge_seq) AS sex,
           first(race ORDER BY charge_seq) AS race,
           first(ethnicity ORDER BY charge_seq) AS ethnicity,
           CASE WHEN bool_or(severity = 'felony') THEN 'felony' ELSE 'misdemeanor' END AS severity,
           first(offense_type ORDER BY (severity = 'felony') DESC, charge_seq) AS offense_type,
           bool_or(lead_eligible) AS lead_eligible,
           count(*) AS charge_count
    FROM charges
    GROUP BY arrest_id
)
SELECT a.arrest_id,
       pl.person_key,
       a.arrest_date,
       a.precinct,
       a.age_at_event,
       a.sex,
       a.race,
       a.ethnicity,
       a.severity,
       a.offense_type,
       a.lead_eligible,
       a.charge_count
FROM arrests a
LEFT JOIN core.person_link pl ON pl.agency = 'police' AND pl.person_token = a.person_token
ORDER BY a.arrest_id;
